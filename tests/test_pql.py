"""fit_pql: the fixed point of MASS::glmmPQL (tests/data/pql_reference.json), input checks,
padding, batch independence and degenerate data.

The reference is glmmPQL iterated until max |d eta| < 1e-9 with lme's optimiser tightened
(tests/data/make_pql_reference.R). Tolerance 2e-4 on every field, as the issue asks; the fits agree
to ~1e-5 in practice, lme's own optimiser noise.
"""

import numpy as np
import pytest
from scipy.special import expit

from glmmshrink import PqlFit, fit_glmm, fit_pql
from glmmshrink.pql import _profile, _working_data
from tests.conftest import load_reference, ragged

REFERENCE = load_reference("pql_reference.json")
TOL = 2e-4
NLME_BOUNDARY = 1e-3  # nlme (on log sigma) stops at sigma ~ 1e-5 .. 3e-4 where the optimum is 0


def _reached(entry):
    return not entry["diverged"] and entry["last_change"] < 1e-9


INTERIOR = [e for e in REFERENCE if _reached(e) and e["sigma"] >= NLME_BOUNDARY]
BOUNDARY = [e for e in REFERENCE if _reached(e) and e["sigma"] < NLME_BOUNDARY]
RUNAWAY = [e for e in REFERENCE if not _reached(e)]


@pytest.fixture(scope="module")
def batch_fit():
    y, n = ragged(REFERENCE)
    return fit_pql(y, n)


def _row(entry):
    return next(k for k, e in enumerate(REFERENCE) if e["name"] == entry["name"])


def test_reference_covers_the_designs_the_issue_names():
    names = " ".join(e["name"] for e in INTERIOR + BOUNDARY)
    for design in ("seed_design", "rare_p03", "rare_events", "small_sd", "unbalanced",
                   "few_groups", "J2", "tiny_J"):
        assert design in names
    assert len(INTERIOR) >= 40 and len(BOUNDARY) >= 4 and len(RUNAWAY) == 4
    # glmmPQL's plain iteration cycles on these; the reference damps it (make_pql_reference.R).
    assert sum(e["damped"] for e in INTERIOR) >= 3


@pytest.mark.parametrize("entry", INTERIOR, ids=[e["name"] for e in INTERIOR])
def test_matches_the_glmmPQL_fixed_point(entry, batch_fit):
    row, groups = _row(entry), len(entry["y"])
    assert batch_fit.converged[row]
    if entry["damped"]:  # glmmPQL's plain iteration cycles here; ours flags its changed steps
        assert batch_fit.damped[row]
    if entry["name"].startswith(("seed", "lme4_seed")):
        assert not batch_fit.damped[row]
    assert abs(batch_fit.beta[row] - entry["beta"]) < TOL
    assert abs(batch_fit.sigma[row] - entry["sigma"]) < TOL
    assert abs(batch_fit.residual_sd[row] - entry["residual_sd"]) < TOL
    np.testing.assert_allclose(batch_fit.b[row, :groups], entry["b"], rtol=0, atol=TOL)
    p_ref = expit(entry["beta"] + np.asarray(entry["b"]))
    np.testing.assert_allclose(batch_fit.p_hat[row, :groups], p_ref, rtol=0, atol=TOL)
    assert np.isnan(batch_fit.b[row, groups:]).all()


@pytest.mark.parametrize("entry", BOUNDARY, ids=[e["name"] for e in BOUNDARY])
def test_boundary_fits_report_sigma_zero_where_nlme_stops_just_above(entry, batch_fit):
    row, groups = _row(entry), len(entry["y"])
    assert batch_fit.converged[row] and batch_fit.sigma[row] == 0.0
    assert abs(batch_fit.beta[row] - entry["beta"]) < TOL
    assert abs(batch_fit.residual_sd[row] - entry["residual_sd"]) < TOL
    np.testing.assert_allclose(batch_fit.b[row, :groups], entry["b"], rtol=0, atol=TOL)
    # nlme's small positive sigma is worse on the working LMM's ML profile than sigma = 0.
    y, n = np.asarray(entry["y"], float)[:, None], np.asarray(entry["n"], float)[:, None]
    eta = batch_fit.beta[row] + batch_fit.b[row, :groups][:, None]
    data = _working_data(eta, y, n, np.ones_like(y), n.sum(axis=0))
    ratio_nlme = np.array([(entry["sigma"] / entry["residual_sd"]) ** 2])
    at_zero = _profile(np.zeros(1), data, derivatives=False)[0]
    at_nlme = _profile(ratio_nlme, data, derivatives=False)[0]
    assert at_zero >= at_nlme


def test_glmmPQL_default_stopping_rule_stops_short_on_rare_events():
    # Why the reference iterates glmmPQL further: its default stops up to ~5e-3 short.
    gaps = [max(abs(e["glmmPQL_default"]["beta"] - e["beta"]),
                np.max(np.abs(np.subtract(e["glmmPQL_default"]["b"], e["b"]))))
            for e in INTERIOR]
    assert max(gaps) > 10 * TOL


@pytest.mark.parametrize("entry", RUNAWAY, ids=[e["name"] for e in RUNAWAY])
def test_one_trial_per_group_runs_away_as_glmmPQL_does(entry, batch_fit):
    row = _row(entry)
    assert set(entry["n"]) == {1}
    assert not batch_fit.converged[row] and not batch_fit.separated[row]
    assert np.isnan([batch_fit.beta[row], batch_fit.sigma[row], batch_fit.residual_sd[row]]).all()
    assert np.isnan(batch_fit.p_hat[row]).all()


def test_a_slope_at_zero_that_is_only_rounding_gives_a_boundary_fit():
    # Sample variance equal to the binomial variance at the pooled p = 1/2: the ML slope in
    # sigma^2 at 0 is exactly 0 and evaluates to ~1e-15 either side.
    y = [4, 1, 2, 3, 1, 4, 5, 4, 3, 2, 2, 2, 4, 2, 3, 2, 3, 1, 3, 4, 1, 3, 2, 2, 4, 1, 2, 2, 2, 1]
    fit = fit_pql(y, [5] * 30)
    assert fit.converged and fit.sigma == 0.0 and fit.n_iter == 1


def test_profile_derivatives_match_finite_differences():
    rng = np.random.default_rng(3)
    n = rng.integers(1, 30, size=(25, 1)).astype(float)
    y = rng.binomial(n.astype(int), 0.3).astype(float)
    eta = -0.8 + 0.5 * rng.standard_normal((25, 1))
    data = _working_data(eta, y, n, np.ones_like(y), n.sum(axis=0))
    for ratio in (0.0, 0.2, 1.5):
        h = 1e-6
        _, grad, hess, _, _ = _profile(np.array([ratio]), data)
        up, down = _profile(np.array([ratio + h]), data), _profile(np.array([ratio - h]), data)
        assert grad[0] == pytest.approx((up[0] - down[0])[0] / (2 * h), rel=1e-6)
        assert hess[0] == pytest.approx((up[1] - down[1])[0] / (2 * h), rel=1e-6)


def test_all_failures_or_all_successes_are_flagged_as_fit_glmm_flags_them():
    y = np.array([[0, 0, 0], [5, 5, 5], [1, 3, 4]])
    n = np.full((3, 3), 5)
    fit, glmm = fit_pql(y, n), fit_glmm(y, n)
    assert fit.separated.tolist() == glmm.separated.tolist() == [True, True, False]
    assert fit.converged.tolist() == [False, False, True]
    assert fit.beta[0] == -np.inf and fit.beta[1] == np.inf
    assert np.isnan(fit.sigma[:2]).all() and np.isnan(fit.residual_sd[:2]).all()
    assert np.isnan(fit.b[:2]).all()
    np.testing.assert_array_equal(fit.p_hat[:2], glmm.p_hat[:2])


def _simulated(seed, reps, groups, trials, p0, sd):
    rng = np.random.default_rng(seed)
    n = rng.integers(*trials, size=(reps, groups))
    p = expit(np.log(p0 / (1 - p0)) + sd * rng.standard_normal((reps, groups)))
    return rng.binomial(n, p), n


FIELDS = ("beta", "sigma", "residual_sd", "b", "p_hat", "converged", "separated", "damped",
          "n_iter")


def test_padding_groups_are_ignored_bit_for_bit():
    y, n = _simulated(8, 20, 12, (1, 30), 0.2, 1.0)
    y_pad, n_pad = np.zeros((20, 17), int), np.zeros((20, 17), int)
    real = np.sort(np.random.default_rng(1).permutation(17)[:12])  # padding between real groups
    y_pad[:, real], n_pad[:, real] = y, n
    plain, padded = fit_pql(y, n), fit_pql(y_pad, n_pad)
    for field in FIELDS:
        got = getattr(padded, field)
        if np.ndim(got) == 2:
            assert np.isnan(got[:, np.setdiff1d(np.arange(17), real)]).all()
            got = got[:, real]
        np.testing.assert_array_equal(got, getattr(plain, field), err_msg=field)
    np.testing.assert_array_equal(padded.n_groups, np.full(20, 12))


def test_a_replicate_fits_bit_identically_alone_or_in_any_batch():
    y, n = _simulated(11, 120, 30, (1, 25), 0.15, 1.5)
    y[7] = 0  # separated
    n[5, 12:], y[5, 12:] = 0, 0  # fewer groups
    y[9], n[9] = np.ones(30, int), np.ones(30, int)  # ... and one with J = 1 that runs away
    y[9, ::2] = 0
    y_small, n_small = _simulated(12, 30, 5, (1, 4), 0.05, 0.5)  # a narrower, rarer batch
    full = fit_pql(y, n)
    assert full.converged.sum() >= 110
    rng = np.random.default_rng(2)
    for rows in (np.arange(1), np.arange(5, 10), rng.permutation(120)[:37], np.arange(119, 120)):
        part = fit_pql(y[rows], n[rows])
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(part, field), getattr(full, field)[rows],
                                          err_msg=field)
    # Mixed with differently sized replicates (padded to 30 groups).
    y_mix = np.vstack([np.pad(y_small, ((0, 0), (0, 25))), y[:40]])
    n_mix = np.vstack([np.pad(n_small, ((0, 0), (0, 25))), n[:40]])
    mixed, small = fit_pql(y_mix, n_mix), fit_pql(y_small, n_small)
    for field in FIELDS:
        got, want = getattr(mixed, field), getattr(full, field)[:40]
        np.testing.assert_array_equal(got[30:], want, err_msg=field)
        alone = getattr(small, field)
        np.testing.assert_array_equal(got[:30] if np.ndim(alone) == 1 else got[:30, :5], alone,
                                      err_msg=field)


def test_one_dataset_gives_scalars_and_matches_its_batch_row():
    y, n = _simulated(4, 3, 10, (5, 15), 0.6, 1.0)
    batch, one = fit_pql(y, n), fit_pql(y[1], n[1])
    assert np.ndim(one.beta) == 0 and one.b.shape == (10,) and one.p_hat.shape == (10,)
    assert batch.beta.shape == (3,) and batch.b.shape == (3, 10)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(one, field), getattr(batch, field)[1], err_msg=field)
    np.testing.assert_allclose(one.p_hat, expit(one.beta + one.b), rtol=1e-15)


def test_repr_reads_like_an_nlme_summary():
    one = fit_pql([3, 5, 8, 2, 6], [10, 10, 10, 10, 10])
    assert isinstance(one, PqlFit)
    text = repr(one)
    assert "penalized quasi-likelihood" in text and "Residual" in text and "converged" in text
    batch = repr(fit_pql([[0, 0], [3, 5]], [[4, 4], [10, 10]]))
    assert "2 datasets: 1 converged (0 with damped steps)" in batch and "1 separated" in batch
