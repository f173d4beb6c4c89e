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


# --- interval estimands -------------------------------------------------------------------

Z95 = 1.959963984540054
SES = [0.5, 1.0, 1.5]  # se^2 = 1/4, 1, 9/4: mean 7/6, var (divisor n - 1) 49/48


def _rsimsum_performance(estimates, ses, truth):
    """rsimsum's R/performance.R (lines 24-27, 57-65, 81, 85, 100-108, 213-221), transcribed."""
    keep = ~np.isnan(estimates) & ~np.isnan(ses)
    nsim = keep.sum()
    est, se = estimates[~np.isnan(estimates)], ses[~np.isnan(ses)]
    se2_var = np.var(se**2, ddof=1)
    empse = np.sqrt(np.sum((est - est.mean()) ** 2) / (nsim - 1))
    modelse = np.sqrt(np.sum(se**2) / nsim)
    both_est, both_se = estimates[keep], ses[keep]
    cover = np.sum((truth >= both_est - Z95 * both_se) & (truth <= both_est + Z95 * both_se)) / nsim
    return {
        "modelse": (modelse, np.sqrt(se2_var / (4 * nsim * modelse**2))),
        "relerror": (100 * (modelse / empse - 1),
                     100 * (modelse / empse) * np.sqrt(se2_var / (4 * nsim * modelse**4) + 1 / (2 * (nsim - 1)))),
        "cover": (cover, np.sqrt(cover * (1 - cover) / nsim)),
    }


def test_modelse_is_the_root_mean_squared_se_with_rsimsums_mcse():
    result = measures.modelse(ESTIMATES, SES)
    assert result.value == pytest.approx(math.sqrt(7 / 6))
    # sqrt(var(se^2) / (4 n ModSE^2)) = sqrt((49/48) / (4 * 3 * 7/6))
    assert result.mcse == pytest.approx(7 / math.sqrt(672))
    assert result.n_used == 3


def test_relerror_modelse_and_its_mcse_by_hand():
    # ModSE / EmpSE = sqrt(7/6) / sqrt(7/3) = 1 / sqrt(2);
    # var(se^2) / (4 n ModSE^4) = (49/48) / (12 * 49/36) = 1/16, 1 / (2 (n - 1)) = 1/4
    result = measures.relerror_modelse(ESTIMATES, SES)
    assert result.value == pytest.approx(100 * (1 / math.sqrt(2) - 1))
    assert result.mcse == pytest.approx(100 / math.sqrt(2) * math.sqrt(5) / 4)
    assert result.n_used == 3


def test_se_measures_match_a_transcription_of_rsimsum():
    rng = np.random.default_rng(3)
    estimates = rng.normal(0.4, 0.3, size=200)
    ses = np.abs(rng.normal(0.28, 0.04, size=200))
    reference = _rsimsum_performance(estimates, ses, 0.4)
    lower, upper = estimates - Z95 * ses, estimates + Z95 * ses
    for name, result in (("modelse", measures.modelse(estimates, ses)),
                         ("relerror", measures.relerror_modelse(estimates, ses)),
                         ("cover", measures.coverage(lower, upper, 0.4))):
        assert (result.value, result.mcse) == pytest.approx(reference[name], rel=1e-12), name
        assert result.n_used == 200


def test_se_measures_use_only_replicates_with_both_estimate_and_se():
    with_gaps = measures.relerror_modelse(ESTIMATES + [np.inf, 5.0], SES + [1.0, np.nan])
    assert with_gaps == measures.relerror_modelse(ESTIMATES, SES)
    assert measures.modelse([1.0, np.nan], [np.nan, 1.0]).n_used == 0
    with pytest.raises(ValueError, match=">= 0"):
        measures.modelse([1.0, 2.0], [0.1, -0.1])
    with pytest.raises(ValueError, match="length"):
        measures.modelse([1.0, 2.0], [0.1])


def test_coverage_counts_the_ends_and_skips_nonfinite_intervals():
    # [0, 2] holds 2 (at its end), [1, 3] holds it, [3, 5] does not; the NaN interval is left out
    result = measures.coverage([0.0, 1.0, 3.0, np.nan], [2.0, 3.0, 5.0, 1.0], 2.0)
    assert result.value == pytest.approx(2 / 3)
    assert result.mcse == pytest.approx(math.sqrt(2 / 9 / 3))
    assert result.n_used == 3
    with pytest.raises(ValueError, match="lower > upper"):
        measures.coverage([1.0], [0.0], 0.5)


def test_mean_width_by_hand():
    result = measures.mean_width([0.0, 1.0, 3.0, np.nan], [2.0, 4.0, 7.0, 1.0])
    assert result.value == pytest.approx(3.0)  # widths 2, 3, 4
    assert result.mcse == pytest.approx(1 / math.sqrt(3))
    assert result.n_used == 3


def test_clustered_coverage_is_the_ratio_estimator_over_replicates():
    # replicate 0 covers 2 of 3, replicate 1 covers 2 of 2 (one NaN interval): 4/5;
    # variance 2/1 * ((2 - 0.8 * 3)^2 + (2 - 0.8 * 2)^2) / 5^2 = 0.0256
    lower = np.array([[0.1, 0.2, 0.6], [0.1, np.nan, 0.3]])
    upper = np.array([[0.6, 0.7, 0.9], [0.6, 0.5, 0.8]])
    truth = np.full((2, 3), 0.5)
    replicate = np.repeat([0, 1], 3).reshape(2, 3)
    result = measures.clustered_coverage(lower, upper, truth, replicate)
    assert result.value == pytest.approx(0.8)
    assert result.mcse == pytest.approx(0.16)
    assert result.n_used == 2
    width = measures.clustered_mean_width(lower, upper, replicate)
    assert width.value == pytest.approx((0.5 + 0.5 + 0.3 + 0.5 + 0.5) / 5)


def test_clustered_coverage_with_complete_replicates_is_the_mean_of_their_coverages():
    rng = np.random.default_rng(5)
    centre = rng.normal(size=(40, 7))
    lower, upper = centre - 1.0, centre + 1.0
    replicate = np.repeat(np.arange(40), 7).reshape(40, 7)
    result = measures.clustered_coverage(lower, upper, np.zeros((40, 7)), replicate)
    per_replicate = ((lower <= 0) & (0 <= upper)).mean(axis=1)
    assert result.value == pytest.approx(per_replicate.mean())
    assert result.mcse == pytest.approx(per_replicate.std(ddof=1) / math.sqrt(40))
    assert result.n_used == 40


def test_rejection_rate_counts_p_at_or_below_the_level():
    result = measures.rejection_rate([0.01, 0.05, 0.2, np.nan])
    assert result.value == pytest.approx(2 / 3)
    assert result.mcse == pytest.approx(math.sqrt(2 / 9 / 3))
    assert result.n_used == 3
    with pytest.raises(ValueError, match="level"):
        measures.rejection_rate([0.1], level=5)
