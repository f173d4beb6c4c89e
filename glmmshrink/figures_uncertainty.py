"""Figures of the interval estimands (matplotlib, Agg backend), drawn from summary tables only.

- :func:`coverage_zip`: the zip plot of Morris, White & Crowther (2019, Stat. Med. 38:2074,
  Fig. 5) for beta's intervals, one column per method and one row per cell;
- :func:`nested_loop`: a nested-loop plot (Rücker & Schwarzer 2014, BMC Med. Res. Methodol.
  14:129) of the coverage of the p_i intervals and the RMSE ratio against raw for every cell.

Methods are drawn in the order, label and colour of their method registry entry
(:mod:`glmmshrink.methods`); the loops of the nested-loop plot are the grid's axes
(:data:`glmmshrink.grid.AXES`).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from glmmshrink import measures  # noqa: E402
from glmmshrink.figures import MCSE_Z, legend_within_width  # noqa: E402
from glmmshrink.figures_seed import placeholder  # noqa: E402
from glmmshrink.grid import AXES  # noqa: E402
from glmmshrink.methods import METHODS, MethodRegistry  # noqa: E402

NOMINAL = 0.95
ZIP_COLORS = {"covers": "#6f9fc8", "misses": "#c8402f", "coverage": "#e0a526"}


def _cell_title(rows: pd.DataFrame, cell: str) -> str:
    if {"n_groups", "n_trials_min", "n_trials_max", "re_sd", "p0"} <= set(rows.columns) and len(rows):
        first = rows.iloc[0]
        trials = (f"{first.n_trials_min}" if first.n_trials_min == first.n_trials_max
                  else f"{first.n_trials_min}-{first.n_trials_max}")
        return f"I={first.n_groups}, J={trials}, sd={first.re_sd:g}, p0={first.p0:g}"
    return cell


def _zip_panel(axis, rows: pd.DataFrame) -> None:
    """One method x cell: intervals ranked by |z|, the truth, nominal and observed coverage."""
    rows = rows.sort_values("z_rank")
    truth = float(rows["beta_true"].iloc[0])
    for covers, colour in ((True, ZIP_COLORS["covers"]), (False, ZIP_COLORS["misses"])):
        part = rows[rows["covers"] == covers]
        segments = np.stack([np.column_stack([part["beta_lower"], part["z_rank"]]),
                             np.column_stack([part["beta_upper"], part["z_rank"]])], axis=1)
        axis.add_collection(LineCollection(segments, colors=colour, linewidths=0.6))
    of_coverage = measures.coverage(rows["beta_lower"], rows["beta_upper"], truth)
    low, high = (of_coverage.value - MCSE_Z * of_coverage.mcse, of_coverage.value + MCSE_Z * of_coverage.mcse)
    axis.axvline(truth, color="k", lw=0.8, ls="--")
    axis.axhline(NOMINAL, color="k", lw=0.8, ls=":")
    for level in (low, high):
        axis.axhline(level, color=ZIP_COLORS["coverage"], lw=1.2, ls="--")
    axis.text(0.03, 0.04, f"coverage {of_coverage.value:.3f}\n(MCSE {of_coverage.mcse:.3f}, "
              f"n={of_coverage.n_used})", transform=axis.transAxes, fontsize=7, va="bottom",
              bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
    axis.autoscale_view()
    axis.set_ylim(0, 1)


def coverage_zip(beta_intervals: pd.DataFrame, cells: Sequence[str],
                 registry: MethodRegistry = METHODS, method_options=None) -> plt.Figure:
    """Zip plot of beta's 95 % intervals: rows are ``cells`` (names), columns are methods.

    ``beta_intervals`` is the summary table of :func:`glmmshrink.summary_intervals.
    beta_interval_table` keyed by ``cell``. Each replicate's interval is a horizontal segment at
    the fractional centile of its |z| = |beta-hat - beta| / SE, blue if it covers the true beta
    (dashed vertical line), red if not; the intervals with the largest |z| miss, so the red ones
    sit at the top, above a "zip" at height equal to the coverage. The dotted line is the nominal
    95 %, the orange dashed lines the observed coverage +-1.96 MCSE (Morris et al. 2019, Fig. 5;
    rsimsum's ``autoplot(type = "zip")``). A cell or method missing from the table gets a
    placeholder panel.
    """
    methods = registry.ordered(beta_intervals["method"]) if len(beta_intervals) else []
    n_rows, n_cols = max(len(cells), 1), max(len(methods), 1)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(2.7 * n_cols + 0.8, 2.9 * n_rows + 0.9),
                                squeeze=False, layout="constrained")
    for row, cell in enumerate(cells):
        in_cell = beta_intervals[beta_intervals["cell"] == cell]
        for column, method in enumerate(methods):
            axis = axes[row, column]
            rows = in_cell[in_cell["method"] == method]
            if rows.empty:
                placeholder(axis, f"no {method} intervals\nfor cell {cell}")
            else:
                _zip_panel(axis, rows)
            if column > 0:
                axis.sharex(axes[row, 0])  # one beta scale per cell, to compare the methods' widths
            if row == 0:
                axis.set_title(registry.label(method, method_options), fontsize=9,
                               color=registry[method].color)
            if row == n_rows - 1:
                axis.set_xlabel("95 % interval for beta", fontsize=8)
        axes[row, 0].set_ylabel(f"{_cell_title(in_cell, cell)}\nfractional centile of |z|", fontsize=8)
    if not cells or not methods:
        placeholder(axes[0, 0], "no beta intervals in the summary tables")
    handles = [
        Line2D([], [], color=ZIP_COLORS["covers"], lw=1.5, label="interval covers beta"),
        Line2D([], [], color=ZIP_COLORS["misses"], lw=1.5, label="interval misses beta"),
        Line2D([], [], color="k", lw=0.8, ls="--", label="true beta"),
        Line2D([], [], color="k", lw=0.8, ls=":", label="nominal 95 %"),
        Line2D([], [], color=ZIP_COLORS["coverage"], lw=1.2, ls="--",
               label="coverage ± 1.96 MCSE"),
    ]
    legend_within_width(figure, {handle.get_label(): handle for handle in handles},
                        loc="outside lower center", fontsize=7)
    return figure


def _loop_table(cells: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """One row per cell in nested-loop order, and the loops ``(axis name, short label)``.

    Every grid axis (:data:`glmmshrink.grid.AXES`) is a loop; axes with fewer levels are
    outer loops (ties in axis order). Within an axis, levels sort by ``Axis.sort_key`` (an
    unbalanced J after the balanced ones, the default ``re_dist`` first). Column ``<axis>``
    holds a cell's level index and ``<axis>_label`` its text.
    """
    table = cells[["cell"]].copy()
    records = cells.to_dict("records")
    loops = []
    for axis in AXES:
        keys = [axis.sort_key(axis.values_of(row)) for row in records]
        levels = sorted(set(keys))
        table[axis.name] = [levels.index(key) for key in keys]
        texts = [axis.label(axis.values_of(row)) for row in records]
        table[f"{axis.name}_label"] = [text.split("=", 1)[-1] for text in texts]
        loops.append((axis.name, texts[0].split("=", 1)[0] if texts else axis.name, len(levels)))
    loops.sort(key=lambda loop: loop[2])  # stable: ties keep the axes' order
    loops = [(name, short) for name, short, _ in loops]
    table = table.sort_values([name for name, _ in loops], kind="stable").reset_index(drop=True)
    return table, loops


def _draw_loops(axis, table: pd.DataFrame, loops) -> list[str]:
    """The step lines of the loops (one band each), levels written where they change."""
    x = np.arange(len(table))
    varying = [(column, name) for column, name in loops if table[column].nunique() > 1]
    ticks = []
    for band, (column, name) in enumerate(reversed(varying)):
        levels = np.sort(table[column].unique())
        index = np.searchsorted(levels, table[column].to_numpy())
        height = band + 0.1 + 0.7 * index / max(len(levels) - 1, 1)
        axis.step(x, height, where="mid", color="0.25", lw=1)
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        labels = table[f"{column}_label"].to_numpy()
        if len(table) / len(starts) >= 2:  # room to write each run's level
            for start in starts:
                axis.text(start - 0.45, height[start] + 0.05, labels[start], fontsize=6, va="bottom")
            ticks.append(name)
        else:
            ticks.append(f"{name}: {', '.join(dict.fromkeys(labels[np.argsort(index, kind='stable')]))}")
    axis.set_yticks(np.arange(len(varying)) + 0.45, ticks, fontsize=7)
    axis.set_ylim(0, max(len(varying), 1))
    axis.set_xticks([])
    constant = [f"{name}={table[f'{column}_label'].iloc[0]}" for column, name in loops
                if table[column].nunique() == 1]
    return constant


def _step_with_band(axis, x, rows: pd.DataFrame, colour: str, label: str) -> None:
    value, mcse = rows["value"].to_numpy(float), rows["mcse"].to_numpy(float)
    axis.step(x, value, where="mid", color=colour, lw=1.3, label=label)
    axis.fill_between(x, value - MCSE_Z * np.nan_to_num(mcse), value + MCSE_Z * np.nan_to_num(mcse),
                      step="mid", color=colour, alpha=0.15, lw=0)


def nested_loop(performance: pd.DataFrame, cells: pd.DataFrame,
                registry: MethodRegistry = METHODS, method_options=None) -> plt.Figure:
    """Coverage of the p_i intervals (top) and RMSE ratio vs raw (middle) for every cell.

    Cells (rows of ``cells``, the summary table) are ordered by nested loops over the grid's
    axes (outermost first, see :func:`_loop_table`) and drawn left to right; the loop lines
    under the panels give each cell's parameters, one step line per axis (Rücker & Schwarzer
    2014). Axes with one value in the grid are named in the x label instead. Shaded bands are
    +-1.96 MCSE. The raw proportion's RMSE ratio is 1 by definition: the reference line.
    """
    table, loops = _loop_table(cells)
    x = np.arange(len(table))
    position = dict(zip(table["cell"], x))
    rows = performance[performance["estimand"] == "p"]
    coverage = rows[rows["measure"] == "coverage_95"]
    ratio = rows[(rows["measure"] == "rmse_ratio_vs_raw")
                 & rows["method"].isin(registry.having(rows["method"], "shrinks"))]
    n_varying = sum(table[column].nunique() > 1 for column, _ in loops)
    width = min(max(0.2 * len(table) + 2.0, 6.0), 16.0)
    figure, axes = plt.subplots(3, 1, figsize=(width, 6.2 + 0.35 * n_varying), sharex=True,
                                layout="constrained",
                                gridspec_kw={"height_ratios": [3, 3, 0.5 + 0.45 * n_varying]})
    for axis, frame, ylabel in ((axes[0], coverage, "coverage of 95 % intervals of p_i"),
                                (axes[1], ratio, "RMSE(method) / RMSE(raw) of p_i")):
        if frame.empty:
            placeholder(axis, "no rows in performance for this panel")
            continue
        for method in registry.ordered(frame["method"]):
            of_method = frame[frame["method"] == method].assign(x=lambda f: f["cell"].map(position))
            of_method = of_method.dropna(subset=["x"]).sort_values("x")
            full = pd.DataFrame({"x": x}).merge(of_method, on="x", how="left")  # gaps stay gaps
            _step_with_band(axis, x, full, registry[method].color,
                            registry.label(method, method_options))
        axis.set_ylabel(ylabel, fontsize=8)
    axes[0].axhline(NOMINAL, color="k", lw=0.8, ls=":", label="nominal 95 %")
    axes[1].axhline(1.0, color="0.45", lw=0.9, ls="--", label="RMSE ratio 1 (raw y/n)")
    varying = [name for name, _ in loops if table[name].nunique() > 1]
    if varying:
        outer = table[varying[0]].to_numpy()
        for boundary in np.flatnonzero(outer[1:] != outer[:-1]):
            for axis in axes:
                axis.axvline(boundary + 0.5, color="0.85", lw=0.8, zorder=0)
    constant = _draw_loops(axes[2], table, loops)
    axes[2].set_xlabel("cells of the grid in nested-loop order (outermost loop at the top)"
                       + (f"; {', '.join(constant)} in every cell" if constant else ""), fontsize=8)
    axes[2].set_xlim(-0.5, len(table) - 0.5)
    entries = {}
    for axis in axes[:2]:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    legend_within_width(figure, entries, loc="outside upper center", fontsize=7)
    return figure
