"""Quadrature pieces of the exact posterior in ``bayes``: the per-group integrals and the mixture quantiles.

Group i's contribution to the posterior of (beta, sigma) is its marginal likelihood

    I_i(beta, sigma) = int Bin(y_i | n_i, expit(beta + sigma u)) phi(u) du,

on the spherical scale u = b / sigma (Bates et al. 2015, J. Stat. Softw. 67(1), section 5), which
stays well conditioned as sigma -> 0. It is computed by adaptive Gauss-Hermite quadrature centred
at the conditional mode and scaled by the conditional SD 1 / sqrt(1 + sigma^2 w_i) (Liu & Pierce
1994, Biometrika 81(3), 624-629; Pinheiro & Bates 1995, J. Comput. Graph. Stat. 4(1), section 3),
the rule lme4 uses for nAGQ > 1. The same nodes give the conditional moments of
eta_i = beta + sigma u given (beta, sigma, y_i), which the outer rule mixes into posterior moments
and credible intervals of p_i = expit(eta_i).

Every function works elementwise over replicates, so a replicate's numbers never depend on which
other replicates share the call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr

from glmmshrink._modes import conditional_modes
from glmmshrink._objective import gauss_hermite_rule


@dataclass(frozen=True)
class GroupIntegrals:
    """Per outer node and distinct group: log I_i (without log C(n, y)) and conditional moments."""

    log_integral: np.ndarray
    p_mean: np.ndarray
    p_second_moment: np.ndarray
    eta_mean: np.ndarray
    eta_var: np.ndarray


def _penalised_loglik(beta, sigma, u, y, n):
    """h(u) = y eta - n log(1 + e^eta) - u^2 / 2 with eta = beta + sigma u (Bates et al. eq. 4-6)."""
    eta = beta + sigma * u
    return y * eta - n * np.logaddexp(0.0, eta) - 0.5 * u * u, eta


def group_integrals(beta, sigma, y, n, n_nodes, u_start=None):
    """Adaptive Gauss-Hermite marginal likelihood and conditional moments of each group.

    Parameters
    ----------
    beta, sigma : ndarray
        Outer nodes, broadcastable against ``y`` (sigma > 0).
    y, n : ndarray of float
        Distinct (y, n) pairs; ``n == 0`` gives log I = 0.
    n_nodes : int
        Gauss-Hermite nodes per group.
    u_start : ndarray, optional
        Warm start for the conditional modes.

    Returns
    -------
    GroupIntegrals
        Arrays of the broadcast shape. ``log_integral`` is
        log int Bin(y | n, expit(beta + sigma u)) phi(u) du - log C(n, y).
    """
    u_mode, _ = conditional_modes(beta, sigma, y, n, u_start)
    h_mode, eta_mode = _penalised_loglik(beta, sigma, u_mode, y, n)
    p_mode = expit(eta_mode)
    scale = 1.0 / np.sqrt(1.0 + sigma * sigma * n * p_mode * (1.0 - p_mode))
    nodes, log_weights = gauss_hermite_rule(n_nodes)
    offset = np.sqrt(2.0) * scale[..., None] * nodes  # u - u_mode at each node
    h, eta = _penalised_loglik(
        beta[..., None] if np.ndim(beta) else beta, sigma[..., None] if np.ndim(sigma) else sigma,
        u_mode[..., None] + offset, y[..., None], n[..., None],
    )
    log_terms = log_weights + (h - h_mode[..., None])
    # Relative to the mode the terms are O(1), so no max-shift is needed before exp.
    terms = np.exp(log_terms)
    total = terms.sum(axis=-1)
    log_integral = h_mode + np.log(scale) + np.log(total) - 0.5 * np.log(np.pi)
    weights = terms / total[..., None]
    p = expit(eta)
    shift_mean = (weights * offset).sum(axis=-1)
    shift_second = (weights * offset * offset).sum(axis=-1)
    sigma_b = np.broadcast_to(sigma, u_mode.shape)
    return GroupIntegrals(
        log_integral=log_integral,
        p_mean=(weights * p).sum(axis=-1),
        p_second_moment=(weights * p * p).sum(axis=-1),
        eta_mean=eta_mode + sigma_b * shift_mean,
        eta_var=np.maximum(sigma_b * sigma_b * (shift_second - shift_mean * shift_mean), 0.0),
    ), u_mode


def mixture_quantile(weights, means, sds, prob, tol=1e-10, max_iter=100):
    """Quantile of sum_k weights_k N(means_k, sds_k^2), solved along the last axis.

    Parameters
    ----------
    weights : ndarray (..., K)
        Mixture weights summing to one along the last axis.
    means, sds : ndarray (..., K)
        Component means and SDs (sds > 0).
    prob : float
        Target probability in (0, 1).

    Returns
    -------
    ndarray (...)
        The root c of F(c) = prob, F the mixture CDF, by Newton's method safeguarded with bisection
        on the bracket [min(means - 10 sds), max(means + 10 sds)]; each element stops on its own.
    """
    lower = (means - 10.0 * sds).min(axis=-1)
    upper = (means + 10.0 * sds).max(axis=-1)
    mix_mean = (weights * means).sum(axis=-1)
    mix_var = (weights * (sds * sds + means * means)).sum(axis=-1) - mix_mean**2
    from scipy.special import ndtri

    point = np.clip(mix_mean + ndtri(prob) * np.sqrt(np.maximum(mix_var, 0.0)), lower, upper)
    active = np.ones(point.shape, dtype=bool)
    for _ in range(max_iter):
        idx = np.nonzero(active)
        if idx[0].size == 0:
            break
        c = point[idx][..., None]
        z = (c - means[idx]) / sds[idx]
        w = weights[idx]
        cdf = (w * ndtr(z)).sum(axis=-1) - prob
        density = (w * np.exp(-0.5 * z * z) / (np.sqrt(2.0 * np.pi) * sds[idx])).sum(axis=-1)
        c = c[..., 0]
        lo = np.where(cdf < 0.0, c, lower[idx])
        hi = np.where(cdf < 0.0, upper[idx], c)
        lower[idx], upper[idx] = lo, hi
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = c - cdf / density
        bad = ~((newton > lo) & (newton < hi))
        new = np.where(bad, 0.5 * (lo + hi), newton)
        point[idx] = new
        done = (np.abs(new - c) <= tol * (1.0 + np.abs(c))) | (cdf == 0.0) | (hi - lo <= tol)
        sub = tuple(ix[done] for ix in idx)
        active[sub] = False
    return point
