"""Figures of the study's summary tables (matplotlib, Agg backend; no pyplot state is kept).

Each function takes the summary tables (``results/summary/*.parquet``) and returns a Figure.
Error bars are +-1.96 Monte Carlo SEs.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from glmmshrink import grid  # noqa: E402
from glmmshrink.methods import METHODS, MethodRegistry  # noqa: E402

MCSE_Z = 1.96


LINE_STYLES = ["-", "--", "-.", ":"]


def _x_trials(frame: pd.DataFrame) -> pd.Series:
    # Unbalanced cells sit at their mean group size.
    return (frame["n_trials_min"] + frame["n_trials_max"]) / 2


def shrinkage_curves(shrinkage_curve: pd.DataFrame, registry: MethodRegistry = METHODS,
                     method_options=None) -> plt.Figure:
    """Mean estimate vs observed proportion, facets J (columns) x sd (rows), balanced cells.

    Each panel also shows theory (a), the exact conditional-mode map, and (b), its linear
    approximation, at the true (logit p0, sd) of each p0 in the panel; they are the normal
    random-effects model's, and say so where the panel has cells with another ``re_dist``.
    Cells differing in the other axes (I, p0, re_dist, ...) are told apart by line style.
    """
    balanced = shrinkage_curve[shrinkage_curve["n_trials_min"] == shrinkage_curve["n_trials_max"]]
    trials = sorted(balanced["n_trials_min"].unique())
    sds = sorted(balanced["re_sd"].unique())
    width, height = 2.3 * len(trials) + 1, 2.3 * len(sds) + 1.3
    figure, axes = plt.subplots(len(sds), len(trials), figsize=(width, height), sharex=True,
                                sharey=True, squeeze=False)
    facets = ("n_trials", "re_sd")
    design_columns = grid.series_columns(exclude=facets)
    designs = balanced[design_columns].drop_duplicates().sort_values(design_columns)
    styles = {tuple(design): LINE_STYLES[index % len(LINE_STYLES)]
              for index, design in enumerate(designs.itertuples(index=False))}
    for (sd, n_trials), panel in balanced.groupby(["re_sd", "n_trials_min"]):
        axis = axes[sds.index(sd), trials.index(n_trials)]
        axis.plot([0, 1], [0, 1], color="k", lw=0.7, ls=":")
        for keys, curve in panel.groupby(["method", *design_columns]):
            method, design = keys[0], tuple(keys[1:])
            label = registry.label(method, method_options)
            if len(styles) > 1:
                label += ", " + grid.describe(curve.iloc[0], exclude=facets, only_varying=balanced)
            axis.plot(curve["mean_proportion"], curve["mean_estimate"], ls=styles[design],
                      marker=".", ms=3, lw=1, color=registry[method].color, label=label)
        normal_only = bool(grid.at_defaults(panel, axes=("re_dist",)).all())
        for p0 in sorted(panel["p0"].unique()):
            draw_theory(axis, p0, sd, n_trials, normal_model_note=not normal_only)
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
    legend = legend_within_width(figure, legend_entries, loc="upper center", fontsize=8)
    legend_height = legend.get_window_extent(figure.canvas.get_renderer()).height / figure.dpi
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
NORMAL_MODEL_NOTE = "theory (normal model)"


def legend_within_width(figure: plt.Figure, entries: dict, max_columns: int = 6, **options):
    """A figure legend of ``entries`` (label -> handle) in as many columns (at most
    ``max_columns``) as fit the figure's width, so no entry is cut off."""
    renderer = figure.canvas.get_renderer()
    for ncols in range(min(len(entries), max_columns), 0, -1):
        legend = figure.legend(entries.values(), entries.keys(), ncols=ncols, **options)
        if ncols == 1 or legend.get_window_extent(renderer).width <= 0.98 * figure.bbox.width:
            return legend
        legend.remove()
    raise ValueError("a legend needs at least one entry")


def draw_theory(axis, p0: float, sd: float, n_trials: int, normal_model_note: bool = False) -> None:
    """Theory curves (a) and (b) at the true (logit p0, sd) for n = ``n_trials`` (theory.py).

    The theory assumes normal random effects; ``normal_model_note`` says so in the labels, for
    panels that also show cells with another ``re_dist``.
    """
    # Imported here: scipy.stats, which theory loads, is the costliest import of a figure job
    # and most figures draw no theory curves.
    from glmmshrink import theory

    curve = theory.shrinkage_curve(np.log(p0 / (1 - p0)), sd, int(n_trials))
    for kind, values in (("exact", curve.exact), ("linear", curve.linear)):
        style = dict(THEORY_STYLES[kind])
        if normal_model_note:
            style["label"] = style["label"].replace("theory", NORMAL_MODEL_NOTE, 1)
        axis.plot(curve.proportion, values, zorder=1, **style)


def _per_method_panels(frame: pd.DataFrame, value, error, ylabel, registry: MethodRegistry,
                       method_options=None, reference=None) -> plt.Figure:
    methods = registry.ordered(frame["method"])
    figure, axes = plt.subplots(1, max(len(methods), 1), figsize=(4.2 * max(len(methods), 1), 3.4),
                                sharey=True, squeeze=False)
    for axis, method in zip(axes[0], methods):
        subset = frame[frame["method"] == method].assign(x=_x_trials)
        if reference is not None:
            axis.axhline(reference, color="k", lw=0.7, ls=":")
        # One series per combination of the axes other than J (the x axis).
        columns = grid.series_columns(exclude=("n_trials",))
        for index, (_, rows) in enumerate(subset.groupby(columns, sort=True)):
            for balanced, marker, line in ((True, "o", "-"), (False, "s", "none")):
                part = rows[(rows["n_trials_min"] == rows["n_trials_max"]) == balanced].sort_values("x")
                if part.empty:
                    continue
                # Name the axes that tell this figure's series apart (all of them if none do).
                label = (grid.describe(part.iloc[0], exclude=("n_trials",), only_varying=frame)
                         or grid.describe(part.iloc[0], exclude=("n_trials",)))
                label += "" if balanced else " (unbalanced)"
                axis.errorbar(part["x"], part[value], yerr=MCSE_Z * part[error].fillna(0),
                              marker=marker, ms=3.5, ls=line, lw=1, capsize=2,
                              color=f"C{index % 10}", label=label)
        axis.set_xscale("log")
        ticks = sorted(subset["x"].unique())
        axis.set_xticks(ticks, [f"{tick:g}" for tick in ticks])
        axis.minorticks_off()
        axis.set_title(registry.label(method, method_options))
        axis.set_xlabel("trials per group J (log scale)")
        axis.legend(fontsize=6)
    axes[0, 0].set_ylabel(ylabel)
    figure.tight_layout()
    return figure


def sigma_bias(performance: pd.DataFrame, registry: MethodRegistry = METHODS,
               method_options=None) -> plt.Figure:
    """Bias of sigma-hat vs J for each sd, one panel per method, +-1.96 MCSE bars."""
    rows = performance[(performance["estimand"] == "sigma") & (performance["measure"] == "bias")]
    return _per_method_panels(rows, "value", "mcse", "bias of sigma-hat", registry,
                              method_options, reference=0.0)


def singular_rate(fit_flags: pd.DataFrame, registry: MethodRegistry = METHODS,
                  method_options=None) -> plt.Figure:
    """Share of singular fits (sigma-hat = 0) vs J for each sd, one panel per method that
    estimates hyperparameters."""
    methods = registry.having(fit_flags["method"], "estimates_hyperparameters")
    rows = fit_flags[(fit_flags["flag"] == "singular") & fit_flags["method"].isin(methods)]
    return _per_method_panels(rows, "rate", "rate_mcse", "singular-fit rate", registry,
                              method_options)


def rmse_ratio(performance: pd.DataFrame, registry: MethodRegistry = METHODS,
               method_options=None) -> plt.Figure:
    """RMSE of the group estimates of each method that shrinks over the raw proportion's RMSE,
    vs J for each sd."""
    methods = registry.having(performance["method"], "shrinks")
    rows = performance[(performance["measure"] == "rmse_ratio_vs_raw")
                       & performance["method"].isin(methods)]
    return _per_method_panels(rows, "value", "mcse", "RMSE(method) / RMSE(raw) of p_i", registry,
                              method_options, reference=1.0)


MISSPECIFICATION_PANELS = (
    # (estimand, measure, capability of the methods shown, y label, reference line)
    ("sigma", "bias", "estimates_hyperparameters", "bias of sigma-hat", 0.0),
    ("p", "rmse_ratio_vs_raw", "shrinks", "RMSE(method) / RMSE(raw) of p_i", 1.0),
    ("p", "coverage_95", None, "coverage of 95 % intervals for p_i", 0.95),
)


def _re_dist_order(values) -> list[str]:
    default = grid.AXIS["re_dist"].default
    return [default] * (default in set(values)) + sorted(set(values) - {default})


def misspecification(performance: pd.DataFrame, theory_table: pd.DataFrame,
                     registry: MethodRegistry = METHODS, method_options=None) -> plt.Figure:
    """Bias of sigma-hat, RMSE ratio vs raw and coverage of p against ``re_dist``, per method.

    One row of panels per design (the other axes' values) that has cells with a non-normal
    ``re_dist``; the normal cell comes first. Coverage is drawn for whichever methods have a
    ``coverage_95`` measure of p. Error bars are +-1.96 MCSEs; methods are dodged sideways.
    The RMSE-ratio panel adds theory (c) at the true (beta, sigma), which is the normal
    model's prediction whatever the shape.
    """
    others = grid.series_columns(exclude=("re_dist",))
    misspecified = ~grid.at_defaults(performance, axes=("re_dist",))
    designs = performance.loc[misspecified, others].drop_duplicates().sort_values(others)
    n_rows = max(len(designs), 1)
    figure, axes = plt.subplots(n_rows, len(MISSPECIFICATION_PANELS), squeeze=False,
                                figsize=(4.0 * len(MISSPECIFICATION_PANELS), 3.2 * n_rows + 0.8),
                                layout="constrained")
    if designs.empty:
        axes[0, 0].text(0.5, 0.5, "no cells with a non-normal re_dist in the grid", ha="center",
                        va="center", transform=axes[0, 0].transAxes, fontsize=8)
        return figure
    for row, design in zip(axes, designs.itertuples(index=False)):
        match = (performance[others] == pd.Series(design._asdict())).all(axis=1)
        cells = performance[match]
        order = _re_dist_order(cells["re_dist"])
        for axis, (estimand, measure, capability, ylabel, reference) in zip(
                row, MISSPECIFICATION_PANELS):
            rows = cells[(cells["estimand"] == estimand) & (cells["measure"] == measure)]
            methods = (registry.ordered(rows["method"]) if capability is None
                       else registry.having(rows["method"], capability))
            axis.axhline(reference, color="k", lw=0.7, ls=":")
            for index, method in enumerate(methods):
                part = rows[rows["method"] == method].set_index("re_dist").reindex(order)
                offset = (index - (len(methods) - 1) / 2) * 0.12
                axis.errorbar(np.arange(len(order)) + offset, part["value"],
                              yerr=MCSE_Z * part["mcse"].fillna(0), marker=registry[method].marker,
                              ms=4, ls="none", capsize=2, color=registry[method].color,
                              label=registry.label(method, method_options))
            if measure == "rmse_ratio_vs_raw":
                predicted = theory_table[(theory_table[others] == pd.Series(design._asdict()))
                                         .all(axis=1)]["predicted_rmse_ratio"]
                if predicted.notna().any():
                    axis.axhline(predicted.dropna().iloc[0], **{
                        **THEORY_STYLES["exact"], "label": f"{NORMAL_MODEL_NOTE} (c)"})
            if not methods:
                axis.text(0.5, 0.5, f"no method has {measure} of {estimand}", ha="center",
                          va="center", transform=axis.transAxes, fontsize=8, color="0.3")
            axis.set_xticks(np.arange(len(order)), order)
            axis.set_xlim(-0.5, len(order) - 0.5)
            axis.set_ylabel(ylabel)
            axis.set_title(grid.describe(design._asdict(), exclude=("re_dist",)), fontsize=8)
            axis.set_xlabel("random-effect distribution (re_dist)")
    entries = {}
    for axis in axes.ravel():
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    legend_within_width(figure, entries, loc="outside lower center", fontsize=7)
    return figure


def save(figure: plt.Figure, png_path, pdf_path) -> None:
    figure.savefig(png_path, dpi=130)
    # The PNG fixed the layout; recomputing a constrained layout for the PDF costs seconds on
    # the many-panel figures and gives the same positions (they are in figure coordinates).
    figure.set_layout_engine("none")
    figure.savefig(pdf_path)
    plt.close(figure)


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
