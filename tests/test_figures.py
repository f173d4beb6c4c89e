"""Figures: theory overlays, the seed figures, placeholders for what a config lacks, docs copies."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from glmmshrink import figures, figures_seed, theory
from glmmshrink.config import Cell
from glmmshrink.study import fit_chunk
from glmmshrink.summary import combine, summarise_cell

QUESTION = Cell(n_groups=10, n_trials_min=8, n_trials_max=8, re_sd=1.0, p0=0.7)
OTHER = Cell(n_groups=10, n_trials_min=20, n_trials_max=20, re_sd=1.0, p0=0.7)
METHODS = ["raw", "laplace", "bayes"]


@pytest.fixture(scope="module")
def study():
    per_cell, groups = [], []
    unbalanced = Cell(n_groups=10, n_trials_min=2, n_trials_max=20, re_sd=1.0, p0=0.7)
    for cell in (QUESTION, OTHER, unbalanced):
        replicates, group_table = fit_chunk(cell, 11, 0, 12, METHODS)
        groups.append(group_table.to_pandas())
        per_cell.append(summarise_cell(cell, replicates.to_pandas(), groups[-1], 4))
    return combine(per_cell), pd.concat(groups, ignore_index=True)


def texts(figure):
    return " ".join(text.get_text() for axis in figure.axes for text in axis.texts)


def lines_labelled(figure, label):
    return [line for axis in figure.axes for line in axis.get_lines() if line.get_label() == label]


def test_shrinkage_curves_overlay_theory_a_and_b_at_the_true_parameters(study):
    tables, _ = study
    figure = figures.shrinkage_curves(tables["shrinkage_curve"])
    exact = lines_labelled(figure, figures.THEORY_STYLES["exact"]["label"])
    linear = lines_labelled(figure, figures.THEORY_STYLES["linear"]["label"])
    assert len(exact) == len(linear) == 2  # one per balanced cell
    expected = {n: theory.shrinkage_curve(np.log(0.7 / 0.3), 1.0, n) for n in (8, 20)}
    for line in exact:
        x, y = line.get_data()
        curve = expected[len(x) - 1]
        np.testing.assert_array_equal(x, curve.proportion)
        np.testing.assert_allclose(y, curve.exact, rtol=1e-12)
    plt.close(figure)


def test_seed_question_is_the_first_replicate_on_the_unit_square(study):
    _, groups = study
    figure = figures_seed.seed_question(groups, QUESTION)
    (axis,) = figure.axes
    assert axis.get_xlabel() == "proportion" and axis.get_ylabel() == "GLMM estimate (Laplace)"
    assert axis.get_xlim() == (0, 1) and axis.get_ylim() == (0, 1) and axis.get_aspect() == 1.0
    (points,) = axis.collections
    first = groups[(groups["cell"] == QUESTION.name) & (groups["method"] == "laplace")
                   & (groups["replicate"] == 0)]
    np.testing.assert_array_equal(points.get_offsets(), first[["p_raw", "p_hat"]].to_numpy())
    plt.close(figure)


def test_seed_answer_pools_replicates_and_marks_missing_cells(study):
    _, groups = study
    absent = Cell(n_groups=10, n_trials_min=50, n_trials_max=50, re_sd=1.0, p0=0.7)
    figure = figures_seed.seed_answer(groups, [QUESTION, absent, OTHER], pooled=3)
    assert len(figure.axes) == 3
    assert f"cell {absent.name}" in texts(figure)
    laplace, bayes = figure.axes[0].collections
    assert len(laplace.get_offsets()) == len(bayes.get_offsets()) == 3 * QUESTION.n_groups
    plt.close(figure)


def test_seed_figures_say_which_method_is_missing(study):
    _, groups = study
    figure = figures_seed.seed_answer(groups[groups["method"] != "bayes"], [QUESTION], pooled=2,
                                      methods=["laplace", "bayes"])
    assert "bayes" in texts(figure) and "not in the config" in texts(figure)
    plt.close(figure)
    figure = figures_seed.seed_question(None, QUESTION)
    assert "not in the config's grid" in texts(figure)
    plt.close(figure)


def test_shrinkage_methods_and_why_shrink_draw_every_method_present(study):
    tables, _ = study
    figure = figures_seed.shrinkage_methods(tables["shrinkage_curve"], QUESTION)
    labels = {text.get_text() for text in figure.axes[0].get_legend().get_texts()}
    assert {"raw y/n", "Laplace", "Bayes (posterior mean)"} <= labels
    assert "not in config: agq" in texts(figure)
    plt.close(figure)
    figure = figures_seed.why_shrink(tables["performance"])
    labels = {text.get_text() for text in figure.legends[0].get_texts()}
    assert "Laplace (unbalanced)" in labels and "raw y/n" in labels
    plt.close(figure)
    absent = Cell(n_groups=3, n_trials_min=3, n_trials_max=3, re_sd=1.0, p0=0.5)
    missing = figures_seed.shrinkage_methods(tables["shrinkage_curve"], absent)
    assert "not in the config's grid" in texts(missing)
    plt.close(missing)


def test_downscale_png_respects_the_size_limits(tmp_path):
    figure, axis = plt.subplots(figsize=(12, 8))
    axis.scatter(*np.random.default_rng(0).random((2, 5000)), s=2)
    big = tmp_path / "big.png"
    figure.savefig(big, dpi=200)
    plt.close(figure)
    size = figures.downscale_png(big, tmp_path / "small.png", max_width=800, max_bytes=60_000)
    assert size == (tmp_path / "small.png").stat().st_size <= 60_000
    with Image.open(tmp_path / "small.png") as small:
        assert small.width <= 800


def test_theory_is_labelled_the_normal_models_where_a_non_normal_cell_is_shown():
    per_cell = []
    for re_dist in ("normal", "t3"):
        cell = Cell(n_groups=10, n_trials_min=8, n_trials_max=8, re_sd=1.0, p0=0.7, re_dist=re_dist)
        replicates, groups = fit_chunk(cell, 11, 0, 6, ["raw", "laplace"])
        per_cell.append(summarise_cell(cell, replicates.to_pandas(), groups.to_pandas(), 4))
    tables = combine(per_cell)
    normal_only = tables["shrinkage_curve"].query("re_dist == 'normal'")
    plain = figures.shrinkage_curves(normal_only)
    assert lines_labelled(plain, figures.THEORY_STYLES["exact"]["label"])
    plt.close(plain)
    mixed = figures.shrinkage_curves(tables["shrinkage_curve"])
    labels = {line.get_label() for axis in mixed.axes for line in axis.get_lines()}
    assert "theory (normal model) (a): exact mode map" in labels
    assert figures.THEORY_STYLES["exact"]["label"] not in labels
    assert any("re_dist=t3" in label for label in labels)  # the cells are told apart
    plt.close(mixed)
    misspecified = figures.misspecification(tables["performance"], tables["theory"])
    legend = {text.get_text() for text in misspecified.legends[0].get_texts()}
    assert "theory (normal model) (c)" in legend and "Laplace" in legend
    assert [tick.get_text() for tick in misspecified.axes[0].get_xticklabels()] == ["normal", "t3"]
    plt.close(misspecified)
