"""Quadrature pieces of the exact posterior in ``bayes``: the mode of beta given sigma and the per-group
integrals by adaptive Gauss-Hermite or the eta window.

Group i's contribution to the posterior of (beta, sigma) is its marginal likelihood

    I_i(beta, sigma) = int Bin(y_i | n_i, expit(beta + sigma u)) phi(u) du,

on the spherical scale u = b / sigma (Bates et al. 2015, J. Stat. Softw. 67(1), section 5), which
stays well conditioned as sigma -> 0. It is computed by adaptive Gauss-Hermite quadrature centred
at the conditional mode and scaled by the conditional SD 1 / sqrt(1 + sigma^2 w_i) (Liu & Pierce
1994, Biometrika 81(3), 624-629; Pinheiro & Bates 1995, J. Comput. Graph. Stat. 4(1), section 3),
the rule lme4 uses for nAGQ > 1. The same nodes give the conditional moments of
eta_i = beta + sigma u given (beta, sigma, y_i), which the outer rule mixes into posterior moments
of p_i = expit(eta_i); the log integrals also weight the credible intervals (``_bayes_intervals``).

Every function works elementwise over replicates, so a replicate's numbers never depend on which
other replicates share the call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_ndtr

from glmmshrink._modes import conditional_modes
from glmmshrink._objective import gauss_hermite_rule, ordered_sum


def beta_given_sigma(sigma, y, n, count, prior_mean, prior_precision, beta, u, n_iter=30):
    """Joint mode of (beta, u) given sigma (PIRLS), and the profile curvature in beta.

    Newton on beta with the exact profile derivatives: d/dbeta = sum_i (y_i - n_i p_i) and
    -d2/dbeta2 = sum_i w_i / (1 + sigma^2 w_i), the modes u_i re-solved at each step. Arrays
    (..., groups); ``beta`` and ``sigma`` carry a trailing length-1 groups axis.
    """
    active = np.ones(beta.shape, dtype=bool)
    for _ in range(n_iter):
        if u is None:
            u, _ = conditional_modes(beta, sigma, y, n, None)
        else:
            # A finished replicate keeps its modes: re-solving would polish its last bits for as
            # long as the slowest replicate in the batch iterates. Only the unfinished rows are
            # solved (each element's Newton iteration is its own, so this changes no number).
            rows = active[..., 0]
            shape = np.broadcast_shapes(beta.shape, np.shape(sigma), np.shape(y), np.shape(n), u.shape)
            solved, _ = conditional_modes(*(np.broadcast_to(a, shape[:-1] + np.shape(a)[-1:])[rows]
                                            for a in (beta, sigma, y, n, u)))
            u = u.copy()
            u[rows] = solved
        p = expit(beta + sigma * u)
        w = n * p * (1.0 - p)
        grad = ordered_sum(count * (y - n * p), axis=-1)[..., None] - prior_precision * (beta - prior_mean)
        info = ordered_sum(count * w / (1.0 + sigma * sigma * w), axis=-1)[..., None] + prior_precision
        step = np.clip(grad / info, -3.0, 3.0)
        step = np.where(active, step, 0.0)
        beta = beta + step
        active &= np.abs(step) > 1e-10 * (1.0 + np.abs(beta))
        if not active.any():
            break
    u, _ = conditional_modes(beta, sigma, y, n, u)
    p = expit(beta + sigma * u)
    w = n * p * (1.0 - p)
    info = ordered_sum(count * w / (1.0 + sigma * sigma * w), axis=-1)[..., None] + prior_precision
    laplace = ordered_sum(
        count * (y * (beta + sigma * u) - n * np.logaddexp(0.0, beta + sigma * u) - 0.5 * u * u
                 - 0.5 * np.log1p(sigma * sigma * w)), axis=-1,
    )[..., None]
    return beta, u, info, laplace


def interpolate(at, grid, *values):
    """Linear interpolation along the last axis of each (C, T) value, at (C, S) points; flat outside."""
    index = np.clip(np.searchsorted(grid, at) - 1, 0, grid.size - 2)
    fraction = np.clip((at - grid[index]) / (grid[index + 1] - grid[index]), 0.0, 1.0)
    return tuple(
        (1.0 - fraction) * np.take_along_axis(value, index, axis=-1)
        + fraction * np.take_along_axis(value, index + 1, axis=-1)
        for value in values
    )


def gauss_legendre(n_nodes, lower, upper):
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    half = 0.5 * (upper - lower)[..., None]
    return lower[..., None] + half * (nodes + 1.0), half * weights


@dataclass(frozen=True)
class GroupIntegrals:
    """Per outer node and distinct group: log I_i (without log C(n, y)) and conditional moments."""

    log_integral: np.ndarray
    p_mean: np.ndarray
    p_second_moment: np.ndarray
    eta_mean: np.ndarray
    eta_var: np.ndarray


WINDOW_MIN_SIGMA = 1.0  # from here on the eta-window rule replaces adaptive Gauss-Hermite
WINDOW_NODES = 20  # Gauss-Legendre nodes on each side of the likelihood's peak
WINDOW_DROP = 25.0  # the window keeps every eta where the likelihood is within e^-25 of its maximum


def softplus_and_expit(eta):
    """log(1 + e^eta) and expit(eta) from one exp."""
    damped = np.exp(-np.abs(eta))
    return np.maximum(eta, 0.0) + np.log1p(damped), np.where(eta >= 0.0, 1.0, damped) / (1.0 + damped)


def group_integrals(beta, sigma, y, n, n_nodes, u_start=None, keep=None):
    """Marginal likelihood and conditional moments of each group at each outer node.

    Parameters
    ----------
    beta, sigma : ndarray
        Outer nodes, broadcastable against ``y`` (sigma > 0).
    y, n : ndarray of float
        Distinct (y, n) pairs; ``n == 0`` gives log I = 0.
    n_nodes : int
        Most adaptive Gauss-Hermite nodes per group (sigma < ``WINDOW_MIN_SIGMA``); smooth
        elements (sigma^2 n / 4 small, see ``FEW_NODES``) take 3, 5 or 7.
    u_start : ndarray, optional
        Warm start for the conditional modes; without one they are solved in full, or for
        sigma < ``EXPANSION_MAX_SIGMA`` started from the small-sigma expansion.
    keep : ndarray of bool, optional
        Elements to compute; the others are returned as zeros (the caller gives them no weight).

    Returns
    -------
    GroupIntegrals
        Arrays of the broadcast shape. ``log_integral`` is
        log int Bin(y | n, expit(beta + sigma u)) phi(u) du - log C(n, y).

    Notes
    -----
    For sigma < 1 the conditional density of u is close to normal and adaptive Gauss-Hermite
    converges fast. For larger sigma it is the normal prior cut by a likelihood of width ~1/sigma in
    u (a smooth step for y = 0 or y = n), where Gauss-Hermite converges slowly (errors ~1e-3 with
    13 nodes at sigma = 3); there ``_LikelihoodWindow`` integrates on eta instead. Each element
    takes one path by its own sigma, y and n, so batches cannot change results. The posterior
    uses this for sigma outside the shared grids of ``_bayes_grid`` only.
    """
    shape = np.broadcast_shapes(np.shape(beta), np.shape(sigma), np.shape(y), np.shape(n))
    out = [np.zeros(shape) for _ in range(5)]
    flat_out = [value.reshape(-1) for value in out]
    wanted = np.ones(shape, dtype=bool) if keep is None else np.broadcast_to(keep, shape)
    where = np.nonzero(wanted)  # gathered from broadcast views: nothing else is materialised
    flat = np.ravel_multi_index(where, shape)
    beta, sigma, y, n = (np.broadcast_to(np.asarray(a, float), shape)[where] for a in (beta, sigma, y, n))
    if u_start is not None:
        u_start = np.broadcast_to(u_start, shape)[where]
    window = (sigma >= WINDOW_MIN_SIGMA) & (n > 0)
    for use_window in (False, True):
        idx = np.flatnonzero(window == use_window)
        if idx.size == 0:
            continue
        if use_window:
            # The eta-window nodes depend on (y, n) only: tabulate them once per distinct pair.
            pairs, row = np.unique(np.stack([y[idx], n[idx]]), axis=1, return_inverse=True)
            values = _LikelihoodWindow(*pairs).integrals(row.reshape(-1), beta[idx], sigma[idx])
            for target, value in zip(flat_out, values):
                target[flat[idx]] = value
            continue
        # Fewer nodes where the conditional density of u is close to N(0, 1): with
        # r = sigma^2 n / 4 >= sigma^2 w the rule's error falls like r^k (below 1e-10 here).
        smoothness = sigma[idx] ** 2 * n[idx] / 4.0
        nodes = np.full(idx.size, n_nodes)
        for k, r_max in FEW_NODES:
            nodes = np.where((smoothness <= r_max) & (k < nodes), k, nodes)
        for k in np.unique(nodes):
            part = idx[nodes == k]
            start = None if u_start is None else u_start[part]
            values = _adaptive_gauss_hermite(beta[part], sigma[part], y[part], n[part], k, start)
            for target, value in zip(flat_out, values):
                target[flat[part]] = value
    return GroupIntegrals(*out)


FEW_NODES = ((7, 0.2), (5, 0.05), (3, 1e-3))  # (nodes, largest sigma^2 n / 4) of the small rules


EXPANSION_MAX_SIGMA = 1.0 / 16.0  # below it the small-sigma expansion starts the mode's Newton steps
CENTRE_NEWTON_STEPS = 1  # Newton steps from the warm start that place each group's rule


def _centre(beta, sigma, y, n, u_start):
    """Centre of the adaptive rule: a fixed number of Newton steps towards the conditional mode.

    The Gauss-Hermite rule is valid for any centre and scale; centring it at the exact mode only
    makes it most accurate there. From a warm start, or for sigma < EXPANSION_MAX_SIGMA from the
    small-sigma expansion of the mode, CENTRE_NEWTON_STEPS Newton steps on the score
    sigma (y - n p) - u place the rule to far below its own error, with no per-element
    convergence test and gathers. Otherwise the mode is solved in full.
    """
    if u_start is None:
        small = sigma < EXPANSION_MAX_SIGMA
        if not small.all():
            return conditional_modes(beta, sigma, y, n, None)[0]
        # Small sigma: the mode is u = sigma (y - n p) / (1 + sigma^2 w) at eta = beta, to O(sigma^3).
        p = expit(beta)
        u_start = sigma * (y - n * p) / (1.0 + sigma * sigma * n * p * (1.0 - p))
    u = np.clip(u_start, sigma * (y - n), sigma * y)
    for _ in range(CENTRE_NEWTON_STEPS):
        p = expit(beta + sigma * u)
        u = np.clip(u + (sigma * (y - n * p) - u) / (1.0 + sigma * sigma * n * p * (1.0 - p)),
                    sigma * (y - n), sigma * y)
    return u


def _adaptive_gauss_hermite(beta, sigma, y, n, n_nodes, u_start):
    """Adaptive Gauss-Hermite on u, centred at the conditional mode, scaled by the conditional SD."""
    u_mode = _centre(beta, sigma, y, n, u_start)
    eta_mode = beta + sigma * u_mode
    softplus_mode, p_mode = softplus_and_expit(eta_mode)
    h_mode = y * eta_mode - n * softplus_mode - 0.5 * u_mode * u_mode
    scale = 1.0 / np.sqrt(1.0 + sigma * sigma * n * p_mode * (1.0 - p_mode))
    nodes, log_weights = gauss_hermite_rule(n_nodes)
    nodes, log_weights = nodes[:, None], log_weights[:, None]  # (K, 1): rows of contiguous elements
    step = np.sqrt(2.0) * scale  # u - u_mode = step * node
    eta = eta_mode + (sigma * step) * nodes
    softplus, p = softplus_and_expit(eta)
    # h(u) - h(u_mode), written in differences so nothing large cancels.
    log_terms = n * (softplus_mode - softplus)
    log_terms += ((y * sigma - u_mode) * step) * nodes
    log_terms += log_weights - (0.5 * step * step) * (nodes * nodes)
    terms = np.exp(log_terms, out=log_terms)
    total = terms.sum(axis=0)
    shift_mean = step * (terms * nodes).sum(axis=0) / total
    shift_second = step * step * (terms * (nodes * nodes)).sum(axis=0) / total
    terms *= p
    p_mean = terms.sum(axis=0) / total
    terms *= p
    return (
        h_mode + np.log(scale) + np.log(total) - 0.5 * np.log(np.pi),
        p_mean,
        terms.sum(axis=0) / total,
        eta_mode + sigma * shift_mean,
        np.maximum(sigma * sigma * (shift_second - shift_mean * shift_mean), 0.0),
    )


class _LikelihoodWindow:
    """Gauss-Legendre nodes on eta for int N(eta; beta, sigma^2) L(eta) d eta, L = expit^y expit(-.)^(n-y).

    The window is where log L is within ``WINDOW_DROP`` of its maximum; its ends come from tangent
    lines of the concave log L one unit either side of the peak logit(y / n). Two panels split at
    the peak use eta = peak + sinh(v), so the exponential tails of L become double-exponential in v
    and Gauss-Legendre needs few nodes (Takahasi & Mori 1974, the DE transformation). For y = n
    the likelihood tends to 1 as eta -> inf; above a = log(n) + 25 it is within e^-25 of 1, so that
    tail is the normal's closed-form partial moments. y = 0 is the mirror image (eta -> -eta).
    With sigma >= 1 the normal factor is smooth on the window, so the nodes need not depend on it.
    """

    def __init__(self, y, n):
        self.all_failed = y == 0
        y = np.where(self.all_failed, n, y)
        self.all_success = y == n
        interior = ~self.all_success
        with np.errstate(divide="ignore", invalid="ignore"):
            peak = np.where(interior, np.log(y / (n - y)), np.log(np.maximum(n, 1.0)))

            def loglik(eta):
                return y * eta - n * softplus_and_expit(eta)[0]

            top = np.where(interior, loglik(peak), 0.0)
            ends = []
            for side in (-1.0, 1.0):
                anchor = peak + side
                ends.append(anchor - (WINDOW_DROP + loglik(anchor) - top) / (y - n * expit(anchor)))
        # y = n: expit(eta)^n <= e^(n eta) below 0, within e^-25 of 1 above log(n) + 25.
        lower = np.where(self.all_success, -WINDOW_DROP / np.maximum(n, 1.0), ends[0])
        upper = np.where(self.all_success, peak + WINDOW_DROP, ends[1])
        upper = np.where(n > 0, upper, lower + 1.0)  # padding rows: any finite window

        x, w = np.polynomial.legendre.leggauss(WINDOW_NODES)
        v_lower, v_upper = np.arcsinh(lower - peak), np.arcsinh(upper - peak)
        v = np.concatenate([0.5 * v_lower[:, None] * (1.0 - x), 0.5 * v_upper[:, None] * (x + 1.0)], axis=1)
        self.eta = peak[:, None] + np.sinh(v)
        jacobian = np.cosh(v) * np.concatenate([-0.5 * v_lower[:, None] * w, 0.5 * v_upper[:, None] * w], axis=1)
        softplus, self.p = softplus_and_expit(self.eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.log_weight = np.log(jacobian) + y[:, None] * self.eta - n[:, None] * softplus
        self.upper = upper
        self.moments = np.stack([np.ones_like(self.p), self.p, self.p * self.p, self.eta, self.eta * self.eta], axis=-1)

    def integrals(self, row, beta, sigma):
        """(log I, E p, E p^2, E eta, Var eta) for table rows ``row`` at (beta, sigma), sigma >= 1.

        The node sums of every element on one table row are one matrix product with that row's
        (nodes, 5) table of 1, p, p^2, eta, eta^2; its shape depends on the row's own elements
        only, so a replicate's numbers do not depend on the other replicates in the call.
        """
        all_failed, all_success = self.all_failed[row], self.all_success[row]
        beta = np.where(all_failed, -beta, beta)
        upper = self.upper[row]
        z = (self.eta[row] - beta[:, None]) / sigma[:, None]
        log_terms = self.log_weight[row] - 0.5 * z * z
        z_upper = (upper - beta) / sigma
        with np.errstate(divide="ignore"):
            log_tail = np.where(all_success, log_ndtr(-z_upper) + 0.5 * np.log(2.0 * np.pi) + np.log(sigma), -np.inf)
        shift = np.maximum(log_terms.max(axis=1), log_tail)
        terms = np.exp(log_terms - shift[:, None])
        sums = np.empty((row.size, 5))
        order = np.argsort(row, kind="stable")
        bounds = np.flatnonzero(np.diff(row[order])) + 1
        for members in np.split(order, bounds):
            sums[members] = terms[members] @ self.moments[row[members[0]]]
        # Tail (eta > upper, y = n) moments of the normal, in units of the 1/(sqrt(2 pi) sigma) factor.
        tail = np.exp(log_tail - shift)
        tail_density = np.where(all_success, sigma * sigma * np.exp(-0.5 * z_upper * z_upper - shift), 0.0)
        total = sums[:, 0] + tail
        p_mean = (sums[:, 1] + tail) / total
        p_second = (sums[:, 2] + tail) / total
        eta_mean = (sums[:, 3] + beta * tail + tail_density) / total
        eta_second = (sums[:, 4] + (beta * beta + sigma * sigma) * tail + (upper + beta) * tail_density) / total
        return (
            np.log(total) + shift - np.log(np.sqrt(2.0 * np.pi) * sigma),
            np.where(all_failed, 1.0 - p_mean, p_mean),
            np.where(all_failed, 1.0 - 2.0 * p_mean + p_second, p_second),
            np.where(all_failed, -eta_mean, eta_mean),
            np.maximum(eta_second - eta_mean * eta_mean, 0.0),
        )
