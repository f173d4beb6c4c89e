"""Zip plot and nested-loop plot drawn from synthetic summary tables."""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

from glmmshrink import figures
from glmmshrink.figures_uncertainty import coverage_zip, nested_loop
from glmmshrink.methods import METHODS, Method

SEED_CELL, SMALL_SD_CELL = "I30_J10_sd1_p0.7", "I30_J10_sd0.25_p0.5"


def beta_intervals(replicates=200):
    rng = np.random.default_rng(2)
    frames = []
    for cell, sd, p0 in ((SEED_CELL, 1.0, 0.7), (SMALL_SD_CELL, 0.25, 0.5)):
        beta_true = np.log(p0 / (1 - p0))
        for method, scale in (("laplace", 1.1), ("bayes", 1.0)):
            beta_se = np.full(replicates, 0.2)
            beta_hat = beta_true + rng.normal(0, 0.2 * scale, replicates)
            z = (beta_hat - beta_true) / beta_se
            frames.append(pd.DataFrame({
                "cell": cell, "n_groups": 30, "n_trials_min": 10, "n_trials_max": 10, "re_sd": sd,
                "p0": p0, "method": method, "replicate": np.arange(replicates), "beta_true": beta_true,
                "beta_hat": beta_hat, "beta_se": beta_se, "beta_lower": beta_hat - 1.96 * beta_se,
                "beta_upper": beta_hat + 1.96 * beta_se, "covers": np.abs(z) <= 1.96, "z": z,
                "z_rank": pd.Series(np.abs(z)).rank().to_numpy() / replicates,
            }))
    return pd.concat(frames, ignore_index=True)


def grid():
    """Cells sd in {0, 1} x J in {5, 10}, plus one unbalanced cell; p0 = 0.5, I = 30."""
    rows = [{"cell": f"I30_J{j}_sd{sd:g}_p0.5", "n_groups": 30, "n_trials_min": j, "n_trials_max": j,
             "re_sd": sd, "p0": 0.5, "re_dist": "normal"} for sd, j in itertools.product((1.0, 0.0), (10, 5))]
    rows.append({"cell": "I30_J2-50_sd1_p0.5", "n_groups": 30, "n_trials_min": 2, "n_trials_max": 50,
                 "re_sd": 1.0, "p0": 0.5, "re_dist": "normal"})
    return pd.DataFrame(rows)


def performance(cells):
    rows = []
    for index, cell in enumerate(cells.itertuples(index=False)):
        for method_index, method in enumerate(("raw", "laplace", "bayes")):
            rows.append({**cell._asdict(), "method": method, "estimand": "p", "measure": "coverage_95",
                         "value": 0.9 + 0.01 * index + 0.001 * method_index, "mcse": 0.01, "n_used": 100})
            rows.append({**cell._asdict(), "method": method, "estimand": "p",
                         "measure": "rmse_ratio_vs_raw",
                         "value": 1.0 if method == "raw" else 0.5 + 0.01 * index, "mcse": 0.02, "n_used": 100})
            rows.append({**cell._asdict(), "method": method, "estimand": "p", "measure": "rmse",
                         "value": 0.1, "mcse": 0.01, "n_used": 100})
    return pd.DataFrame(rows)


def legend_labels(figure):
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_zip_plot_has_a_panel_per_cell_and_method_with_every_interval(tmp_path):
    table = beta_intervals()
    figure = coverage_zip(table, [SEED_CELL, SMALL_SD_CELL])
    axes = np.array(figure.axes).reshape(2, 2)
    assert [axis.get_title() for axis in axes[0]] == [METHODS.label("laplace"), METHODS.label("bayes")]
    assert all("fractional centile of |z|" in axis.get_ylabel() for axis in axes[:, 0])
    assert "I=30, J=10, sd=1, p0=0.7" in axes[0, 0].get_ylabel()
    assert all(axis.get_xlabel() == "95 % interval for beta" for axis in axes[1])
    for axis, (cell, method) in zip(axes.ravel(), itertools.product([SEED_CELL, SMALL_SD_CELL], ["laplace", "bayes"])):
        rows = table[(table["cell"] == cell) & (table["method"] == method)]
        segments = [s for c in axis.collections if isinstance(c, LineCollection) for s in c.get_segments()]
        assert len(segments) == len(rows)
        coverage = rows["covers"].mean()
        assert f"coverage {coverage:.3f}" in " ".join(t.get_text() for t in axis.texts)
        assert axis.get_ylim() == (0, 1)
    assert legend_labels(figure) == ["interval covers beta", "interval misses beta", "true beta",
                                     "nominal 95 %", "coverage ± 1.96 MCSE"]
    figures.save(figure, tmp_path / "coverage_zip.png", tmp_path / "coverage_zip.pdf")
    assert (tmp_path / "coverage_zip.png").stat().st_size > 10_000


def test_zip_plot_shows_a_placeholder_for_a_cell_without_intervals():
    figure = coverage_zip(beta_intervals(20), [SEED_CELL, "I5_J10_sd1_p0.7"])
    second_row = figure.axes[2:4]
    assert all("no " in " ".join(t.get_text() for t in axis.texts) for axis in second_row)
    plt.close(figure)


def test_nested_loop_orders_cells_by_the_loops_and_draws_one_line_per_method(tmp_path):
    cells = grid()
    table = performance(cells)
    figure = nested_loop(table, cells)
    coverage_axis, ratio_axis, loop_axis = figure.axes
    assert "coverage" in coverage_axis.get_ylabel() and "RMSE" in ratio_axis.get_ylabel()
    # outermost sd (0 before 1), then J (5, 10, then the unbalanced 2-50)
    order = ["I30_J5_sd0_p0.5", "I30_J10_sd0_p0.5", "I30_J5_sd1_p0.5", "I30_J10_sd1_p0.5",
             "I30_J2-50_sd1_p0.5"]
    lines = {line.get_label(): line for line in coverage_axis.get_lines()}
    expected = table[(table["method"] == "laplace") & (table["measure"] == "coverage_95")].set_index("cell")
    np.testing.assert_allclose(lines["Laplace"].get_ydata(), expected.loc[order, "value"])
    raw, bayes = METHODS.label("raw"), METHODS.label("bayes")
    assert {raw, "Laplace", bayes, "nominal 95 %"} <= set(lines)
    ratio_labels = {line.get_label() for line in ratio_axis.get_lines()}
    assert raw not in ratio_axis.get_legend_handles_labels()[1]
    assert {"Laplace", bayes, "RMSE ratio 1 (raw y/n)"} <= ratio_labels
    tick_labels = [label.get_text() for label in loop_axis.get_yticklabels()]
    assert tick_labels[-1] == "sd" and tick_labels[0].startswith("J")  # sd is the outer loop, on top
    assert "I=30, p0=0.5, re_dist=normal in every cell" in loop_axis.get_xlabel()
    assert legend_labels(figure) == [raw, "Laplace", bayes, "nominal 95 %", "RMSE ratio 1 (raw y/n)"]
    figures.save(figure, tmp_path / "nested_loop.png", tmp_path / "nested_loop.pdf")
    assert (tmp_path / "nested_loop.png").stat().st_size > 10_000


def test_nested_loop_takes_order_labels_and_colours_from_the_method_registry():
    cells = grid()
    table = performance(cells)
    mine = Method(name="mine", fit=lambda y, n, options: None, label="My method", color="purple",
                  order=-1)
    table = pd.concat([table, table[table["method"] == "bayes"].assign(method="mine")])
    figure = nested_loop(table, cells, registry=METHODS.with_methods(mine))
    labels = legend_labels(figure)
    assert labels[:2] == ["My method", METHODS.label("raw")]  # registry order: -1 before raw's 0
    coverage_lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert coverage_lines["My method"].get_color() == "purple"
    plt.close(figure)


def test_nested_loop_has_a_loop_for_the_random_effect_distribution():
    cells = grid()
    extra = cells.iloc[[2]].assign(cell="I30_J10_sd1_p0.5_t3", re_dist="t3")
    cells = pd.concat([cells, extra], ignore_index=True)
    figure = nested_loop(performance(cells), cells)
    tick_labels = [label.get_text() for label in figure.axes[2].get_yticklabels()]
    assert "re_dist" in tick_labels
    assert "re_dist" not in figure.axes[2].get_xlabel()
    plt.close(figure)


@pytest.mark.parametrize("measure", ["coverage_95", "rmse_ratio_vs_raw"])
def test_nested_loop_without_a_measure_shows_a_placeholder_panel(measure):
    cells = grid()
    table = performance(cells)
    figure = nested_loop(table[table["measure"] != measure], cells)
    panel = figure.axes[0 if measure == "coverage_95" else 1]
    assert "no rows" in " ".join(t.get_text() for t in panel.texts)
    plt.close(figure)


def test_shrinkage_methods_draws_the_mean_true_p_at_each_observed_proportion_once():
    from glmmshrink.config import Cell
    from glmmshrink.figures_seed import shrinkage_methods

    cell = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7)
    y = np.arange(11)
    curve = pd.concat([pd.DataFrame({
        "cell": cell.name, "method": method, "bin": y, "mean_proportion": y / 10,
        "mean_estimate": 0.7 + shrink * (y / 10 - 0.7), "mean_estimate_mcse": 0.01,
        "mean_true_p": 0.7 + 0.6 * (y / 10 - 0.7), "mean_true_p_mcse": 0.01,
    }) for method, shrink in (("raw", 1.0), ("laplace", 0.5), ("bayes", 0.55))], ignore_index=True)
    figure = shrinkage_methods(curve, cell)
    axis = figure.axes[0]
    truth = [line for line in axis.get_lines() if line.get_label() == "E[true p | y/n]"]
    assert len(truth) == 1
    np.testing.assert_allclose(truth[0].get_xdata(), y / 10)
    np.testing.assert_allclose(truth[0].get_ydata(), 0.7 + 0.6 * (y / 10 - 0.7))
    assert "E[true p | y/n]" in [text.get_text() for text in axis.get_legend().get_texts()]
    plt.close(figure)
