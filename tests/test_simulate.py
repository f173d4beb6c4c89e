"""The data-generating mechanism and its per-replicate seeding."""

import numpy as np
import pytest
from scipy.special import logit

from glmmshrink.config import Cell
from glmmshrink.simulate import replicate_rng, simulate_replicate, simulate_replicates

CELL = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7)
UNBALANCED = Cell(n_groups=40, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.5)


def test_a_replicate_does_not_depend_on_its_chunk():
    whole = simulate_replicates(CELL, 11, 0, 10)
    first, second = simulate_replicates(CELL, 11, 0, 4), simulate_replicates(CELL, 11, 4, 10)
    for name in ("replicate", "n", "y", "p_true"):
        joined = np.concatenate([getattr(first, name), getattr(second, name)])
        assert np.array_equal(getattr(whole, name), joined)
    n, y, p_true = simulate_replicate(CELL, replicate_rng(11, CELL.key, 7))
    assert np.array_equal(whole.y[7], y) and np.array_equal(whole.p_true[7], p_true)


def test_seed_and_cell_change_the_data():
    base = simulate_replicates(CELL, 11, 0, 5).y
    assert not np.array_equal(base, simulate_replicates(CELL, 12, 0, 5).y)
    other = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.6)
    assert not np.array_equal(base, simulate_replicates(other, 11, 0, 5).y)


def test_counts_are_valid_and_unbalanced_sizes_span_the_range():
    data = simulate_replicates(UNBALANCED, 3, 0, 50)
    assert data.y.dtype == np.int64 and (data.y >= 0).all() and (data.y <= data.n).all()
    assert data.n.min() == 2 and data.n.max() == 50


def test_true_probabilities_follow_the_model():
    data = simulate_replicates(CELL, 5, 0, 400)
    logits = logit(data.p_true).ravel()
    n = logits.size
    # mean logit(p0) and SD 1, each within 5 standard errors
    assert abs(logits.mean() - logit(0.7)) < 5 / np.sqrt(n)
    assert abs(logits.std(ddof=1) - 1.0) < 5 / np.sqrt(2 * (n - 1))
    flat = Cell(n_groups=5, n_trials_min=10, n_trials_max=10, re_sd=0.0, p0=0.3)
    no_spread = simulate_replicates(flat, 5, 0, 3)
    assert no_spread.p_true == pytest.approx(np.full((3, 5), 0.3))


def test_bad_range_is_rejected():
    with pytest.raises(ValueError, match="start"):
        simulate_replicates(CELL, 1, 5, 2)


# --- re_dist: the random effects' distribution ------------------------------------------------

from scipy import stats  # noqa: E402

from glmmshrink.random_effects import standardized_draws, standardized_moments  # noqa: E402

N_BATCHES = 100


def simulated_effects(re_dist: str, re_sd: float = 2.0, groups: int = 2000, replicates: int = 200):
    """The random effects b_i / re_sd the simulator drew, recovered from the true p_i."""
    cell = Cell(n_groups=groups, n_trials_min=1, n_trials_max=1, re_sd=re_sd, p0=0.4,
                re_dist=re_dist)
    data = simulate_replicates(cell, 17, 0, replicates)
    return (logit(data.p_true).ravel() - cell.beta_true) / re_sd


def batch_se(values, statistic) -> float:
    """Monte Carlo SE of ``statistic`` over all values: the SD of its value on N_BATCHES equal
    batches over sqrt(N_BATCHES) (batch means; valid for any statistic that is ~normal)."""
    batches = np.array([statistic(part) for part in np.array_split(values, N_BATCHES)])
    return batches.std(ddof=1) / np.sqrt(N_BATCHES)


def sd(values):
    return values.std(ddof=1)


@pytest.mark.parametrize("re_dist", ["bimodal", "skewed", "t5", "t10"])
def test_random_effects_have_mean_zero_and_sd_re_sd(re_dist):
    z = simulated_effects(re_dist)
    assert z.size == 400_000
    assert abs(z.mean()) < 4 / np.sqrt(z.size)  # SE of the mean is SD / sqrt(n) = 1 / sqrt(n)
    assert abs(sd(z) - 1) < 4 * batch_se(z, sd)


@pytest.mark.parametrize("re_dist, statistic, name", [
    ("skewed", stats.skew, "skewness"),         # sqrt(2), Gamma(2)'s 2 / sqrt(2)
    ("skewed", stats.kurtosis, "excess_kurtosis"),  # 3
    ("bimodal", stats.kurtosis, "excess_kurtosis"),  # -0.8192
    ("t10", stats.kurtosis, "excess_kurtosis"),  # 6 / (10 - 4) = 1; t10 has the 8th moment its SE needs
    ("t10", stats.skew, "skewness"),             # 0
])
def test_random_effects_have_the_stated_shape(re_dist, statistic, name):
    z = simulated_effects(re_dist)
    expected = getattr(standardized_moments(re_dist), name)
    se = batch_se(z, statistic)
    assert abs(statistic(z) - expected) < 4 * se
    assert se < 0.1  # power: tells t10 (kurtosis 1) or skewed from a normal shape by > 10 SEs


def test_stated_moments_are_the_formulas():
    assert standardized_moments("skewed").skewness == pytest.approx(np.sqrt(2))
    assert standardized_moments("t6").excess_kurtosis == pytest.approx(3.0)
    assert standardized_moments("t3").excess_kurtosis == np.inf
    assert standardized_moments("bimodal").excess_kurtosis == pytest.approx(
        0.8**4 + 6 * 0.8**2 * 0.6**2 + 3 * 0.6**4 - 3)


@pytest.mark.parametrize("re_dist, distribution", [
    ("normal", stats.norm()),
    ("t3", stats.t(3, scale=np.sqrt(1 / 3))),   # t3 has no kurtosis: test the whole CDF
    ("t5", stats.t(5, scale=np.sqrt(3 / 5))),
    ("skewed", stats.gamma(2, loc=-np.sqrt(2), scale=1 / np.sqrt(2))),
])
def test_random_effects_follow_the_stated_distribution(re_dist, distribution):
    z = simulated_effects(re_dist, groups=500, replicates=100)
    assert stats.kstest(z, distribution.cdf).pvalue > 1e-3


def test_bimodal_effects_have_two_modes_at_plus_minus_point_eight():
    z = simulated_effects("bimodal")
    width = 0.1
    counts, _ = np.histogram(z, bins=[-0.8 - width / 2, -0.8 + width / 2, -width / 2, width / 2,
                                      0.8 - width / 2, 0.8 + width / 2])
    at_modes, at_zero = counts[[0, 4]], counts[2]
    # Poisson SEs of the bin counts; the mixture density is 0.342 at +-0.8 and 0.273 at 0.
    assert all(at_modes - at_zero > 5 * np.sqrt(at_modes + at_zero))
    mixture_cdf = lambda x: 0.5 * (stats.norm.cdf(x, -0.8, 0.6) + stats.norm.cdf(x, 0.8, 0.6))  # noqa: E731
    assert stats.kstest(z[:50_000], mixture_cdf).pvalue > 1e-3


def test_normal_cells_draw_what_they_always_drew():
    # Before re_dist, z was rng.standard_normal(I) right after the group sizes.
    cell = Cell(n_groups=9, n_trials_min=3, n_trials_max=8, re_sd=0.7, p0=0.3)
    rng = replicate_rng(5, cell.key, 2)
    n, _, p_true = simulate_replicate(cell, replicate_rng(5, cell.key, 2))
    expected_n = rng.integers(3, 8, size=9, endpoint=True)
    expected_p = 1 / (1 + np.exp(-(cell.beta_true + 0.7 * rng.standard_normal(9))))
    assert np.array_equal(n, expected_n)
    assert np.array_equal(p_true, expected_p)
    assert np.array_equal(standardized_draws("normal", np.random.default_rng(3), 4),
                          np.random.default_rng(3).standard_normal(4))
