"""fit_glmm: input checks, degenerate data, batch independence and derivative correctness."""

import platform
import resource
import sys

import numpy as np
import pytest
from scipy.special import expit

from glmmshrink import fit_betabinomial, fit_glmm, fit_pql, posterior_glmm
from glmmshrink._modes import conditional_modes
from glmmshrink._objective import agq_objective, laplace_objective


def _simulate(rng, reps, groups, trials, p0, sd):
    n = np.full((reps, groups), trials) if np.isscalar(trials) else rng.integers(*trials, size=(reps, groups))
    p = expit(np.log(p0 / (1 - p0)) + sd * rng.standard_normal((reps, groups)))
    return rng.binomial(n, p), n


@pytest.mark.parametrize("fitter", [fit_glmm, fit_pql, fit_betabinomial, posterior_glmm],
                         ids=lambda fitter: fitter.__name__)
@pytest.mark.parametrize(
    "y, n, message",
    [
        ([3, 11], [10, 10], "exceeds n"),
        ([-1, 2], [10, 10], "y contains negative"),
        ([1, 2], [10, -10], "n contains negative"),
        ([1.5, 2], [10, 10], "whole numbers"),
        ([np.nan, 2], [10, 10], "NaN"),
        ([np.inf, 2], [10, 10], "infinite"),
        ([1, 2, 3], [10, 10], "same shape"),
        ([[[1]]], [[[2]]], "1-D"),
        (["a", "b"], [10, 10], "numeric"),
        ([0, 0], [0, 0], "at least one group with n > 0"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(fitter, y, n, message):
    # Every public fitter validates its counts at the boundary the same way (_validate.as_counts).
    with pytest.raises(ValueError, match=message):
        fitter(y, n)


@pytest.mark.parametrize("nagq", [0, -1, 2.5, True, "25"])
def test_bad_nagq(nagq):
    with pytest.raises(ValueError, match="nagq"):
        fit_glmm([1, 2], [5, 5], nagq=nagq)


@pytest.mark.parametrize("nagq", [1, 25])
def test_all_failures_or_all_successes_are_flagged_as_separated(nagq):
    y = np.array([[0, 0, 0], [5, 5, 5], [1, 3, 4]])
    n = np.array([[5, 5, 5], [5, 5, 5], [5, 5, 5]])
    fit = fit_glmm(y, n, nagq=nagq)
    assert fit.separated.tolist() == [True, True, False]
    assert fit.converged.tolist() == [False, False, True]
    assert fit.beta[0] == -np.inf and fit.beta[1] == np.inf
    assert np.isnan(fit.sigma[:2]).all() and np.isnan(fit.b[:2]).all()
    assert fit.p_hat[0].tolist() == [0, 0, 0] and fit.p_hat[1].tolist() == [1, 1, 1]
    assert not fit.singular[:2].any()
    alone = fit_glmm(y[2], n[2], nagq=nagq)  # the bad replicates do not spoil the good one
    assert np.array_equal(alone.b, fit.b[2]) and alone.beta == fit.beta[2]


def test_one_group_and_one_trial_designs():
    one_group = fit_glmm([3], [10])
    assert one_group.converged and one_group.sigma == 0 and np.isclose(one_group.beta, np.log(3 / 7))
    rng = np.random.default_rng(5)
    y, n = _simulate(rng, 200, 40, 1, 0.4, 1.0)
    bernoulli = fit_glmm(y, n)
    fitted = ~bernoulli.separated
    assert bernoulli.converged[fitted].all()
    assert (bernoulli.n_iter < 50).all()


@pytest.mark.parametrize("nagq", [1, 25])
def test_batch_independence_bit_identical(nagq):
    rng = np.random.default_rng(11)
    y, n = _simulate(rng, 300, 30, (1, 25), 0.3, 1.5)
    y[7] = 0  # a separated replicate inside the batch
    n[5, 20:] = 0  # a replicate with fewer groups (padding)
    y[5, 20:] = 0
    # Quasi-separated: Laplace's sigma is ~62, so AGQ also climbs from sigma = 1 (_agq_ascent).
    y[9], n[9] = 0, 0
    y[9, 7], n[9, :10] = 2, 2
    y[10], n[10] = 3, 10  # no overdispersion at all: a boundary fit
    full = fit_glmm(y, n, nagq=nagq)
    assert full.sigma[10] == 0 and full.separated[7] and full.sigma[9] > 5
    fields = ("beta", "beta_se", "sigma", "b", "b_sd", "p_hat", "loglik", "converged", "max_grad", "n_iter")
    for rows in (np.arange(1), np.arange(5, 11), rng.permutation(300)[:77], np.arange(299, 300)):
        part = fit_glmm(y[rows], n[rows], nagq=nagq)
        for field in fields:
            assert np.array_equal(getattr(part, field), getattr(full, field)[rows], equal_nan=True), field
    alone = fit_glmm(y[5, :20], n[5, :20], nagq=nagq)  # padding removed altogether
    assert np.array_equal(alone.b, full.b[5, :20]) and alone.sigma == full.sigma[5]
    alone = fit_glmm(y[9, :10], n[9, :10], nagq=nagq)
    assert alone.sigma == full.sigma[9] and alone.loglik == full.loglik[9]


def test_interior_optimum_has_tiny_gradient_and_boundary_is_exact_zero():
    rng = np.random.default_rng(3)
    y, n = _simulate(rng, 2000, 10, 5, 0.5, 0.3)
    fit = fit_glmm(y, n)
    interior = fit.converged & (fit.sigma > 0)
    assert (fit.max_grad[interior] < 1e-6).all()
    boundary = fit.converged & fit.singular
    assert boundary.any() and (fit.sigma[boundary] == 0).all()
    assert fit.converged[~fit.separated].all()


def _finite_difference(objective, beta, sigma, y, n, count, step=1e-5):
    """Central differences of the value (-> gradient) and of the analytic gradient (-> Hessian)."""

    def value_and_grad(b, s):
        u, _ = conditional_modes(b, s, y, n)
        value, grad, _ = objective(np.array([b]), np.array([s]), u, y, n, count)
        return value[0], grad[:, 0]

    fd_grad, fd_hess = np.empty(2), np.empty((2, 2))
    for axis, (db, ds) in enumerate(((step, 0.0), (0.0, step))):
        v_plus, g_plus = value_and_grad(beta + db, sigma + ds)
        v_minus, g_minus = value_and_grad(beta - db, sigma - ds)
        fd_grad[axis] = (v_plus - v_minus) / (2 * step)
        fd_hess[axis] = (g_plus - g_minus) / (2 * step)
    return fd_grad, fd_hess


@pytest.mark.parametrize(
    "objective",
    [laplace_objective, lambda *a: agq_objective(*a, 25)],
    ids=["laplace", "agq25"],
)
def test_analytic_derivatives_match_finite_differences(objective):
    y = np.array([[0.0], [3.0], [7.0], [10.0], [1.0]])
    n = np.array([[10.0], [10.0], [10.0], [10.0], [2.0]])
    count = np.array([[1.0], [2.0], [1.0], [3.0], [1.0]])
    beta, sigma = 0.3, 1.7
    u, _ = conditional_modes(beta, sigma, y, n)
    _, grad, hess = objective(np.array([beta]), np.array([sigma]), u, y, n, count)
    fd_grad, fd_hess = _finite_difference(objective, beta, sigma, y, n, count)
    np.testing.assert_allclose(grad[:, 0], fd_grad, rtol=1e-6)
    fd_hess_vec = np.array([fd_hess[0, 0], 0.5 * (fd_hess[0, 1] + fd_hess[1, 0]), fd_hess[1, 1]])
    np.testing.assert_allclose(hess[:, 0], fd_hess_vec, rtol=1e-5)  # both Hessians are exact


def test_one_node_agq_is_the_laplace_objective():
    rng = np.random.default_rng(2)
    n = rng.integers(0, 30, size=(6, 40)).astype(float)
    y = rng.binomial(n.astype(int), 0.35).astype(float)
    count = rng.integers(1, 4, size=(6, 40)).astype(float)
    beta, sigma = rng.normal(0.0, 1.0, 40), rng.uniform(0.05, 4.0, 40)
    u, _ = conditional_modes(beta, sigma, y, n)
    for laplace, one_node in zip(laplace_objective(beta, sigma, u, y, n, count),
                                 agq_objective(beta, sigma, u, y, n, count, 1)):
        np.testing.assert_allclose(one_node, laplace, rtol=1e-12, atol=1e-12)


def test_modes_solve_the_score_equation_even_far_in_the_tails():
    y = np.array([0.0, 200.0, 1.0, 199.0])
    n = np.array([200.0, 200.0, 200.0, 200.0])
    beta, sigma = np.array([8.0, -8.0, 0.0, 0.0]), np.array([6.0, 6.0, 6.0, 6.0])
    u, converged = conditional_modes(beta, sigma, y, n, u_start=np.array([5.0, -5.0, 30.0, -30.0]))
    assert converged.all()
    score = sigma * (y - n * expit(beta + sigma * u)) - u
    assert np.max(np.abs(score)) < 1e-9


def test_result_shapes_and_summary():
    fit = fit_glmm([[1, 2, 3], [0, 4, 0]], [[5, 5, 5], [5, 5, 0]])
    assert fit.beta.shape == (2,) and fit.b.shape == (2, 3)
    assert fit.n_groups.tolist() == [3, 2]
    text = repr(fit_glmm([1, 2, 3, 4], [5, 5, 5, 5]))
    assert "Random effects" in text and "(Intercept)" in text and "logLik" in text and "Std. Error" in text
    assert "2 datasets" in repr(fit)
    assert "nAGQ = 9" in repr(fit_glmm([1, 2, 3, 4], [5, 5, 5, 5], nagq=9))


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="page-fault accounting of glibc's malloc",
)
def test_repeated_fits_reuse_their_memory_instead_of_page_faulting_it_in():
    """glibc returns freed temporaries of 128 KiB+ to the kernel unless primed (``_allocator``)."""
    rng = np.random.default_rng(6)
    y, n = _simulate(rng, 2000, 30, (2, 50), 0.6, 1.0)
    fit_glmm(y, n, nagq=25)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fit_glmm(y, n, nagq=25)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 500  # about 66,000 without the priming
