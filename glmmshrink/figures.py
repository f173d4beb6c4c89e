"""Figures of the study's summary tables (matplotlib, Agg backend; no pyplot state is kept).

Each function takes the summary tables (``results/summary/*.parquet``) and returns a Figure.
Error bars are +-1.96 Monte Carlo SEs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from glmmshrink import theory  # noqa: E402

MCSE_Z = 1.96
METHOD_COLORS = {"raw": "0.45", "laplace": "C0", "agq": "C1", "bayes": "C2"}


def _color(method: str) -> str:
    return METHOD_COLORS.get(method, "C3")


def _series_label(row) -> str:
    return f"sd={row.re_sd:g}, I={row.n_groups}, p0={row.p0:g}"


def _x_trials(frame: pd.DataFrame) -> pd.Series:
    # Unbalanced cells sit at their mean group size.
    return (frame["n_trials_min"] + frame["n_trials_max"]) / 2


def shrinkage_curves(shrinkage_curve: pd.DataFrame) -> plt.Figure:
    """Mean estimate vs observed proportion, facets J (columns) x sd (rows), balanced cells.

    Each panel also shows theory (a), the exact conditional-mode map, and (b), its linear
    approximation, at the true (logit p0, sd) of each p0 in the panel.
    """
    balanced = shrinkage_curve[shrinkage_curve["n_trials_min"] == shrinkage_curve["n_trials_max"]]
    trials = sorted(balanced["n_trials_min"].unique())
    sds = sorted(balanced["re_sd"].unique())
    width, height = 2.3 * len(trials) + 1, 2.3 * len(sds) + 1.3
    figure, axes = plt.subplots(len(sds), len(trials), figsize=(width, height), sharex=True,
                                sharey=True, squeeze=False)
    designs = balanced[["n_groups", "p0"]].drop_duplicates().sort_values(["n_groups", "p0"])
    styles = {
        (design.n_groups, design.p0): style
        for style, design in zip(["-", "--", "-.", ":"], designs.itertuples(index=False))
    }
    for (sd, n_trials), panel in balanced.groupby(["re_sd", "n_trials_min"]):
        axis = axes[sds.index(sd), trials.index(n_trials)]
        axis.plot([0, 1], [0, 1], color="k", lw=0.7, ls=":")
        for (method, n_groups, p0), curve in panel.groupby(["method", "n_groups", "p0"]):
            label = method if len(styles) == 1 else f"{method}, I={n_groups}, p0={p0:g}"
            axis.plot(curve["mean_proportion"], curve["mean_estimate"], ls=styles[(n_groups, p0)],
                      marker=".", ms=3, lw=1, color=_color(method), label=label)
        for p0 in sorted(panel["p0"].unique()):
            draw_theory(axis, p0, sd, n_trials)
        axis.set_title(f"J={n_trials}, sd={sd:g}", fontsize=8)
    legend_entries = {}
    for axis in axes.ravel():
        if not axis.has_data():
            axis.set_visible(False)
        for handle, label in zip(*axis.get_legend_handles_labels()):
            legend_entries.setdefault(label, handle)
    # Shared axes label only the outer panels; where that panel is empty (a grid without every
    # J x sd), label the first shown panel of the row and the last of the column instead.
    for row in axes:
        shown = [axis for axis in row if axis.get_visible()]
        if shown:
            shown[0].tick_params(axis="y", labelleft=True)
    for column in axes.T:
        shown = [axis for axis in column if axis.get_visible()]
        if shown:
            shown[-1].tick_params(axis="x", labelbottom=True)
    # As many legend columns as fit the figure's width; the figure grows by the legend's height,
    # so no entry is cut off however many methods and designs there are.
    renderer = figure.canvas.get_renderer()
    for ncols in range(min(len(legend_entries), 6), 0, -1):
        legend = figure.legend(legend_entries.values(), legend_entries.keys(), loc="upper center",
                               ncols=ncols, fontsize=8)
        if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * figure.bbox.width:
            break
        legend.remove()
    legend_height = legend.get_window_extent(renderer).height / figure.dpi
    height += legend_height
    figure.set_size_inches(width, height)
    # Fixed margins (inches): a constrained layout of this many panels costs seconds per save.
    figure.subplots_adjust(left=0.75 / width, right=1 - 0.2 / width, bottom=0.6 / height,
                           top=1 - (legend_height + 0.45) / height, wspace=0.1, hspace=0.3)
    figure.supxlabel("observed proportion y/n")
    figure.supylabel("mean estimate of p")
    return figure


THEORY_STYLES = {
    "exact": dict(color="C4", lw=1.1, ls="-", alpha=0.8, label="theory (a): exact mode map"),
    "linear": dict(color="C4", lw=1.1, ls="--", alpha=0.8, label="theory (b): linear approx."),
}


def draw_theory(axis, p0: float, sd: float, n_trials: int) -> None:
    """Theory curves (a) and (b) at the true (logit p0, sd) for n = ``n_trials`` (theory.py)."""
    curve = theory.shrinkage_curve(np.log(p0 / (1 - p0)), sd, int(n_trials))
    axis.plot(curve.proportion, curve.exact, zorder=1, **THEORY_STYLES["exact"])
    axis.plot(curve.proportion, curve.linear, zorder=1, **THEORY_STYLES["linear"])


def _per_method_panels(frame: pd.DataFrame, value, error, ylabel, reference=None) -> plt.Figure:
    methods = list(dict.fromkeys(frame["method"]))
    figure, axes = plt.subplots(1, max(len(methods), 1), figsize=(4.2 * max(len(methods), 1), 3.4),
                                sharey=True, squeeze=False)
    for axis, method in zip(axes[0], methods):
        subset = frame[frame["method"] == method].assign(x=_x_trials)
        if reference is not None:
            axis.axhline(reference, color="k", lw=0.7, ls=":")
        series = subset[["re_sd", "n_groups", "p0"]].drop_duplicates().sort_values(["re_sd", "n_groups", "p0"])
        for index, design in enumerate(series.itertuples(index=False)):
            rows = subset[(subset["re_sd"] == design.re_sd) & (subset["n_groups"] == design.n_groups)
                          & (subset["p0"] == design.p0)]
            for balanced, marker, line in ((True, "o", "-"), (False, "s", "none")):
                part = rows[(rows["n_trials_min"] == rows["n_trials_max"]) == balanced].sort_values("x")
                if part.empty:
                    continue
                label = _series_label(design) + ("" if balanced else " (unbalanced)")
                axis.errorbar(part["x"], part[value], yerr=MCSE_Z * part[error].fillna(0),
                              marker=marker, ms=3.5, ls=line, lw=1, capsize=2,
                              color=f"C{index % 10}", label=label)
        axis.set_xscale("log")
        ticks = sorted(subset["x"].unique())
        axis.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
        axis.minorticks_off()
        axis.set_title(method)
        axis.set_xlabel("trials per group J (log scale)")
        axis.legend(fontsize=6)
    axes[0, 0].set_ylabel(ylabel)
    figure.tight_layout()
    return figure


def sigma_bias(performance: pd.DataFrame) -> plt.Figure:
    """Bias of sigma-hat vs J for each sd, one panel per method, +-1.96 MCSE bars."""
    rows = performance[(performance["estimand"] == "sigma") & (performance["measure"] == "bias")]
    return _per_method_panels(rows, "value", "mcse", "bias of sigma-hat", reference=0.0)


def singular_rate(fit_flags: pd.DataFrame, hyperparameter_methods) -> plt.Figure:
    """Share of singular fits (sigma-hat = 0) vs J for each sd, one panel per method."""
    rows = fit_flags[(fit_flags["flag"] == "singular") & fit_flags["method"].isin(hyperparameter_methods)]
    return _per_method_panels(rows, "rate", "rate_mcse", "singular-fit rate")


def rmse_ratio(performance: pd.DataFrame) -> plt.Figure:
    """RMSE of shrunk group estimates over the raw proportion's RMSE, vs J for each sd."""
    rows = performance[(performance["measure"] == "rmse_ratio_vs_raw") & (performance["method"] != "raw")]
    return _per_method_panels(rows, "value", "mcse", "RMSE(method) / RMSE(raw) of p_i", reference=1.0)


def save(figure: plt.Figure, png_path, pdf_path) -> None:
    figure.savefig(png_path, dpi=130)
    # The PNG fixed the layout; recomputing a constrained layout for the PDF costs seconds on
    # the many-panel figures and gives the same positions (they are in figure coordinates).
    figure.set_layout_engine("none")
    figure.savefig(pdf_path)
    plt.close(figure)


def save_all(drawn, outputs, pdf_paths, log) -> None:
    """Save each named figure of ``drawn`` to ``outputs[name]`` and the PDF of the same stem."""
    pdfs = {Path(path).stem: path for path in pdf_paths}
    for name, figure in drawn.items():
        save(figure, outputs[name], pdfs[name])
        log.info("wrote %s", name)


def downscale_png(source, target, max_width: int = 1000, max_bytes: int = 150_000) -> int:
    """Write a smaller copy of PNG ``source`` to ``target`` (for docs/); returns its size in bytes.

    The image is shrunk to at most ``max_width`` pixels wide and reduced to a 256-colour palette
    (plots use few colours, so this is nearly lossless); while the file is over ``max_bytes`` it
    is shrunk by another 20 %.
    """
    import io

    from PIL import Image

    with Image.open(source) as opened:
        image = opened.convert("RGB")
    width = min(max_width, image.width)
    while True:
        height = round(image.height * width / image.width)
        small = image.resize((width, height), Image.LANCZOS).quantize(colors=256)
        buffer = io.BytesIO()
        small.save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_bytes or width < 200:
            break
        width = int(width * 0.8)
    with open(target, "wb") as handle:
        handle.write(buffer.getvalue())
    return buffer.tell()
