"""fit_glmm on hard cases found by fuzzing, against lme4 1.1-31 with the same tight settings.

tests/data/extra_lme4_reference.json comes from tests/data/make_extra_lme4_reference.R.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from glmmshrink import fit_glmm
from glmmshrink.laplace import lme4_agq_loglik

with open(Path(__file__).parent / "data" / "extra_lme4_reference.json") as _handle:
    DATASETS = {entry["id"]: entry for entry in json.load(_handle)["datasets"]}
METHODS = {"laplace": 1, "agq25": 25}


def _fit(entry, method):
    fit = fit_glmm(entry["y"], entry["n"], nagq=METHODS[method])
    loglik = fit.loglik if method == "laplace" else lme4_agq_loglik(fit, entry["y"], entry["n"])
    return fit, loglik


@pytest.mark.parametrize(
    "case, method", [("rare_big_sd_agq", "laplace"), ("rare_big_sd_agq", "agq25"), ("tiny_J_big_sd", "agq25")]
)
def test_large_sigma_with_coarse_quadrature_converges_to_lme4(case, method):
    """At sigma of 4-18 the information-identity Hessian is poor; Newton must still converge."""
    entry = DATASETS[case]
    fit, loglik = _fit(entry, method)
    ref = entry[method]
    assert fit.converged and fit.max_grad < 1e-6
    assert abs(fit.beta - ref["beta"]) < 1e-4 and abs(fit.sigma - ref["sigma"]) < 1e-4
    np.testing.assert_allclose(fit.b, ref["modes"], atol=1e-4)
    assert abs(loglik - ref["loglik"]) < 1e-5


def test_flat_laplace_objective_at_sigma_18_beats_lme4():
    """Laplace on tiny_J_big_sd peaks at sigma = 17.6 where the objective is so flat that lme4's
    tight optimizer stops 1.6e-4 short in sigma (9e-6 relative) with a lower log-likelihood."""
    entry = DATASETS["tiny_J_big_sd"]
    fit, loglik = _fit(entry, "laplace")
    ref = entry["laplace"]
    assert fit.converged and fit.max_grad < 1e-6
    assert loglik >= ref["loglik"]
    assert abs(fit.sigma / ref["sigma"] - 1) < 2e-5 and abs(fit.beta / ref["beta"] - 1) < 2e-5


def test_near_separation_finds_the_higher_of_two_laplace_maxima():
    """One failure in 300 trials: lme4 stops at the sigma = 0 local maximum of the Laplace
    objective, an interior maximum is higher. We report the interior one; AGQ has only the
    boundary maximum, and there both agree."""
    entry = DATASETS["near_separation"]
    fit, loglik = _fit(entry, "laplace")
    assert fit.converged and fit.sigma > 1 and loglik > entry["laplace"]["loglik"] + 0.5
    agq, agq_loglik = _fit(entry, "agq25")
    assert agq.singular and agq.sigma == 0 and entry["agq25"]["singular"]
    assert abs(agq.beta - entry["agq25"]["beta"]) < 1e-4 and abs(agq_loglik - entry["agq25"]["loglik"]) < 1e-5


def test_spurious_large_laplace_sigma_does_not_lead_agq_astray():
    """Two successes in 20 Bernoulli groups: sigma is not identified. The Laplace objective keeps
    rising to a spurious maximum at sigma ~ 51, far above the exact likelihood; AGQ, started from
    there, must still report the sigma = 0 maximum, as lme4 does (sigma 2.8e-4, its optimizer's
    stopping point on a flat boundary)."""
    entry = DATASETS["bernoulli_two_successes"]
    laplace, laplace_loglik = _fit(entry, "laplace")
    assert laplace.converged and laplace.sigma > 5 and laplace_loglik > entry["laplace"]["loglik"] + 1
    agq, agq_loglik = _fit(entry, "agq25")
    assert agq.converged and agq.singular and agq.sigma == 0
    assert abs(agq.beta - entry["agq25"]["beta"]) < 1e-4
    assert agq_loglik >= entry["agq25"]["loglik"] - 1e-9


def test_agq_on_quasi_separated_data_reaches_the_maximum_lme4_reaches():
    """One group of ten with 2/2 successes: Laplace peaks at sigma ~ 62, where it is poor. AGQ
    climbing from there drifts to sigma ~ 725 with a log-likelihood 2 lower; started also from
    lme4's sigma = 1 it finds lme4's maximum (sigma 60.75), the higher one, and reports it."""
    entry = DATASETS["quasi_separated_J2"]
    agq, loglik = _fit(entry, "agq25")
    ref = entry["agq25"]
    assert agq.converged and agq.max_grad < 1e-6
    assert loglik >= ref["loglik"] - 1e-8
    assert abs(agq.sigma / ref["sigma"] - 1) < 2e-5 and abs(agq.beta / ref["beta"] - 1) < 2e-5
