"""Batched maximum-likelihood fit of the binomial random-intercept GLMM, as lme4's ``glmer``.

Model (lme4's ``glmer(cbind(y, n - y) ~ (1 | g), family = binomial)``)::

    y_i ~ Binomial(n_i, expit(beta + b_i)),   b_i ~ N(0, sigma^2),   sigma >= 0.

``fit_glmm`` maximises the Laplace (``nagq=1``) or adaptive Gauss-Hermite (``nagq > 1``)
approximation of the marginal likelihood over (beta, sigma) for many datasets at once; see
``_objective`` for both objectives and their constants, ``_modes`` for the conditional modes.

The outer iteration is a safeguarded Newton ascent on (beta, sigma) with exact derivatives, run
separately per replicate: each replicate keeps its own step length and freezes once it converges,
and no quantity is reduced across replicates, so a replicate's result is bit-identical whether it
is fitted alone or in any batch. Identical (y, n) groups within a replicate are solved once. AGQ
starts from the Laplace fit, whose optimum is close to its own (``_agq_ascent``).

Boundary sigma = 0. The objective is even in sigma, so sigma = 0 is always stationary. Its second
derivative there is sum_i [(y_i - n_i p0)^2 - n_i p0 (1 - p0)] at the pooled p0 (the score test for
overdispersion). When that is positive, sigma = 0 is a saddle and the ascent never stops there;
when it is not, sigma = 0 with beta = logit(p0) is a local maximum and, once the iteration heads
toward it from a lower value, the fit jumps to it and reports sigma = 0 exactly, as lme4's
boundary check does.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
from scipy.special import expit, logit, xlogy

from glmmshrink._allocator import keep_temporaries_in_heap
from glmmshrink._groups import distinct_groups
from glmmshrink._modes import conditional_modes
from glmmshrink._objective import agq_objective, laplace_objective, log_choose, sum_over_groups
from glmmshrink._result import GlmmFit
from glmmshrink._standard_error import beta_standard_error
from glmmshrink._validate import as_counts

GRAD_TOL = 1e-9  # max |gradient| at an interior optimum
STALL_GRAD_TOL = 1e-6  # accepted when the line search can no longer improve the objective
SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on sigma
MAX_ITER = 100
MAX_BACKTRACKS = 40
SIGMA_START = 1.0  # lme4's starting theta
AGQ_START_GRAD_TOL = 1e-3  # Laplace precision enough to start AGQ (its optimum is ~1e-2 away)
LAPLACE_TRUST_SIGMA = 5.0  # above it AGQ also starts from SIGMA_START (see _agq_ascent)
BLOCK_CELLS = 32_768  # distinct groups x replicates per block: working arrays stay in cache
MIN_BLOCK_REPLICATES = 64  # amortises the per-iteration Python overhead (25 nodes for AGQ)


def _newton_direction(grad, hess, sigma):
    """Ascent direction -H^{-1} g, with H shifted to be negative definite and the step capped."""
    h_bb, h_bs, h_ss = hess
    half_trace = 0.5 * (h_bb + h_ss)
    radius = np.hypot(0.5 * (h_bb - h_ss), h_bs)
    top_eigen = half_trace + radius
    scale = np.abs(h_bb) + np.abs(h_ss)
    shift = np.where(top_eigen >= -1e-8 * scale, top_eigen + 0.1 * scale + 1e-8, 0.0)
    a, c = h_bb - shift, h_ss - shift
    det = a * c - h_bs * h_bs
    step_b = -(c * grad[0] - h_bs * grad[1]) / det
    step_s = -(a * grad[1] - h_bs * grad[0]) / det
    with np.errstate(divide="ignore"):
        shrink = np.minimum(1.0, np.minimum(4.0 / np.abs(step_b), np.maximum(2.0, sigma) / np.abs(step_s)))
    return np.stack([step_b * shrink, step_s * shrink])


class _Boundary(NamedTuple):
    """The sigma = 0 fit (logistic regression, closed-form beta) of every replicate."""

    beta: np.ndarray
    value: np.ndarray
    hess: np.ndarray
    is_max: np.ndarray  # sigma = 0 is a local maximum (score test for overdispersion <= 0)


class _Ascent(NamedTuple):
    """Where a Newton ascent stopped, per replicate."""

    beta: np.ndarray
    sigma: np.ndarray
    u: np.ndarray
    value: np.ndarray
    grad: np.ndarray
    hess: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray


def _ascend(objective, y, n, count, beta, sigma, u, boundary, grad_tol=GRAD_TOL, start_hess=None):
    """Safeguarded Newton ascent on (beta, sigma) from the given start, per replicate.

    Each replicate keeps its own step length, backtracks on its own and freezes once its gradient
    is below ``grad_tol``, or when it jumps to the sigma = 0 maximum (see the module docstring).
    With ``start_hess`` (a close stand-in for the Hessian at an interior start), the first step
    evaluates ``objective(..., hessian=False)`` there and uses it.
    """
    b_cur, s_cur = beta.copy(), sigma.copy()
    u_cur, _ = conditional_modes(b_cur, s_cur, y, n, u)
    if start_hess is None:
        v_cur, g_cur, h_cur = objective(b_cur, s_cur, u_cur, y, n, count)
    else:
        v_cur, g_cur, _ = objective(b_cur, s_cur, u_cur, y, n, count, hessian=False)
        h_cur = start_hess.copy()
    step = _newton_direction(g_cur, h_cur, s_cur)
    n_reps = b_cur.size
    alpha = np.ones(n_reps)
    iters = np.zeros(n_reps, dtype=np.int64)
    done = np.zeros(n_reps, dtype=bool)
    ok = np.zeros(n_reps, dtype=bool)

    def settle(idx):
        """Freeze replicates that converged or jump to a boundary optimum; return the rest."""
        grad_small = np.max(np.abs(g_cur[:, idx]), axis=0) < grad_tol
        to_boundary = (
            boundary.is_max[idx] & (step[1, idx] < 0) & (boundary.value[idx] >= v_cur[idx])
            & ~grad_small
        )
        jumped = idx[to_boundary]
        if jumped.size:
            b_cur[jumped], s_cur[jumped], u_cur[:, jumped] = boundary.beta[jumped], 0.0, 0.0
            v_cur[jumped], g_cur[:, jumped], h_cur[:, jumped] = objective(
                b_cur[jumped], s_cur[jumped], u_cur[:, jumped],
                y[:, jumped], n[:, jumped], count[:, jumped],
            )
        finished = grad_small | to_boundary
        done[idx[finished]] = True
        ok[idx[finished]] = True
        return idx[~finished]

    active = settle(np.arange(n_reps))
    stale = np.nonzero(done & (s_cur > 0))[0] if start_hess is not None else []
    if len(stale):  # finished where they started: the stand-in Hessian must not be reported
        h_cur[:, stale] = objective(b_cur[stale], s_cur[stale], u_cur[:, stale],
                                    y[:, stale], n[:, stale], count[:, stale])[2]
    backtracks = np.zeros(n_reps, dtype=np.int64)
    while active.size:
        iters[active] += 1
        b_try = b_cur[active] + alpha[active] * step[0, active]
        s_try = s_cur[active] + alpha[active] * step[1, active]
        s_try = np.where(s_try > 0.0, s_try, 0.1 * s_cur[active])
        ya, na, ca = y[:, active], n[:, active], count[:, active]
        u_try, _ = conditional_modes(b_try, s_try, ya, na, u_cur[:, active])
        v_try, g_try, h_try = objective(b_try, s_try, u_try, ya, na, ca)

        tolerance = 1e-13 * (1.0 + np.abs(v_cur[active]))
        accept = v_try >= v_cur[active] - tolerance
        acc = active[accept]
        b_cur[acc], s_cur[acc], u_cur[:, acc] = b_try[accept], s_try[accept], u_try[:, accept]
        v_cur[acc], g_cur[:, acc], h_cur[:, acc] = v_try[accept], g_try[:, accept], h_try[:, accept]
        step[:, acc] = _newton_direction(g_cur[:, acc], h_cur[:, acc], s_cur[acc])
        alpha[acc], backtracks[acc] = 1.0, 0

        rej = active[~accept]
        alpha[rej] *= 0.5
        backtracks[rej] += 1
        stalled = rej[backtracks[rej] > MAX_BACKTRACKS]
        done[stalled] = True
        ok[stalled] = np.max(np.abs(g_cur[:, stalled]), axis=0) < STALL_GRAD_TOL
        out_of_iterations = active[iters[active] >= MAX_ITER]
        done[out_of_iterations] = True

        still = np.concatenate([settle(acc), rej])
        active = np.sort(still[~done[still]])
    return _Ascent(b_cur, s_cur, u_cur, v_cur, g_cur, h_cur, ok, iters)


def _replicates(result, idx):
    """The replicates ``idx`` of an _Ascent or _Boundary (replicates are the last axis)."""
    return type(result)(*(field[..., idx] for field in result))


def _keep_higher(fitted, candidate, idx):
    """``fitted`` with replicates ``idx`` taken from ``candidate`` where its objective is higher."""
    higher = candidate.value > fitted.value[idx]
    if not higher.any():
        return fitted
    chosen = idx[higher]
    fields = []
    for current, alternative in zip(fitted, candidate):
        merged = current.copy()
        merged[..., chosen] = alternative[..., higher]
        fields.append(merged)
    return _Ascent(*fields)


def _combine(n_reps, pieces):
    """One _Ascent of ``n_reps`` replicates from (replicate indices, _Ascent) pieces covering them."""
    fields = []
    for position in range(len(_Ascent._fields)):
        first = pieces[0][1][position]
        field = np.empty(first.shape[:-1] + (n_reps,), dtype=first.dtype)
        for idx, piece in pieces:
            field[..., idx] = piece[position]
        fields.append(field)
    return _Ascent(*fields)


def _boundary_fit(objective, boundary, y, n, count):
    """The objective at the sigma = 0 fit, as an _Ascent that took no iterations."""
    zeros = np.zeros_like(boundary.beta)
    u = np.zeros_like(y)
    value, grad, hess = objective(boundary.beta, zeros, u, y, n, count)
    converged = np.max(np.abs(grad), axis=0) < GRAD_TOL
    return _Ascent(boundary.beta, zeros, u, value, grad, hess, converged, zeros.astype(np.int64))


def _agq_ascent(objective, y, n, count, laplace, boundary):
    """AGQ's Newton ascent, started from the Laplace fit, with two safeguards.

    The two optima are close wherever Laplace is accurate (about 1e-2 apart in the study's
    designs), so three Newton steps with the exact AGQ derivatives reach a gradient below 1e-9; the
    first uses Laplace's Hessian and a gradient-only AGQ evaluation. Replicates Laplace put at
    sigma = 0, a local maximum of both objectives (equal there, with equal derivatives), stay there
    after one AGQ evaluation. Where Laplace's sigma exceeds LAPLACE_TRUST_SIGMA (near-separated data,
    where Laplace is poor and optima can be spurious), AGQ also climbs from lme4's start
    sigma = 1 and the higher maximum wins. Where sigma = 0 is a local maximum higher than the
    interior optimum found (with one Bernoulli trial per group sigma is not identified and
    Laplace can stop at a large spurious sigma), the boundary fit wins.
    """
    pieces = []
    at_zero = np.nonzero(laplace.sigma == 0.0)[0]
    if at_zero.size:  # sigma = 0 is a maximum of both objectives: AGQ stays there
        pieces.append((at_zero, _boundary_fit(objective, _replicates(boundary, at_zero),
                                              y[:, at_zero], n[:, at_zero], count[:, at_zero])))
    interior = np.nonzero(laplace.sigma != 0.0)[0]
    if interior.size:  # Laplace's Hessian stands in for AGQ's at the first step
        start = _replicates(laplace, interior)
        pieces.append((interior, _ascend(
            objective, y[:, interior], n[:, interior], count[:, interior], start.beta,
            start.sigma, start.u, _replicates(boundary, interior), start_hess=start.hess,
        )))
    fitted = _combine(laplace.beta.size, pieces)
    doubtful = np.nonzero(laplace.sigma > LAPLACE_TRUST_SIGMA)[0]
    if doubtful.size:
        y_d, n_d, count_d = y[:, doubtful], n[:, doubtful], count[:, doubtful]
        boundary_d = _replicates(boundary, doubtful)
        from_default = _ascend(objective, y_d, n_d, count_d, boundary_d.beta,
                               np.full(doubtful.size, SIGMA_START), np.zeros_like(y_d), boundary_d)
        fitted = _keep_higher(fitted, from_default, doubtful)
    below = np.nonzero(boundary.is_max & (fitted.sigma > 0.0) & (boundary.value > fitted.value))[0]
    if below.size:
        at_boundary = _boundary_fit(objective, _replicates(boundary, below),
                                    y[:, below], n[:, below], count[:, below])
        fitted = _keep_higher(fitted, at_boundary, below)
    return fitted


def _fit_block(y, n, count, nagq):
    """Fit the replicates of one block of distinct-group arrays (K, R).

    AGQ (nagq > 1) starts from a Laplace fit converged to AGQ_START_GRAD_TOL (see ``_agq_ascent``),
    so most of its iterations cost a Laplace evaluation rather than an AGQ one.
    """
    n_reps = y.shape[1]
    total_y, total_n = sum_over_groups(count * y), sum_over_groups(count * n)
    separated = (total_y == 0) | (total_y == total_n)

    beta = np.where(separated, np.where(total_y == 0, -np.inf, np.inf), 0.0)
    sigma = np.full(n_reps, np.nan)
    u = np.zeros_like(y)
    value = np.zeros(n_reps)
    max_grad = np.full(n_reps, np.nan)
    hess = np.full((3, n_reps), np.nan)
    converged = np.zeros(n_reps, dtype=bool)
    n_iter = np.zeros(n_reps, dtype=np.int64)

    fit = np.nonzero(~separated)[0]
    if fit.size == 0:
        return beta, sigma, u, value, hess, converged, max_grad, n_iter, separated
    y, n, count = y[:, fit], n[:, fit], count[:, fit]

    # sigma = 0: ordinary logistic regression with closed-form beta. Both objectives equal the
    # binomial log-likelihood there, with the same derivatives.
    beta_0 = logit(total_y[fit] / total_n[fit])
    zeros = np.zeros(fit.size)
    value_0, _, hess_0 = laplace_objective(beta_0, zeros, np.zeros_like(y), y, n, count)
    boundary = _Boundary(beta_0, value_0, hess_0, hess_0[2] <= 1e-9 * np.maximum(1.0, -hess_0[0]))

    fitted = _ascend(laplace_objective, y, n, count, beta_0, np.full(fit.size, SIGMA_START),
                     np.zeros_like(y), boundary, GRAD_TOL if nagq == 1 else AGQ_START_GRAD_TOL)
    laplace_iterations = fitted.n_iter
    if nagq > 1:
        objective = partial(agq_objective, n_nodes=nagq)
        fitted = _agq_ascent(objective, y, n, count, fitted, boundary)

    beta[fit], sigma[fit], u[:, fit], value[fit] = fitted.beta, fitted.sigma, fitted.u, fitted.value
    hess[:, fit], converged[fit] = fitted.hess, fitted.converged
    n_iter[fit] = fitted.n_iter + (laplace_iterations if nagq > 1 else 0)
    max_grad[fit] = np.max(np.abs(fitted.grad), axis=0)
    return beta, sigma, u, value, hess, converged, max_grad, n_iter, separated


def fit_glmm(y, n, nagq=1):
    """Fit ``glmer(cbind(y, n - y) ~ (1 | g), family = binomial)`` to one or many datasets.

    Parameters
    ----------
    y, n : array_like of int, shape (G,) or (R, G)
        Successes and trials per group. Groups with ``n == 0`` are padding and contribute nothing,
        so datasets with different numbers of groups fit in one array.
    nagq : int, default 1
        1 for the Laplace approximation; k > 1 for adaptive Gauss-Hermite quadrature with k nodes
        per group, centred at the conditional mode and scaled by the conditional SD (lme4's nAGQ).

    Returns
    -------
    GlmmFit
        Estimates and diagnostics; for (G,) input every field drops its leading dimension.

    Notes
    -----
    ``loglik`` includes sum_i log C(n_i, y_i), as lme4 does for aggregated binomial data. For
    ``nagq > 1`` it is the adaptive Gauss-Hermite marginal log-likelihood with the same constant;
    lme4 instead reports that value minus sum_i log C(n_i, y_i) minus the saturated log-likelihood
    sum_i [y_i log(y_i / n_i) + (n_i - y_i) log(1 - y_i / n_i)] (see ``lme4_agq_loglik``).

    ``beta_se`` is lme4's default ``vcov`` (``use.hessian = TRUE``): the beta block of the inverse
    of minus the exact Hessian of the maximised objective over (beta, sigma), from the last Newton
    iterate; at a boundary fit (sigma = 0) the binomial GLM's SE, as lme4 reports there (see
    ``_standard_error``). It is NaN where the fit did not converge.

    A dataset whose trials all failed (or all succeeded) has no finite MLE: it is returned with
    ``separated=True``, ``converged=False``, beta = -inf (+inf), sigma, beta_se, b and b_sd NaN,
    p_hat 0 (1) and loglik 0, the supremum. Input errors raise ``ValueError``.
    """
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise ValueError(f"nagq must be an integer >= 1, got {nagq!r}")
    nagq = int(nagq)
    y, n, was_1d = as_counts(y, n)
    keep_temporaries_in_heap()
    n_reps = y.shape[0]
    groups = distinct_groups(y, n)
    n_rows = groups.y.shape[0]

    beta, sigma = np.empty(n_reps), np.empty(n_reps)
    u, value, max_grad = np.empty((n_rows, n_reps)), np.empty(n_reps), np.empty(n_reps)
    hess = np.empty((3, n_reps))
    converged, separated = np.empty(n_reps, dtype=bool), np.empty(n_reps, dtype=bool)
    n_iter = np.empty(n_reps, dtype=np.int64)
    block = max(MIN_BLOCK_REPLICATES, BLOCK_CELLS // n_rows)
    for start in range(0, n_reps, block):
        cols = slice(start, start + block)
        (beta[cols], sigma[cols], u[:, cols], value[cols], hess[:, cols], converged[cols],
         max_grad[cols], n_iter[cols], separated[cols]) = _fit_block(
            groups.y[:, cols], groups.n[:, cols], groups.count[:, cols], nagq
        )

    constant = sum_over_groups(groups.count * log_choose(groups.n, groups.y))
    loglik = np.where(separated, 0.0, value + constant)

    p_mode = expit(beta + sigma * u)
    b_rows = sigma * u
    weight_rows = groups.n * p_mode * (1.0 - p_mode)
    b_sd_rows = sigma / np.sqrt(1.0 + sigma**2 * weight_rows)
    conditional_information = sum_over_groups(
        groups.count * weight_rows / (1.0 + sigma**2 * weight_rows)
    )
    beta_se = np.where(converged, beta_standard_error(hess, sigma, conditional_information), np.nan)
    rows, padding = np.maximum(groups.row_of_group, 0), groups.row_of_group < 0
    b = np.where(padding, np.nan, np.take_along_axis(b_rows.T, rows, axis=1))
    b_sd = np.where(padding, np.nan, np.take_along_axis(b_sd_rows.T, rows, axis=1))
    p_hat = expit(beta[:, None] + b)
    p_hat[separated] = np.where(padding[separated], np.nan, np.isposinf(beta[separated])[:, None])

    fields = dict(
        beta=beta, beta_se=beta_se, sigma=sigma, b=b, b_sd=b_sd, p_hat=p_hat, loglik=loglik,
        converged=converged, singular=~separated & (sigma < SINGULAR_TOL),
        separated=separated, max_grad=max_grad, n_iter=n_iter,
    )
    if was_1d:
        fields = {key: val[0] for key, val in fields.items()}
    n_groups = (n > 0).sum(axis=1)
    return GlmmFit(**fields, nagq=nagq, n_groups=n_groups[0] if was_1d else n_groups)


def lme4_agq_loglik(fit, y, n):
    """Convert ``fit.loglik`` for ``nagq > 1`` to the value lme4 1.1 prints for aggregated data.

    lme4 reports the AGQ log-likelihood without sum_i log C(n_i, y_i) and minus the saturated
    log-likelihood sum_i [y_i log(y_i/n_i) + (n_i - y_i) log(1 - y_i/n_i)] (0 log 0 = 0).
    """
    y, n, _ = as_counts(y, n)
    trials = np.maximum(n, 1)  # padding groups (n = 0, y = 0) contribute 0 either way
    saturated = xlogy(y, y / trials) + xlogy(n - y, (n - y) / trials)
    return np.squeeze(fit.loglik - (log_choose(n, y) + saturated).sum(axis=-1))
