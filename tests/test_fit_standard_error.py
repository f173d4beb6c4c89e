"""fit_glmm's beta_se against lme4 1.1-31's default vcov (tests/data/lme4_se_reference.json).

The reference comes from tests/data/make_lme4_se_reference.R. lme4 takes the SE from a
finite-difference Hessian (step 1e-4) of a PIRLS-evaluated deviance; it agrees with the exact
Hessian's SE to < 2e-6 (relative) except on the Laplace fits of unbalanced_1013 and big_sd_1023,
where lme4's own value is off by 5e-4 and 1e-4 (see tests/test_cli.py). Our estimate differs from
lme4's tight optimum by ~2e-5, which moves the SE by < 5e-6.
"""

import numpy as np
import pytest
from scipy.special import expit

from glmmshrink import fit_glmm
from glmmshrink.glmer_summary import intercept_se
from tests.conftest import load_reference, ragged

SE_REFERENCE = load_reference("lme4_se_reference.json")
NAGQ = {"laplace": 1, "agq25": 25, "bernoulli_rows": 1}
CASES = [(entry, kind) for entry in SE_REFERENCE for kind in NAGQ if kind in entry]
SE_RTOL = 1e-5
NOISY_LME4_HESSIAN = {("unbalanced_1013", "laplace"), ("big_sd_1023", "laplace")}
NOISY_SE_RTOL = 1e-3


def test_reference_covers_interior_and_singular_fits_of_both_objectives():
    singular = {(e["id"], kind) for e, kind in CASES if e[kind]["singular"]}
    assert len(CASES) == 15
    assert {kind for _, kind in singular} == {"laplace", "agq25"} and len(singular) == 6


@pytest.mark.parametrize(
    "entry, kind", CASES, ids=[f"{entry['id']}-{kind}" for entry, kind in CASES]
)
def test_beta_se_matches_lme4_vcov(entry, kind):
    """bernoulli_rows is lme4 on the expanded 0/1 rows: the same model as the aggregated counts."""
    fit = fit_glmm(np.array(entry["y"]), np.array(entry["n"]), nagq=NAGQ[kind])
    lme4 = entry[kind]
    noisy = (entry["id"], kind) in NOISY_LME4_HESSIAN
    assert fit.converged and fit.singular == lme4["singular"]
    assert fit.beta_se == pytest.approx(lme4["se"], rel=NOISY_SE_RTOL if noisy else SE_RTOL)


@pytest.mark.parametrize("nagq", [1, 25])
def test_singular_fit_reports_the_binomial_glm_se_as_lme4_does(nagq):
    """At sigma = 0 lme4's Hessian has no theta-beta cross term, so vcov gives the GLM's SE."""
    kind = "laplace" if nagq == 1 else "agq25"
    checked = 0
    for entry in SE_REFERENCE:
        if kind not in entry or not entry[kind]["singular"]:
            continue
        y, n = np.array(entry["y"]), np.array(entry["n"])
        fit = fit_glmm(y, n, nagq=nagq)
        pooled = y.sum() / n.sum()
        glm_se = 1.0 / np.sqrt(n.sum() * pooled * (1.0 - pooled))
        assert fit.sigma == 0.0
        assert fit.beta_se == pytest.approx(glm_se, rel=1e-12)
        # glm()'s IRLS stops at its deviance tolerance 1e-8, so its SE is accurate to ~1e-8.
        assert fit.beta_se == pytest.approx(entry[kind]["se_glm"], rel=1e-7)
        assert fit.beta_se == pytest.approx(entry[kind]["se"], rel=1e-6)
        checked += 1
    assert checked == 3


@pytest.mark.parametrize("nagq", [1, 25])
def test_beta_se_is_bit_identical_alone_or_in_a_batch(nagq):
    datasets = [entry for entry in SE_REFERENCE]
    y, n = ragged(datasets)
    rng = np.random.default_rng(4)
    order = rng.permutation(len(datasets))
    batch = fit_glmm(np.concatenate([y, y[order]]), np.concatenate([n, n[order]]), nagq=nagq)
    assert np.isfinite(batch.beta_se).all()
    for row, entry in enumerate(datasets):
        alone = fit_glmm(np.array(entry["y"]), np.array(entry["n"]), nagq=nagq)
        assert alone.beta_se.shape == ()
        assert np.array_equal(alone.beta_se, batch.beta_se[row])
    assert np.array_equal(batch.beta_se[len(datasets):], batch.beta_se[order])


@pytest.mark.parametrize("nagq", [1, 25])
def test_beta_se_is_the_summary_se_at_the_fitted_estimate(nagq):
    rng = np.random.default_rng(8)
    n = rng.integers(2, 40, size=(40, 25))
    re_sd = np.where(np.arange(40) < 30, 0.8, 0.1)[:, None]  # the last ten mostly singular
    y = rng.binomial(n, expit(0.4 + re_sd * rng.standard_normal((40, 25))))
    fit = fit_glmm(y, n, nagq=nagq)
    assert fit.converged.all() and (fit.sigma > 0).sum() >= 30 and (fit.sigma == 0).any()
    recomputed = [intercept_se(y[r], n[r], fit.beta[r], fit.sigma[r], nagq) for r in range(40)]
    np.testing.assert_allclose(fit.beta_se, recomputed, rtol=1e-9)


@pytest.mark.parametrize("nagq", [1, 25])
def test_separated_replicates_have_nan_se_and_do_not_spoil_others(nagq):
    y = np.array([[0, 0, 0], [5, 5, 5], [1, 3, 4]])
    n = np.full((3, 3), 5)
    fit = fit_glmm(y, n, nagq=nagq)
    assert np.isnan(fit.beta_se[:2]).all() and np.isfinite(fit.beta_se[2])
    assert fit.beta_se[2] == fit_glmm(y[2], n[2], nagq=nagq).beta_se
