"""Interval constructions and the boundary LRT of sigma = 0 (glmmshrink.intervals)."""

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import binom, binomtest, chi2

from glmmshrink import fit_glmm
from glmmshrink.intervals import (
    binomial_null_loglik, boundary_lrt_pvalue, boundary_lrt_statistic, conditional_mode_interval,
    critical_value, wald_interval, wilson_interval,
)

Z95 = 1.959963984540054


def test_critical_value_is_the_normal_quantile_and_rejects_bad_levels():
    assert critical_value(0.95) == pytest.approx(Z95, abs=1e-12)
    assert critical_value(0.9) == pytest.approx(1.6448536269514722, abs=1e-12)
    for level in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="level"):
            critical_value(level)


def test_wilson_matches_scipys_score_interval_at_every_count():
    n = 10
    y = np.arange(n + 1)
    lower, upper = wilson_interval(y, np.full_like(y, n))
    for count in y:
        expected = binomtest(int(count), n).proportion_ci(0.95, method="wilson")
        assert lower[count] == pytest.approx(expected.low, abs=1e-12)
        assert upper[count] == pytest.approx(expected.high, abs=1e-12)


def test_wilson_by_hand_and_exact_at_zero_and_all_successes():
    # y = 3, n = 10: centre (3 + z^2/2) / (10 + z^2), half z / (10 + z^2) sqrt(3 * 7 / 10 + z^2 / 4)
    z2 = Z95**2
    centre, half = (3 + z2 / 2) / (10 + z2), Z95 / (10 + z2) * np.sqrt(2.1 + z2 / 4)
    lower, upper = wilson_interval([0, 3, 10], [10, 10, 10])
    assert lower[1] == pytest.approx(centre - half, rel=1e-12)
    assert upper[1] == pytest.approx(centre + half, rel=1e-12)
    assert lower[0] == 0.0 and upper[0] == pytest.approx(z2 / (10 + z2), rel=1e-12)
    assert upper[2] == 1.0 and lower[2] == pytest.approx(10 / (10 + z2), rel=1e-12)


def test_wilson_padding_gives_nan_and_bad_counts_raise():
    lower, upper = wilson_interval(np.array([[2, 0]]), np.array([[5, 0]]))
    assert np.isfinite(lower[0, 0]) and np.isnan(lower[0, 1]) and np.isnan(upper[0, 1])
    with pytest.raises(ValueError, match="0 <= y <= n"):
        wilson_interval([6], [5])
    with pytest.raises(ValueError, match="same shape"):
        wilson_interval([1, 2], [5])


def test_wilson_covers_close_to_nominal_on_average():
    # Brown, Cai & DasGupta (2001): averaged over p in (0, 1), Wilson's coverage is near 0.95.
    n, grid = 20, np.linspace(0.01, 0.99, 99)
    y = np.arange(n + 1)
    lower, upper = wilson_interval(y, np.full_like(y, n))
    coverage = [(binom.pmf(y, n, p) * ((lower <= p) & (p <= upper))).sum() for p in grid]
    assert 0.94 < np.mean(coverage) < 0.96


def test_wald_interval_by_hand_and_nan_for_nonfinite():
    lower, upper = wald_interval([0.5, np.inf, 1.0], [0.1, 0.2, np.nan])
    assert lower[0] == pytest.approx(0.5 - Z95 * 0.1) and upper[0] == pytest.approx(0.5 + Z95 * 0.1)
    assert np.isnan(lower[1:]).all() and np.isnan(upper[1:]).all()
    with pytest.raises(ValueError, match=">= 0"):
        wald_interval([0.0], [-1.0])


def test_conditional_mode_interval_is_expit_of_the_logit_interval_per_replicate():
    beta = np.array([0.8, -0.3])
    b = np.array([[0.2, -0.5, 0.0], [1.0, 0.0, -1.0]])
    b_sd = np.array([[0.4, 0.5, 0.0], [0.3, 0.2, 0.6]])
    lower, upper = conditional_mode_interval(beta, b, b_sd)
    np.testing.assert_allclose(lower, expit(beta[:, None] + b - Z95 * b_sd), rtol=1e-12)
    np.testing.assert_allclose(upper, expit(beta[:, None] + b + Z95 * b_sd), rtol=1e-12)
    # a singular fit's b_sd = 0 gives the point p-hat
    assert lower[0, 2] == upper[0, 2] == expit(0.8)


def test_conditional_mode_interval_of_a_separated_fit_is_nan():
    lower, upper = conditional_mode_interval(np.array([-np.inf, 0.0]), np.zeros((2, 2)),
                                             np.array([[0.1, 0.1], [0.1, np.nan]]))
    assert np.isnan(lower[0]).all() and np.isnan(upper[0]).all()
    assert np.isfinite(lower[1, 0]) and np.isnan(upper[1, 1])


def test_binomial_null_loglik_is_the_pooled_binomial_log_likelihood():
    y, n = np.array([3, 7, 0, 5]), np.array([10, 10, 4, 5])
    p = y.sum() / n.sum()
    assert binomial_null_loglik(y, n) == pytest.approx(binom.logpmf(y, n, p).sum(), rel=1e-13)


def test_binomial_null_loglik_ignores_padding_and_handles_separation():
    y = np.array([[3, 7, 0], [0, 0, 0]])
    n = np.array([[10, 10, 0], [5, 6, 0]])
    loglik = binomial_null_loglik(y, n)
    assert loglik.shape == (2,)
    assert loglik[0] == binomial_null_loglik([3, 7], [10, 10])
    assert loglik[1] == 0.0  # p = 0: every group's likelihood is 1


def _singular_datasets(datasets):
    singular = []
    for dataset in datasets:
        for nagq in (1, 25):
            fit = fit_glmm(dataset["y"], dataset["n"], nagq=nagq)
            if fit.singular and not fit.separated:
                singular.append((dataset, nagq, fit))
    return singular


def test_null_loglik_equals_fit_glmm_loglik_at_singular_reference_fits(lme4_datasets):
    singular = _singular_datasets(lme4_datasets)
    # J1_bernoulli_1005, small_sd_1009, J1_bernoulli_1018, each with Laplace and AGQ-25
    assert len(singular) == 6
    for dataset, nagq, fit in singular:
        assert fit.sigma == 0.0
        null = binomial_null_loglik(dataset["y"], dataset["n"])
        assert null == pytest.approx(float(fit.loglik), abs=1e-9), (dataset["id"], nagq)
        if nagq == 1:  # lme4's Laplace logLik has the same constant (its AGQ logLik does not)
            assert null == pytest.approx(dataset["laplace"]["loglik"], abs=1e-9)
        assert boundary_lrt_pvalue(fit.loglik, null) == 1.0


def test_fit_loglik_is_never_below_the_null_loglik(lme4_datasets):
    checked = 0
    for dataset in lme4_datasets:
        for nagq in (1, 25):
            fit = fit_glmm(dataset["y"], dataset["n"], nagq=nagq)
            if fit.separated:
                continue
            statistic = boundary_lrt_statistic(fit.loglik, binomial_null_loglik(dataset["y"], dataset["n"]))
            assert statistic >= 0.0, (dataset["id"], nagq)
            checked += 1
    assert checked == 2 * len(lme4_datasets)


def test_boundary_lrt_pvalue_is_half_the_chi2_1_tail():
    statistic = np.array([0.0, 1.0, chi2.ppf(0.9, 1), 10.0])
    pvalue = boundary_lrt_pvalue(statistic / 2, np.zeros(4))
    assert pvalue[0] == 1.0
    np.testing.assert_allclose(pvalue[1:], 0.5 * chi2.sf(statistic[1:], 1), rtol=1e-12)
    assert pvalue[2] == pytest.approx(0.05, rel=1e-12)  # the 5 % critical value is 2.706


def test_boundary_lrt_round_off_is_zero_and_a_fit_below_the_null_is_nan():
    loglik = np.array([-10.0 + 1e-13, -10.0 - 1e-13, -11.0, np.nan, -np.inf])
    statistic = boundary_lrt_statistic(loglik, np.full(5, -10.0))
    assert statistic[0] == statistic[1] == 0.0
    assert np.isnan(statistic[2:]).all()
    pvalue = boundary_lrt_pvalue(loglik, np.full(5, -10.0))
    assert pvalue[0] == pvalue[1] == 1.0 and np.isnan(pvalue[2:]).all()
