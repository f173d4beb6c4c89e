"""Tests of the predicted-shrinkage formulas in glmmshrink.theory."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, logit

from glmmshrink import fit_glmm
from glmmshrink.theory import (
    conditional_mode, empirical_logit, exact_map, linear_map, predicted_rmse,
    predicted_shrinkage_slope, shrinkage_curve, shrinkage_factor,
)

LME4 = json.loads((Path(__file__).parent / "data" / "lme4_reference.json").read_text())["datasets"]


@pytest.mark.parametrize("dataset", LME4[:13], ids=lambda d: d["id"])
def test_exact_map_reproduces_fit_modes_at_the_fits_parameters(dataset):
    fit = fit_glmm(dataset["y"], dataset["n"])
    if fit.separated:
        pytest.skip("no finite fit")
    y, n = np.asarray(dataset["y"]), np.asarray(dataset["n"])
    real = n > 0
    b = conditional_mode(y[real], n[real], fit.beta, fit.sigma)
    np.testing.assert_allclose(b, fit.b[real], rtol=0, atol=1e-8)
    np.testing.assert_allclose(exact_map(y[real], n[real], fit.beta, fit.sigma), fit.p_hat[real], rtol=0, atol=1e-8)


def test_exact_map_solves_the_mode_equation_and_is_monotone():
    n, beta, sigma = 10, 0.847, 1.3
    y = np.arange(n + 1)
    b = conditional_mode(y, n, beta, sigma)
    np.testing.assert_allclose(y - n * expit(beta + b) - b / sigma**2, 0.0, atol=1e-9)
    assert np.all(np.diff(b) > 0)
    assert np.all(conditional_mode(y, n, beta, 0.0) == 0.0)


def test_linear_map_error_shrinks_with_n():
    beta, sigma = 0.5, 1.0
    errors = []
    for n in (10, 100, 1000, 10000):
        y = np.round(n * expit(beta + np.linspace(-1.5, 1.5, 7)))
        errors.append(np.abs(logit(linear_map(y, n, beta, sigma)) - logit(exact_map(y, n, beta, sigma))).max())
    assert all(later < 0.3 * earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 2e-3


def test_linear_map_matches_the_normal_normal_formula_and_boundaries():
    n, beta, sigma = 20, -0.3, 0.8
    p = expit(beta)
    expected_b = sigma**2 / (sigma**2 + 1 / (n * p * (1 - p)))
    assert shrinkage_factor(n, beta, sigma) == pytest.approx(expected_b, rel=1e-14)
    assert empirical_logit(0, n) == pytest.approx(np.log(0.5 / 20.5))
    assert empirical_logit(n, n) == pytest.approx(np.log(20.5 / 0.5))
    assert empirical_logit(5, n) == pytest.approx(logit(0.25))
    assert np.all(np.isfinite(linear_map(np.array([0, n]), n, beta, sigma)))


def test_rmse_gain_below_one_for_small_n_and_tends_to_one():
    small = predicted_rmse(0.847, 1.0, 10)
    assert small.ratio < 0.9
    ratios = [predicted_rmse(0.847, 1.0, n).ratio for n in (10, 100, 1000, 10000)]
    assert all(b > a for a, b in zip(ratios, ratios[1:]))
    assert ratios[-1] > 0.995


def test_rmse_gain_agrees_with_monte_carlo():
    beta, sigma, n, draws = 0.847, 1.0, 10, 200_000
    rng = np.random.default_rng(20261126)
    p = expit(beta + sigma * rng.standard_normal(draws))
    y = rng.binomial(n, p)
    table = exact_map(np.arange(n + 1), n, beta, sigma)
    for estimate, predicted in (((y / n - p) ** 2, predicted_rmse(beta, sigma, n).rmse_raw),
                                ((table[y] - p) ** 2, predicted_rmse(beta, sigma, n).rmse_shrunk)):
        mcse = estimate.std() / np.sqrt(draws)
        assert abs(estimate.mean() - predicted**2) < 4 * mcse


def test_unbalanced_sizes_average_the_groups():
    mixed = predicted_rmse(0.0, 0.7, [5, 50])
    parts = [predicted_rmse(0.0, 0.7, size) for size in (5, 50)]
    expected_raw = np.sqrt(np.mean([g.rmse_raw**2 for g in parts]))
    assert mixed.rmse_raw == pytest.approx(expected_raw, rel=1e-12)


def test_predicted_slope_matches_monte_carlo_regression():
    beta, sigma, n, draws = 0.0, 0.7, 10, 200_000
    rng = np.random.default_rng(7)
    y = rng.binomial(n, expit(beta + sigma * rng.standard_normal(draws)))
    table = exact_map(np.arange(n + 1), n, beta, sigma)
    observed = np.polyfit(y / n, table[y], 1)[0]
    predicted = predicted_shrinkage_slope(beta, sigma, n)
    assert 0 < predicted < 1
    assert predicted == pytest.approx(observed, abs=5e-3)
    curve = shrinkage_curve(beta, sigma, n)
    assert curve.probability.sum() == pytest.approx(1.0, abs=1e-12)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="sigma"):
        exact_map(1, 10, 0.0, -1.0)
    with pytest.raises(ValueError, match="y must"):
        exact_map(11, 10, 0.0, 1.0)
    with pytest.raises(ValueError, match="n must"):
        predicted_rmse(0.0, 1.0, 0)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("n", [10, np.arange(2, 51)], ids=["balanced", "unbalanced"])
def test_sigma_zero_predicts_full_pooling_without_warnings(n):
    beta = logit(0.7)
    assert predicted_shrinkage_slope(beta, 0.0, n) == 0.0
    gain = predicted_rmse(beta, 0.0, n)
    sizes = np.atleast_1d(n)
    assert gain.rmse_raw == pytest.approx(np.sqrt(0.7 * 0.3 * np.mean(1 / sizes)), rel=1e-12)
    assert gain.rmse_shrunk == 0.0 and gain.ratio == 0.0


@pytest.mark.filterwarnings("error")
def test_sigma_zero_curves_are_flat_at_the_common_p():
    from scipy.stats import binom

    curve = shrinkage_curve(logit(0.7), 0.0, 10)
    np.testing.assert_allclose(curve.exact, 0.7, rtol=1e-12)
    np.testing.assert_allclose(curve.linear, 0.7, rtol=1e-12)
    np.testing.assert_allclose(curve.probability, binom.pmf(np.arange(11), 10, 0.7), rtol=1e-10)
    assert shrinkage_factor(10, logit(0.7), 0.0) == 0.0


@pytest.mark.filterwarnings("error")
def test_summary_theory_of_an_sd0_cell_is_finite():
    from glmmshrink.config import Cell
    from glmmshrink.summary import predicted_shrinkage

    for cell in (Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=0.0, p0=0.5), Cell(n_groups=30, n_trials_min=2, n_trials_max=50, re_sd=0.0, p0=0.5)):
        predicted = predicted_shrinkage(cell)
        assert predicted["predicted_slope"] == 0.0 and predicted["predicted_rmse_ratio"] == 0.0
        assert np.isfinite(predicted["predicted_rmse_raw"]) and predicted["predicted_rmse_raw"] > 0


def test_summary_tables_of_an_sd0_cell_have_finite_theory_rows():
    from glmmshrink.config import Cell
    from glmmshrink.study import fit_chunk
    from glmmshrink.summary import summarise_cell

    cell = Cell(n_groups=12, n_trials_min=10, n_trials_max=10, re_sd=0.0, p0=0.5)
    replicates, groups = fit_chunk(cell, 7, 0, 10, ["raw", "laplace"])
    theory_table = summarise_cell(cell, replicates.to_pandas(), groups.to_pandas())["theory"]
    assert list(theory_table["method"]) == ["laplace"]
    numeric = theory_table.drop(columns=["cell", "method", "re_dist"]).to_numpy(float)
    assert np.isfinite(numeric).all()


def test_binomial_pmf_is_bit_for_bit_scipy_stats_binom_pmf_as_the_theory_calls_it():
    from scipy.stats import binom

    from glmmshrink.theory import _binomial_pmf

    # The theory's nodes p = expit(beta + sigma * node), including p = 0 and 1 exactly.
    p = np.concatenate([[0.0, 1.0, 1e-300, 1 - 1e-16], expit(np.linspace(-40, 40, 101))])
    checked = 0
    for n in (1, 2, 5, 10, 37, 50, 100, 500):
        y = np.arange(n + 1)
        ours = _binomial_pmf(y[None, :], n, p[:, None])
        theirs = binom.pmf(y[None, :], n, p[:, None])
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs)
        checked += ours.size
    assert checked == p.size * sum(n + 1 for n in (1, 2, 5, 10, 37, 50, 100, 500))
