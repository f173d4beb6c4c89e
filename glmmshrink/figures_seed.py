"""The seed thread's figures, reproduced from the study's tables.

- :func:`seed_question`: one simulated dataset, observed proportion vs the Laplace estimate;
- :func:`seed_answer`: Laplace and Bayes estimates vs observed proportion, facets by J, pooled
  over a few replicates (the answer's lme4 vs MCMCglmm picture, without MCMC noise);
- :func:`shrinkage_methods`: every method's mean estimate vs observed proportion with the
  theory curves (a) and (b);
- :func:`why_shrink`: RMSE of the group estimates of raw, Laplace and Bayes across J and sd.

A cell or method the config lacks gives a placeholder panel saying what is missing, so the
figures build for any config.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.figures import MCSE_Z, draw_theory, _color  # noqa: E402

METHOD_LABELS = {"raw": "raw y/n", "laplace": "Laplace", "agq": "AGQ", "bayes": "Bayes (posterior mean)"}


def method_label(method: str, nagq: int | None = None) -> str:
    if method == "agq" and nagq is not None:
        return f"AGQ-{nagq}"
    return METHOD_LABELS.get(method, method)


def placeholder(axis, message: str) -> None:
    """Blank panel with ``message`` in it, for a cell or method the config does not have."""
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=8, color="0.3",
              transform=axis.transAxes)
    axis.set_xticks([])
    axis.set_yticks([])


def _design(cell: Cell) -> str:
    return f"I={cell.n_groups}, J={cell.n_trials_min}, p0={cell.p0:g}, sd={cell.re_sd:g}"


def _unit_square(axis) -> None:
    axis.plot([0, 1], [0, 1], color="k", lw=0.7, ls=":", zorder=0)
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_aspect("equal")


def _missing_message(cell: Cell, groups: pd.DataFrame | None, methods) -> str | None:
    if groups is None or groups.empty or not (groups["cell"] == cell.name).any():
        return f"cell {cell.name}\nis not in the config's grid"
    absent = [m for m in methods if not (groups["method"] == m).any()]
    if absent:
        return f"method(s) {', '.join(absent)}\nnot in the config's methods"
    return None


def seed_question(groups: pd.DataFrame | None, cell: Cell) -> plt.Figure:
    """Observed proportion vs Laplace estimate of replicate 0 of ``cell`` (the question's plot).

    ``groups`` is a group table (``results/cells/*/groups_*.parquet``) holding that replicate.
    """
    figure, axis = plt.subplots(figsize=(4.2, 4.4), layout="constrained")
    message = _missing_message(cell, groups, ["laplace"])
    if message:
        placeholder(axis, message)
    else:
        data = groups[(groups["cell"] == cell.name) & (groups["method"] == "laplace")
                      & (groups["replicate"] == groups["replicate"].min())]
        overall = data["successes"].sum() / data["n_trials"].sum()
        axis.axhline(overall, color="0.5", lw=0.7, ls="--", label=f"overall proportion {overall:.2f}")
        axis.scatter(data["p_raw"], data["p_hat"], s=18, color=_color("laplace"), alpha=0.8,
                     label="group", clip_on=False)
        axis.legend(fontsize=7, loc="upper left")
    _unit_square(axis)
    axis.set_xlabel("proportion")
    axis.set_ylabel("GLMM estimate (Laplace)")
    axis.set_title(f"one simulated dataset: {_design(cell)}", fontsize=8)
    return figure


def seed_answer(groups: pd.DataFrame | None, cells: list[Cell], pooled: int) -> plt.Figure:
    """Laplace and Bayes estimates vs observed proportion, one facet per cell (J), pooled over
    the first ``pooled`` replicates."""
    figure, axes = plt.subplots(1, max(len(cells), 1), figsize=(3.3 * max(len(cells), 1), 3.7),
                                squeeze=False, layout="constrained")
    for axis, cell in zip(axes[0], cells):
        message = _missing_message(cell, groups, ["laplace", "bayes"])
        if message:
            placeholder(axis, message)
        else:
            data = groups[(groups["cell"] == cell.name) & (groups["replicate"] < pooled)]
            # Open and filled markers: the two estimates often nearly coincide.
            for method, style in (("laplace", dict(s=14, alpha=0.6, edgecolors="none")),
                                  ("bayes", dict(s=22, facecolors="none", linewidths=0.8))):
                rows = data[data["method"] == method]
                axis.scatter(rows["p_raw"], rows["p_hat"], **style, label=method_label(method),
                             clip_on=False,
                             **{"edgecolors" if method == "bayes" else "color": _color(method)})
            axis.legend(fontsize=7, loc="upper left", markerscale=1.5)
        _unit_square(axis)
        axis.set_title(f"J={cell.n_trials_min}", fontsize=9)
        axis.set_xlabel("proportion")
    axes[0, 0].set_ylabel("estimate of p")
    if cells:
        first = cells[0]
        figure.suptitle(f"I={first.n_groups}, p0={first.p0:g}, sd={first.re_sd:g}; "
                        f"{pooled} replicates pooled", fontsize=9)
    else:
        placeholder(axes[0, 0], "no seed-answer cells configured")
    return figure


def shrinkage_methods(shrinkage_curve: pd.DataFrame, cell: Cell, nagq: int | None = None) -> plt.Figure:
    """Mean estimate of each method vs observed proportion in ``cell``, with theory (a), (b)."""
    figure, axis = plt.subplots(figsize=(4.8, 4.8), layout="constrained")
    rows = shrinkage_curve[shrinkage_curve["cell"] == cell.name]
    if rows.empty:
        placeholder(axis, f"cell {cell.name}\nis not in the config's grid")
    else:
        order = ["raw", "laplace", "agq", "bayes"]
        methods = sorted(rows["method"].unique(), key=lambda m: (order.index(m) if m in order else 9, m))
        for offset, method in enumerate(methods):
            curve = rows[rows["method"] == method]
            axis.errorbar(curve["mean_proportion"], curve["mean_estimate"],
                          yerr=MCSE_Z * curve["mean_estimate_mcse"].fillna(0), marker="o", ms=3.5,
                          lw=1, capsize=1.5, color=_color(method), label=method_label(method, nagq))
        truth = rows[rows["method"] == methods[0]]  # every method has the same groups
        axis.plot(truth["mean_proportion"], truth["mean_true_p"], color="k", lw=1, ls="-.", marker="x",
                  ms=3.5, label="E[true p | y/n]")
        draw_theory(axis, cell.p0, cell.re_sd, cell.n_trials_min)
        missing = [m for m in order if m not in methods]
        if missing:
            axis.text(0.98, 0.02, f"not in config: {', '.join(missing)}", ha="right", fontsize=7,
                      color="0.3", transform=axis.transAxes)
        axis.legend(fontsize=7, loc="upper left")
    _unit_square(axis)
    axis.set_xlabel("observed proportion y/n")
    axis.set_ylabel("mean estimate of p over replicates")
    axis.set_title(_design(cell), fontsize=9)
    return figure


def why_shrink(performance: pd.DataFrame, methods=("raw", "laplace", "bayes")) -> plt.Figure:
    """RMSE of group estimates vs J, one panel per sd, with +-1.96 MCSE bars.

    Lines join balanced cells of one design (I, p0); squares are unbalanced cells at their mean
    group size.
    """
    rows = performance[(performance["estimand"] == "p") & (performance["measure"] == "rmse")
                       & performance["method"].isin(methods)]
    rows = rows.assign(x=(rows["n_trials_min"] + rows["n_trials_max"]) / 2,
                       balanced=rows["n_trials_min"] == rows["n_trials_max"])
    sds = sorted(rows["re_sd"].unique())
    figure, axes = plt.subplots(1, max(len(sds), 1), figsize=(2.8 * max(len(sds), 1) + 0.6, 3.6),
                                sharey=True, squeeze=False, layout="constrained")
    if rows.empty:
        placeholder(axes[0, 0], f"none of the methods {', '.join(methods)} in the config")
        return figure
    designs = rows[["n_groups", "p0"]].drop_duplicates().sort_values(["n_groups", "p0"])
    styles = dict(zip(map(tuple, designs.to_numpy()), ["-", "--", "-.", ":"] * 3))
    for axis, sd in zip(axes[0], sds):
        for (method, n_groups, p0, balanced), part in rows[rows["re_sd"] == sd].groupby(
                ["method", "n_groups", "p0", "balanced"]):
            part = part.sort_values("x")
            design = "" if len(styles) == 1 else f", I={n_groups}, p0={p0:g}"
            label = method_label(method) + design + ("" if balanced else " (unbalanced)")
            axis.errorbar(part["x"], part["value"], yerr=MCSE_Z * part["mcse"].fillna(0),
                          marker="o" if balanced else "s", ms=4 if balanced else 6,
                          ls=styles[(n_groups, p0)] if balanced else "none", lw=1, capsize=2,
                          color=_color(method), label=label,
                          mfc=_color(method) if balanced else "none")
        axis.set_xscale("log")
        ticks = sorted(rows.loc[rows["re_sd"] == sd, "x"].unique())
        axis.set_xticks(ticks, [f"{tick:g}" for tick in ticks], fontsize=7)
        axis.minorticks_off()
        axis.set_title(f"sd={sd:g}", fontsize=9)
        axis.set_xlabel("trials per group J")
    axes[0, 0].set_ylabel("RMSE of the estimates of p_i")
    entries = {}
    for axis in axes[0]:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    figure.legend(entries.values(), entries.keys(), loc="outside lower center",
                  ncols=min(len(entries), 3), fontsize=7)
    return figure
