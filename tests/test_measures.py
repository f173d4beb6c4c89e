"""MCSE formulas (rsimsum's R/performance.R) against values computed by hand."""

import math

import numpy as np
import pytest

from glmmshrink import measures

ESTIMATES = [1.0, 2.0, 4.0]  # mean 7/3, sum of squared deviations 14/3
TRUTH = 2.0


def test_bias_and_its_mcse():
    result = measures.bias(ESTIMATES, TRUTH)
    assert result.value == pytest.approx(1 / 3)
    assert result.mcse == pytest.approx(math.sqrt((14 / 3) / (3 * 2)))
    assert result.n_used == 3


def test_empirical_se_and_its_mcse():
    result = measures.empirical_se(ESTIMATES)
    assert result.value == pytest.approx(math.sqrt(7 / 3))
    assert result.mcse == pytest.approx(math.sqrt(7 / 3) / math.sqrt(2 * 2))


def test_mse_rmse_and_their_mcse():
    # errors -1, 0, 2: squared 1, 0, 4, MSE 5/3, sum((e^2 - MSE)^2) = 26/3
    of_mse = measures.mse(ESTIMATES, TRUTH)
    assert of_mse.value == pytest.approx(5 / 3)
    assert of_mse.mcse == pytest.approx(math.sqrt((26 / 3) / 6))
    of_rmse = measures.rmse(ESTIMATES, TRUTH)
    assert of_rmse.value == pytest.approx(math.sqrt(5 / 3))
    assert of_rmse.mcse == pytest.approx(math.sqrt(13) / 3 / (2 * math.sqrt(5 / 3)))


def test_bias_mcse_is_empse_over_root_n():
    draws = np.random.default_rng(1).normal(size=57)
    assert measures.bias(draws, 0).mcse == pytest.approx(
        measures.empirical_se(draws).value / math.sqrt(57)
    )


def test_proportion_mcse():
    result = measures.proportion([True, False, False, False])
    assert result.value == 0.25
    assert result.mcse == pytest.approx(math.sqrt(0.25 * 0.75 / 4))


def test_non_finite_estimates_are_left_out_and_counted():
    result = measures.bias(ESTIMATES + [np.inf, np.nan], TRUTH)
    assert result.n_used == 3
    assert result.value == pytest.approx(1 / 3)
    assert measures.bias([np.nan], 0).n_used == 0


def test_clustered_mean_by_hand():
    # clusters {1, 2} and {3, 4}: sums 3, 7, counts 2, 2, mean 2.5,
    # variance 2/1 * ((3 - 5)^2 + (7 - 5)^2) / 4^2 = 1
    mean, se = measures.clustered_mean([1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1])
    assert mean == pytest.approx(2.5)
    assert se == pytest.approx(1.0)


def test_rmse_ratio_by_hand():
    # a = (1, 2, 3), b = (2, 2, 2): ratio of means 1, var = var(a) / b^2 / n = 1 / 12
    result = measures.rmse_ratio([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert result.value == pytest.approx(1.0)
    assert result.mcse == pytest.approx(math.sqrt(1 / 12) / 2)


def test_rmse_of_replicate_mse():
    result = measures.rmse_of_replicate_mse([1.0, 2.0, 3.0])
    assert result.value == pytest.approx(math.sqrt(2.0))
    assert result.mcse == pytest.approx((1 / math.sqrt(3)) / (2 * math.sqrt(2.0)))


def test_replicate_slopes():
    observed = np.array([[0.1, 0.5, 0.9], [0.2, 0.2, 0.2]])
    shrunk = 0.5 + 0.6 * (observed - 0.5)
    slopes = measures.replicate_slopes(shrunk, observed)
    assert slopes[0] == pytest.approx(0.6)
    assert np.isnan(slopes[1])  # no spread in the observed proportions
    assert measures.replicate_slopes(observed[:1], observed[:1])[0] == 1.0


def test_interval_coverage_by_hand():
    # Replicate 0 covers 2 of 3, replicate 1 covers 3 of 3, replicate 2 has an improper posterior
    # (NaN intervals) and is left out: C = 5/6 over n = 2 replicates.
    truth = np.array([[0.2, 0.5, 0.9], [0.3, 0.3, 0.3], [0.5, 0.5, 0.5]])
    lower = np.array([[0.1, 0.4, 0.95], [0.2, 0.3, 0.0], [np.nan] * 3])
    upper = np.array([[0.3, 0.6, 0.99], [0.4, 0.31, 0.3], [np.nan] * 3])
    result = measures.interval_coverage(lower, upper, truth)
    assert result.value == pytest.approx(5 / 6)
    assert result.mcse == pytest.approx(math.sqrt(5 / 6 * 1 / 6 / 2))
    assert result.n_used == 2
    assert measures.interval_coverage(lower[2:], upper[2:], truth[2:]).n_used == 0
