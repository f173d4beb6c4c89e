"""The seed thread's figures, reproduced from the study's tables.

- :func:`seed_question`: one simulated dataset, observed proportion vs the Laplace estimate;
- :func:`seed_answer`: the estimates of every method that shrinks (Laplace, Bayes, ...) vs
  observed proportion, facets by J, pooled over a few replicates (the answer's lme4 vs MCMCglmm
  picture, without MCMC noise);
- :func:`shrinkage_methods`: every method's mean estimate vs observed proportion with the
  theory curves (a) and (b);
- :func:`why_shrink`: RMSE of the group estimates of every method across J and sd.

Labels, colours, markers and the order of methods come from the method registry
(:mod:`glmmshrink.methods`).

A cell or method the config lacks gives a placeholder panel saying what is missing, so the
figures build for any config.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from glmmshrink import grid  # noqa: E402
from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.figures import MCSE_Z, draw_theory, legend_within_width  # noqa: E402
from glmmshrink.methods import METHODS, MethodRegistry  # noqa: E402


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


def seed_question(groups: pd.DataFrame | None, cell: Cell, method: str = "laplace",
                  registry: MethodRegistry = METHODS) -> plt.Figure:
    """Observed proportion vs ``method``'s estimate of replicate 0 of ``cell`` (the question's
    plot; the question fitted glmer's default, the Laplace approximation).

    ``groups`` is a group table (``results/cells/*/groups_*.parquet``) holding that replicate.
    """
    figure, axis = plt.subplots(figsize=(4.2, 4.4), layout="constrained")
    message = _missing_message(cell, groups, [method])
    if message:
        placeholder(axis, message)
    else:
        data = groups[(groups["cell"] == cell.name) & (groups["method"] == method)
                      & (groups["replicate"] == groups["replicate"].min())]
        overall = data["successes"].sum() / data["n_trials"].sum()
        axis.axhline(overall, color="0.5", lw=0.7, ls="--", label=f"overall proportion {overall:.2f}")
        axis.scatter(data["p_raw"], data["p_hat"], s=18, color=registry[method].color, alpha=0.8,
                     label="group", clip_on=False)
        axis.legend(fontsize=7, loc="upper left")
    _unit_square(axis)
    axis.set_xlabel("proportion")
    axis.set_ylabel(f"GLMM estimate ({registry.label(method)})")
    axis.set_title(f"one simulated dataset: {_design(cell)}", fontsize=8)
    return figure


def _scatter_style(spec) -> dict:
    # Open markers for methods drawn over others: the estimates often nearly coincide.
    if spec.filled:
        return dict(s=14, alpha=0.6, edgecolors="none", color=spec.color, marker=spec.marker)
    return dict(s=22, facecolors="none", linewidths=0.8, edgecolors=spec.color, marker=spec.marker)


def seed_answer(groups: pd.DataFrame | None, cells: list[Cell], pooled: int,
                methods=None, registry: MethodRegistry = METHODS,
                method_options=None) -> plt.Figure:
    """Estimates of ``methods`` (default: every method in ``groups`` that shrinks) vs observed
    proportion, one facet per cell (J), pooled over the first ``pooled`` replicates (the answer
    compared lme4's Laplace fit with MCMCglmm's posterior)."""
    figure, axes = plt.subplots(1, max(len(cells), 1), figsize=(3.3 * max(len(cells), 1), 3.7),
                                squeeze=False, layout="constrained")
    if methods is None:
        present = [] if groups is None else groups["method"]
        methods = registry.having(present, "shrinks")
    methods = registry.ordered(methods)
    for axis, cell in zip(axes[0], cells):
        message = (_missing_message(cell, groups, methods) if methods
                   else "no configured method\nshrinks toward the mean")
        if message:
            placeholder(axis, message)
        else:
            data = groups[(groups["cell"] == cell.name) & (groups["replicate"] < pooled)]
            for method in methods:
                rows = data[data["method"] == method]
                axis.scatter(rows["p_raw"], rows["p_hat"], **_scatter_style(registry[method]),
                             label=registry.label(method, method_options), clip_on=False)
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


def shrinkage_methods(shrinkage_curve: pd.DataFrame, cell: Cell, registry: MethodRegistry = METHODS,
                      method_options=None) -> plt.Figure:
    """Mean estimate of each method vs observed proportion in ``cell``, with theory (a), (b)."""
    figure, axis = plt.subplots(figsize=(4.8, 4.8), layout="constrained")
    rows = shrinkage_curve[shrinkage_curve["cell"] == cell.name]
    if rows.empty:
        placeholder(axis, f"cell {cell.name}\nis not in the config's grid")
    else:
        methods = registry.ordered(rows["method"])
        for method in methods:
            curve = rows[rows["method"] == method]
            axis.errorbar(curve["mean_proportion"], curve["mean_estimate"],
                          yerr=MCSE_Z * curve["mean_estimate_mcse"].fillna(0), marker="o", ms=3.5,
                          lw=1, capsize=1.5, color=registry[method].color,
                          label=registry.label(method, method_options))
        truth = rows[rows["method"] == methods[0]]  # every method has the same groups
        axis.plot(truth["mean_proportion"], truth["mean_true_p"], color="k", lw=1, ls="-.", marker="x",
                  ms=3.5, label="E[true p | y/n]")
        draw_theory(axis, cell.p0, cell.re_sd, cell.n_trials_min)
        missing = [m for m in registry if m not in methods]
        if missing:
            axis.text(0.98, 0.02, f"not in config: {', '.join(missing)}", ha="right", fontsize=7,
                      color="0.3", transform=axis.transAxes)
        axis.legend(fontsize=7, loc="upper left")
    _unit_square(axis)
    axis.set_xlabel("observed proportion y/n")
    axis.set_ylabel("mean estimate of p over replicates")
    axis.set_title(_design(cell), fontsize=9)
    return figure


def why_shrink(performance: pd.DataFrame, methods=None, registry: MethodRegistry = METHODS,
               method_options=None) -> plt.Figure:
    """RMSE of group estimates vs J, one panel per sd, with +-1.96 MCSE bars, for ``methods``
    (default: every method in the table).

    Lines join balanced cells of one design (the axes other than J and sd: I, p0, ...);
    squares are unbalanced cells at their mean group size. Cells with an optional axis away
    from its default (e.g. ``re_dist``) are left out: they have figures of their own.
    """
    methods = registry.ordered(performance["method"] if methods is None else methods)
    rows = performance[(performance["estimand"] == "p") & (performance["measure"] == "rmse")
                       & performance["method"].isin(methods)]
    rows = rows[grid.at_defaults(rows)]
    rows = rows.assign(x=(rows["n_trials_min"] + rows["n_trials_max"]) / 2,
                       balanced=rows["n_trials_min"] == rows["n_trials_max"])
    sds = sorted(rows["re_sd"].unique())
    figure, axes = plt.subplots(1, max(len(sds), 1), figsize=(2.8 * max(len(sds), 1) + 0.6, 3.6),
                                sharey=True, squeeze=False, layout="constrained")
    if rows.empty:
        placeholder(axes[0, 0], f"none of the methods {', '.join(methods)} in the config")
        return figure
    facets = ("n_trials", "re_sd")
    design_columns = grid.series_columns(exclude=facets)
    designs = rows[design_columns].drop_duplicates().sort_values(design_columns)
    styles = {tuple(design): ["-", "--", "-.", ":"][index % 4]
              for index, design in enumerate(designs.itertuples(index=False))}
    for axis, sd in zip(axes[0], sds):
        for keys, part in rows[rows["re_sd"] == sd].groupby(["method", *design_columns, "balanced"]):
            method, balanced = keys[0], keys[-1]
            part = part.sort_values("x")
            design = ("" if len(styles) == 1 else
                      ", " + grid.describe(part.iloc[0], exclude=facets, only_varying=rows))
            label = (registry.label(method, method_options) + design
                     + ("" if balanced else " (unbalanced)"))
            color = registry[method].color
            axis.errorbar(part["x"], part["value"], yerr=MCSE_Z * part["mcse"].fillna(0),
                          marker="o" if balanced else "s", ms=4 if balanced else 6,
                          ls=styles[tuple(keys[1:-1])] if balanced else "none", lw=1, capsize=2,
                          color=color, label=label, mfc=color if balanced else "none")
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
    legend_within_width(figure, entries, loc="outside lower center", fontsize=7)
    return figure
