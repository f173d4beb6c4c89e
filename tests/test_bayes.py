"""Tests of the exact quadrature posterior in glmmshrink.bayes."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from glmmshrink.bayes import DEFAULT_RULE, _posterior_glmm, posterior_glmm

DATA = Path(__file__).parent / "data"
JAGS = json.loads((DATA / "jags_reference.json").read_text())["datasets"]
JAGS_INTERVALS = json.loads((DATA / "jags_interval_reference.json").read_text())["datasets"]
BRUTE_FORCE = json.loads((DATA / "brute_force_interval_reference.json").read_text())["datasets"]
FIELDS = ("beta_mean", "beta_sd", "beta_lower", "beta_upper", "sigma_mean", "sigma_sd", "p_mean", "p_sd",
          "p_lower", "p_upper", "improper")


@pytest.mark.parametrize("dataset", JAGS, ids=lambda d: d["id"])
def test_posterior_means_agree_with_long_jags_runs(dataset):
    post = posterior_glmm(dataset["y"], dataset["n"])
    assert not post.improper
    assert abs(post.beta_mean - dataset["beta_mean"]) < 4 * dataset["beta_mcse"] + 1e-4
    assert abs(post.sigma_mean - dataset["sigma_mean"]) < 4 * dataset["sigma_mcse"] + 1e-4
    np.testing.assert_array_less(
        np.abs(post.p_mean - np.array(dataset["p_mean"])), 4 * np.array(dataset["p_mcse"]) + 1e-4
    )
    assert np.all((post.p_lower < post.p_mean) & (post.p_mean < post.p_upper))


def _jags_z_scores(post, dataset):
    """(name, differences, MCSEs) of every interval end and mean against the JAGS run."""
    rows = []
    for name in ("p_lower", "p_upper", "p_mean", "beta_lower", "beta_upper", "beta_mean", "sigma_mean"):
        mcse = dataset[name + "_mcse"]
        rows.append((name, np.atleast_1d(getattr(post, name) - np.array(dataset[name])), np.atleast_1d(mcse)))
    return rows


@pytest.mark.parametrize("dataset", JAGS_INTERVALS, ids=lambda d: d["id"])
def test_credible_intervals_agree_with_long_jags_runs(dataset):
    """Every interval end of p_i and beta within 4 MCSE + 2e-4 of 4 x 250,000 JAGS draws, including
    the groups at or next to y = 0 and y = n (the moment-matched normal intervals missed by 0.02);
    posterior means within 4 MCSE + 1e-4 as for jags_reference.json."""
    post = posterior_glmm(dataset["y"], dataset["n"])
    assert not post.improper
    checked = 0
    for name, difference, mcse in _jags_z_scores(post, dataset):
        slack = 2e-4 if name.endswith(("lower", "upper")) else 1e-4
        np.testing.assert_array_less(np.abs(difference), 4 * mcse + slack, err_msg=name)
        checked += difference.size
    assert checked == 3 * len(dataset["y"]) + 4
    assert np.all((post.p_lower < post.p_mean) & (post.p_mean < post.p_upper))
    assert post.beta_lower < post.beta_mean < post.beta_upper


SIMULATED_REFERENCE = {  # id -> (cell, replicate) under the study's master seed 20240611
    "sim_seed_design_r0": ((30, 10, 10, 1.0, 0.7), 0),
    "sim_I5_r1": ((5, 10, 10, 1.0, 0.7), 1),
    "sim_sd015_r1": ((30, 10, 10, 0.15, 0.7), 1),
    "sim_unbalanced_r2": ((30, 2, 50, 1.0, 0.5), 2),
}


def test_interval_reference_datasets_come_from_the_study_simulator():
    from glmmshrink.config import Cell
    from glmmshrink.simulate import simulate_replicates

    by_id = {d["id"]: d for d in JAGS_INTERVALS}
    for name, (cell, replicate) in SIMULATED_REFERENCE.items():
        data = simulate_replicates(Cell(**dict(zip(('n_groups', 'n_trials_min', 'n_trials_max', 're_sd', 'p0'), cell))), 20240611, replicate, replicate + 1)
        assert data.y[0].tolist() == by_id[name]["y"] and data.n[0].tolist() == by_id[name]["n"], name
    # Each holds a group at or next to y = 0 or y = n, where normal-shaped intervals failed.
    for name in SIMULATED_REFERENCE:
        y, n = np.array(by_id[name]["y"]), np.array(by_id[name]["n"])
        assert np.any((y <= 1) | (y >= n - 1)), name


@pytest.mark.parametrize("grid", BRUTE_FORCE, ids=lambda d: d["id"])
def test_credible_intervals_agree_with_brute_force_grid(grid):
    """The independent dense-grid posterior of tests/bayes_brute_force.py, free of Monte Carlo error.

    With 30 groups or more the grid is good to ~1e-5: p ends and means must agree to 5e-5 and
    beta's ends (logit scale) to 1e-4 (the default rule's own error there reaches 4e-5, on the
    rare-events data). With I = 5, sigma's posterior has a heavy tail (97.5 % point ~12) in
    which beta's SD exceeds 20: the grid's beta range (-+60) cuts it off beyond sigma ~ 40, which
    moves the grid's beta ends by up to ~1e-2 and its p ends by up to ~1e-4, so there only the
    p ends are compared, to 2e-4; the same data under sigma ~ U(0, 30), whose posterior the grid
    holds, are held to the full standard.
    """
    post = posterior_glmm(grid["y"], grid["n"], sigma_prior=("uniform", grid.get("sigma_upper", 100.0)))
    # Under sigma ~ U(0, 30) the I = 5 grid holds the whole posterior and is held to the same standard.
    many = len(grid["y"]) >= 20 or grid.get("sigma_upper") == 30.0
    for name in ("p_lower", "p_upper") + (("p_mean",) if many else ()):
        np.testing.assert_allclose(getattr(post, name), grid[name], rtol=0, atol=5e-5 if many else 2e-4, err_msg=name)
    if many:
        for name in ("beta_lower", "beta_upper", "beta_mean"):
            assert getattr(post, name) == pytest.approx(grid[name], abs=1e-4), name


def test_brute_force_reference_covers_every_jags_interval_dataset():
    plain = [d["id"] for d in BRUTE_FORCE if "sigma_upper" not in d]
    assert sorted(plain) == sorted(d["id"] for d in JAGS_INTERVALS)


@pytest.mark.parametrize(
    "dataset", [d for d in JAGS_INTERVALS if d["id"] in ("sim_seed_design_r0", "sim_sd015_r1")], ids=lambda d: d["id"]
)
def test_refined_rule_changes_interval_ends_by_under_5e5(dataset):
    finer = replace(DEFAULT_RULE, sigma_near_zero=12, log_sigma_tail=20, log_sigma_bulk=28, beta=13,
                    group=21, left_drop=20.0, right_drop=32.0)
    base = posterior_glmm(dataset["y"], dataset["n"])
    fine = _posterior_glmm(dataset["y"], dataset["n"], "flat", ("uniform", 100.0), finer)
    for name in ("p_lower", "p_upper", "beta_lower", "beta_upper"):
        np.testing.assert_allclose(getattr(base, name), getattr(fine, name), rtol=0, atol=5e-5, err_msg=name)


@pytest.mark.parametrize("trials, sd, replicate", [(20, 0.0, 16), (20, 0.25, 15), (5, 0.5, 4), (5, 0.5, 22)])
def test_refined_rule_changes_small_sd_study_cells_by_under_5e5(trials, sd, replicate):
    """Replicates of the default study's small-sd cells (master seed 20240611), where the posterior
    of log sigma is wide and skewed and the bulk panel spans several units of log sigma. With 18
    bulk nodes these replicates were 9e-5 to 1.4e-4 from the refined rule on their p ends and up
    to 3.4e-5 on sigma's mean; with 24, under 1e-6."""
    from glmmshrink.config import Cell
    from glmmshrink.simulate import simulate_replicates

    cell = Cell(n_groups=30, n_trials_min=trials, n_trials_max=trials, re_sd=sd, p0=0.5)
    data = simulate_replicates(cell, 20240611, replicate, replicate + 1)
    finer = replace(DEFAULT_RULE, sigma_near_zero=12, log_sigma_tail=20, log_sigma_bulk=28, beta=13,
                    group=21, left_drop=20.0, right_drop=32.0)
    base = posterior_glmm(data.y, data.n)
    fine = _posterior_glmm(data.y, data.n, "flat", ("uniform", 100.0), finer)
    for name in ("p_lower", "p_upper", "beta_lower", "beta_upper"):
        np.testing.assert_allclose(getattr(base, name), getattr(fine, name), rtol=0, atol=5e-5, err_msg=name)
    for name in ("beta_mean", "sigma_mean", "p_mean", "sigma_sd", "p_sd"):
        np.testing.assert_allclose(getattr(base, name), getattr(fine, name), rtol=0, atol=1e-5, err_msg=name)


def test_grid_quantiles_invert_skewed_cdfs_from_either_tail():
    from scipy.stats import lognorm, skewnorm

    from glmmshrink._bayes_intervals import grid_quantiles

    grid = np.arange(0.0, 25.0, 0.02)
    laws = [lognorm(0.5), skewnorm(6.0, loc=2.0, scale=1.5)]
    density = np.stack([law.pdf(grid) for law in laws], axis=1)
    want = np.stack([law.ppf([0.025, 0.975]) for law in laws], axis=1)
    np.testing.assert_allclose(grid_quantiles(0.0, 0.02, density, (0.025, 0.975)), want, rtol=0, atol=2e-6)
    # With the exact totals, mass missing from the far right does not move the lower quantile.
    cut = grid < 1.0
    lower = grid_quantiles(0.0, 0.02, density[cut], (0.025,), totals=np.ones(2))
    np.testing.assert_allclose(lower[0, 0], want[0, 0], rtol=0, atol=2e-6)


def test_grid_quantiles_of_zero_padded_columns_equal_each_column_alone():
    """block_quantiles inverts every replicate's columns in one call, zero-padded to the longest:
    a column's quantiles must not depend on the padding or on its neighbours."""
    from scipy.stats import lognorm, skewnorm

    from glmmshrink._bayes_intervals import grid_quantiles

    columns = [(0.0, 0.02, lognorm(0.5).pdf(np.arange(0.0, 9.0, 0.02)), 1.0),
               (1.0, 0.05, skewnorm(6.0, loc=2.0, scale=1.5).pdf(1.0 + 0.05 * np.arange(140)), 1.0),
               (-3.0, 0.1, np.exp(-0.5 * (-3.0 + 0.1 * np.arange(61)) ** 2), np.sqrt(2.0 * np.pi))]
    rows = max(density.size for _, _, density, _ in columns) + 7
    stacked = np.zeros((rows, len(columns)))
    for k, (_, _, density, _) in enumerate(columns):
        stacked[:density.size, k] = density
    start, step, _, totals = (np.array(v, dtype=float) for v in zip(*[(a, b, 0.0, d) for a, b, _, d in columns]))
    lengths = np.array([density.size for _, _, density, _ in columns])
    together = grid_quantiles(start, step, stacked, (0.025, 0.975), totals, lengths)
    for k, (first, spacing, density, total) in enumerate(columns):
        alone = grid_quantiles(first, spacing, density[:, None], (0.025, 0.975), np.array([total]))
        np.testing.assert_array_equal(together[:, k], alone[:, 0])


def test_refined_rule_changes_seed_design_means_by_under_1e5():
    dataset = JAGS[0]
    finer = replace(DEFAULT_RULE, sigma_near_zero=20, log_sigma_tail=24, log_sigma_bulk=28, beta=17,
                    group=27, left_drop=20.0, right_drop=32.0)
    base = posterior_glmm(dataset["y"], dataset["n"])
    fine = _posterior_glmm(dataset["y"], dataset["n"], "flat", ("uniform", 100.0), finer)
    for name in ("beta_mean", "sigma_mean", "p_mean", "beta_sd", "sigma_sd", "p_sd"):
        np.testing.assert_allclose(getattr(base, name), getattr(fine, name), rtol=0, atol=1e-5, err_msg=name)


def _batch(seed=3, reps=6, groups=12):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 15, size=(reps, groups))
    y = rng.binomial(n, rng.uniform(0.2, 0.8, size=(reps, 1)))
    return y, n


def test_improper_replicates_are_nan_and_do_not_disturb_others():
    y, n = _batch()
    y[2] = 0
    y[4] = n[4]
    post = posterior_glmm(y, n)
    assert post.improper.tolist() == [False, False, True, False, True, False]
    for name in FIELDS[:-1]:
        assert np.all(np.isnan(getattr(post, name)[[2, 4]]))
    alone = posterior_glmm(y[[0, 1, 3, 5]], n[[0, 1, 3, 5]])
    for name in FIELDS:
        assert np.array_equal(getattr(post, name)[[0, 1, 3, 5]], getattr(alone, name)), name


def _brute_force_posterior(y, n, beta_prior, sigma_prior, n_grid=161, n_u=801):
    """Posterior means by dense trapezoid rules over (beta, log sigma, u): slow but independent."""
    y, n = np.asarray(y, float), np.asarray(n, float)
    beta = np.linspace(-12, 12, n_grid)
    log_sigma = np.linspace(-12, 6, n_grid)
    u = np.linspace(-9, 9, n_u)
    b, t = np.meshgrid(beta, log_sigma, indexing="ij")
    sigma = np.exp(t)
    eta = b[..., None] + sigma[..., None] * u
    log_post, p_given = t.copy(), []
    for successes, trials in zip(y, n):  # one group at a time keeps memory small
        integrand = np.exp(successes * eta - trials * np.logaddexp(0, eta) - 0.5 * u * u)
        marginal = integrand.sum(-1)
        p_given.append((integrand * expit(eta)).sum(-1) / marginal)
        log_post += np.log(marginal)
    p_given = np.stack(p_given, axis=-1)
    if beta_prior != "flat":
        log_post -= 0.5 * ((b - beta_prior[1]) / beta_prior[2]) ** 2
    kind, scale = sigma_prior
    log_post += -np.log1p((sigma / scale) ** 2) if kind == "half_cauchy" else -0.5 * (sigma / scale) ** 2
    weight = np.exp(log_post - log_post.max())
    weight /= weight.sum()
    return (weight * b).sum(), (weight * sigma).sum(), (weight[..., None] * p_given).sum((0, 1))


@pytest.mark.parametrize(
    "y, n, beta_prior, sigma_prior, tolerance",
    [
        ([3, 7, 1], [10, 10, 5], ("normal", 0.5, 2.0), ("half_cauchy", 1.0), 1e-4),
        ([1, 4], [8, 6], "flat", ("half_normal", 1.5), 1e-4),
        # All trials failed: proper only through the normal beta prior. beta given sigma is then
        # strongly skewed and the 9-node Gauss-Hermite rule in beta is good to ~7e-4 only.
        ([0, 0, 0, 0], [10, 10, 10, 10], ("normal", 0.0, 2.0), ("half_normal", 1.0), 1.5e-3),
    ],
)
def test_other_priors_agree_with_brute_force_integration(y, n, beta_prior, sigma_prior, tolerance):
    post = posterior_glmm(y, n, beta_prior=beta_prior, sigma_prior=sigma_prior)
    beta_mean, sigma_mean, p_mean = _brute_force_posterior(y, n, beta_prior, sigma_prior)
    assert not post.improper
    assert post.beta_mean == pytest.approx(beta_mean, abs=tolerance)
    assert post.sigma_mean == pytest.approx(sigma_mean, abs=tolerance)
    np.testing.assert_allclose(post.p_mean, p_mean, rtol=0, atol=tolerance)


def _mixed_batch(seed=99, reps=12, groups=30):
    """Replicates of different designs (J = 2, 10, 50, unbalanced; sd 0.3 to 2.5): they converge
    in different numbers of iterations and have different numbers of distinct groups."""
    rng = np.random.default_rng(seed)
    ys, ns = [], []
    for k in range(reps):
        trials = [2, 10, 50, (5, 50)][k % 4]
        n = rng.integers(trials[0], trials[1] + 1, groups) if isinstance(trials, tuple) else np.full(groups, trials)
        logit_p = rng.normal(0, 1.5) + rng.normal(0, [0.3, 1.0, 2.5][k % 3], groups)
        ys.append(rng.binomial(n, expit(logit_p)))
        ns.append(n)
    return np.array(ys), np.array(ns)


def test_results_do_not_depend_on_batch_order_or_chunk():
    y, n = _mixed_batch()
    y[5] = 0  # one improper replicate in the batch
    together = posterior_glmm(y, n)
    order = np.random.default_rng(1).permutation(len(y))
    shuffled = posterior_glmm(y[order], n[order])
    small_chunks = _posterior_glmm(y, n, "flat", ("uniform", 100.0), replace(DEFAULT_RULE, chunk=3))
    for i in range(len(y)):
        alone = posterior_glmm(y[i], n[i])
        for name in FIELDS:
            value = getattr(together, name)[i]
            assert np.array_equal(value, getattr(alone, name), equal_nan=True), (i, name)
            assert np.array_equal(value, getattr(shuffled, name)[np.argsort(order)[i]], equal_nan=True), (i, name)
            assert np.array_equal(value, getattr(small_chunks, name)[i], equal_nan=True), (i, name)


def test_a_replicate_is_bit_identical_alone_and_anywhere_in_batches_of_any_size():
    """Blocks are computed with a leading replicate axis (grids padded to the block's longest), so
    check each replicate alone against every position in batches of different sizes, neighbours,
    widths (distinct groups) and chunkings."""
    y, n = _mixed_batch(seed=7, reps=8)
    other_y, other_n = _mixed_batch(seed=123, reps=40)
    other_y[3] = other_n[3]  # an improper neighbour
    batches = []
    for size, position in ((2, 0), (2, 1), (5, 2), (17, 16), (40, 0), (40, 23), (40, 39)):
        batches.append((size, position))
    for i in (0, 1, 5, 6):
        alone = posterior_glmm(y[i], n[i])
        for size, position in batches:
            batch_y, batch_n = other_y[:size].copy(), other_n[:size].copy()
            batch_y[position], batch_n[position] = y[i], n[i]
            for chunk in (DEFAULT_RULE.chunk, 7):
                post = _posterior_glmm(batch_y, batch_n, "flat", ("uniform", 100.0), replace(DEFAULT_RULE, chunk=chunk))
                for name in FIELDS:
                    np.testing.assert_array_equal(getattr(post, name)[position], getattr(alone, name),
                                                  err_msg=f"{i} {size} {position} {chunk} {name}")


def test_padding_groups_are_nan_and_change_nothing_else():
    y, n = _batch(seed=5, reps=3, groups=8)
    padded_y = np.concatenate([y, np.zeros((3, 2), int)], axis=1)
    padded_n = np.concatenate([n, np.zeros((3, 2), int)], axis=1)
    plain, padded = posterior_glmm(y, n), posterior_glmm(padded_y, padded_n)
    assert np.all(np.isnan(padded.p_mean[:, 8:]))
    for name in FIELDS:
        value = getattr(padded, name)
        assert np.array_equal(value[:, :8] if value.ndim == 2 else value, getattr(plain, name)), name


def test_uniform_prior_truncates_sigma():
    dataset = JAGS[4]  # big_sd: sigma near 3
    capped = posterior_glmm(dataset["y"], dataset["n"], sigma_prior=("uniform", 1.5))
    assert capped.sigma_mean < 1.5
    assert capped.sigma_mean > 1.0  # the likelihood pushes the mass against the cap


@pytest.mark.parametrize("sigma_prior", [("half_cauchy", 1.0), ("half_normal", 2.0)])
def test_other_sigma_priors_run_and_shrink_sigma(sigma_prior):
    dataset = JAGS[0]
    flat = posterior_glmm(dataset["y"], dataset["n"])
    other = posterior_glmm(dataset["y"], dataset["n"], sigma_prior=sigma_prior)
    assert 0 < other.sigma_mean < flat.sigma_mean


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beta_prior="uniform"), "beta_prior"),
        (dict(beta_prior=("normal", 0.0, -1.0)), "sd"),
        (dict(beta_prior=("normal", np.nan, 1.0)), "mean"),
        (dict(sigma_prior=("gamma", 1.0)), "sigma_prior"),
        (dict(sigma_prior=("uniform", 0.0)), "upper"),
        (dict(sigma_prior=("half_cauchy", np.inf)), "scale"),
    ],
)
def test_invalid_priors_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        posterior_glmm([1, 2], [3, 4], **kwargs)


def test_invalid_counts_raise():
    with pytest.raises(ValueError, match="exceeds"):
        posterior_glmm([5], [3])


def test_one_dataset_drops_leading_dimension_and_reprs():
    post = posterior_glmm(JAGS[3]["y"], JAGS[3]["n"])
    assert np.ndim(post.beta_mean) == 0 and post.p_mean.shape == (5,)
    assert "beta" in repr(post) and "sigma" in repr(post)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize(
    "y, n, beta, sigma",
    [(5, 10, 0.5, 0.7), (0, 20, -3.0, 0.9), (10, 10, 0.5, 3.0), (0, 10, 0.5, 8.0), (1, 10, 0.5, 3.0),
     (9, 10, 0.5, 3.7), (1, 2, 0.2, 5.0), (25, 50, 0.0, 2.0), (1, 1, 0.5, 0.99)],
)
def test_group_integrals_match_adaptive_quadrature(y, n, beta, sigma):
    from scipy.integrate import quad

    from glmmshrink._bayes_quadrature import group_integrals

    def integrand(u, moment=lambda eta: 1.0):
        eta = beta + sigma * u
        return np.exp(y * eta - n * np.logaddexp(0, eta) - 0.5 * u * u) / np.sqrt(2 * np.pi) * moment(eta)

    kink = -beta / sigma if y in (0, n) else (np.log(y / (n - y)) - beta) / sigma
    options = dict(points=[kink], limit=400, epsabs=0, epsrel=1e-12)
    total = quad(integrand, -12, 12, **options)[0]
    p_mean = quad(lambda u: integrand(u, expit), -12, 12, **options)[0] / total
    eta_mean = quad(lambda u: integrand(u, lambda eta: eta), -12, 12, **options)[0] / total
    got = group_integrals(np.array([beta]), np.array([sigma]), np.array([float(y)]), np.array([float(n)]), DEFAULT_RULE.group)
    assert got.log_integral[0] == pytest.approx(np.log(total), abs=1e-5)
    assert got.p_mean[0] == pytest.approx(p_mean, abs=1e-6)
    assert got.eta_mean[0] == pytest.approx(eta_mean, abs=1e-5)


def _reference_integrals(y, n, beta, sigma):
    """log I, E p and E eta by adaptive quadrature on u over a range wide enough for any peak."""
    from scipy.integrate import quad

    def integrand(u, moment=lambda eta: 1.0):
        eta = beta + sigma * u
        return np.exp(y * eta - n * np.logaddexp(0, eta) - 0.5 * u * u + 60.0) / np.sqrt(2 * np.pi) * moment(eta)

    peak = -beta / sigma if y in (0, n) else (np.log(y / (n - y)) - beta) / sigma  # where L is steep
    options = dict(points=[min(max(peak, -59.0), 29.0)], limit=800, epsabs=0, epsrel=1e-12)
    total = quad(integrand, -60, 30, **options)[0]
    p_mean = quad(lambda u: integrand(u, expit), -60, 30, **options)[0] / total
    eta_mean = quad(lambda u: integrand(u, lambda eta: eta), -60, 30, **options)[0] / total
    return np.log(total) - 60.0, p_mean, eta_mean


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize(
    "y, n, beta, sigma",
    [(5, 10, 0.5, 0.7), (0, 20, -3.0, 0.9), (10, 10, 0.5, 3.0), (0, 10, 0.5, 7.5), (1, 10, 0.5, 3.0),
     (9, 10, 0.5, 3.7), (1, 2, 0.2, 5.0), (25, 50, 0.0, 2.0), (1, 1, 0.5, 0.1), (75, 100, 0.9, 0.07),
     (50, 50, 45.0, 2.0)],  # the last is beyond the stored lattices
)
def test_shared_eta_grid_matches_adaptive_quadrature(y, n, beta, sigma):
    from glmmshrink._bayes_grid import grid_integrals

    log_integral, p_mean, eta_mean = _reference_integrals(y, n, beta, sigma)
    got = grid_integrals(np.array([beta]), np.array([sigma]), np.array([float(y)]), np.array([float(n)]))
    assert got[0][0, 0] == pytest.approx(log_integral, abs=1e-8)
    assert got[1][0, 0] == pytest.approx(p_mean, abs=1e-9)
    assert got[3][0, 0] == pytest.approx(eta_mean, abs=1e-8)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_shared_eta_grid_serves_groups_and_nodes_together_and_flags_what_it_cannot_resolve():
    from glmmshrink._bayes_grid import grid_integrals

    y, n = np.array([0.0, 3.0, 17.0, 100.0, 40.0]), np.array([5.0, 10.0, 20.0, 100.0, 100.0])
    beta, sigma = np.array([-1.0, 0.3, 0.5, 2.0, 1.0]), np.array([0.07, 0.5, 1.3, 4.0, 7.9])
    got = grid_integrals(beta, sigma, y, n)
    for o in range(beta.size):
        for i in range(y.size):
            log_integral, p_mean, _ = _reference_integrals(y[i], n[i], beta[o], sigma[o])
            if np.isnan(got[0][o, i]):
                continue
            assert got[0][o, i] == pytest.approx(log_integral, abs=1e-8), (o, i)
            assert got[1][o, i] == pytest.approx(p_mean, abs=1e-9), (o, i)
    # A group far in the tail of a narrow normal peaks beyond beta -+ 8 sigma: left to other rules.
    tail = grid_integrals(np.array([2.0, 1.0]), np.array([0.3, 0.1]), np.array([0.0]), np.array([400.0]))
    assert np.all(np.isnan(tail[0]))


def _simulated(seed, reps, trials, p0, sd, groups=30):
    rng = np.random.default_rng(seed)
    n = np.full((reps, groups), trials)
    return rng.binomial(n, expit(np.log(p0 / (1 - p0)) + sd * rng.standard_normal((reps, groups)))), n


@pytest.mark.parametrize("trials, sd", [(10, 1.0), (100, 1.0)])
def test_refined_rules_change_simulated_means_by_under_1e5(monkeypatch, trials, sd):
    """Seed design and the study's largest J: a finer outer rule and eta grids at half the spacing
    reaching further."""
    import glmmshrink._bayes_grid as grid

    y, n = _simulated(11, 4, trials, 0.7, sd)
    base = posterior_glmm(y, n)
    finer = replace(DEFAULT_RULE, sigma_near_zero=12, log_sigma_tail=24, log_sigma_bulk=28, beta=17,
                    group=27, left_drop=20.0, right_drop=32.0, prune_drop=30.0)
    grid._lattice.cache_clear()
    monkeypatch.setattr(grid, "GRID_STEP", 0.5)
    monkeypatch.setattr(grid, "GRID_REACH", 10.0)
    try:
        fine = _posterior_glmm(y, n, "flat", ("uniform", 100.0), finer)
    finally:
        grid._lattice.cache_clear()
    for name in ("beta_mean", "sigma_mean", "p_mean", "beta_sd", "sigma_sd", "p_sd"):
        np.testing.assert_allclose(getattr(base, name), getattr(fine, name), rtol=0, atol=1e-5, err_msg=name)


def test_outlying_groups_the_grid_cannot_resolve_are_integrated_otherwise():
    """Groups of 400 trials: one with no successes among groups near 90 %. At small sigma it
    sits deep in the tail of the normal, where the shared grid hands it to adaptive quadrature."""
    rng = np.random.default_rng(4)
    n = np.full((3, 12), 400)
    y = rng.binomial(n, 0.9)
    y[:, 0] = 0
    together = posterior_glmm(y, n)
    assert not together.improper.any()
    for name in FIELDS[:-1]:
        assert np.all(np.isfinite(getattr(together, name))), name
    for i in range(len(y)):
        alone = posterior_glmm(y[i], n[i])
        for name in FIELDS:
            assert np.array_equal(getattr(together, name)[i], getattr(alone, name)), (i, name)
