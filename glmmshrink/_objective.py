"""Marginal log-likelihood of the binomial random-intercept GLMM with gradient and Hessian.

Both objectives are functions of theta = (beta, sigma) evaluated at the conditional modes u_i
(spherical scale, see ``_modes``), with eta_i = beta + sigma u_i, p_i = expit(eta_i),
w_i = n_i p_i (1 - p_i) and D_i = 1 + sigma^2 w_i. Arrays are laid out (groups, replicates) and
carry a multiplicity ``count`` per distinct (y, n) pair. Neither includes the constant
sum_i log C(n_i, y_i); ``fit_glmm`` adds it.

Laplace (lme4's nAGQ = 1; Bates et al. 2015 eq. 31 with one scalar effect per group):
    L = sum_i [ y_i eta_i - n_i log(1 + e^eta_i) - u_i^2 / 2 - log(D_i) / 2 ].
Its gradient and Hessian are exact: u_i(theta) is differentiated implicitly from h_i'(u_i) = 0.

Adaptive Gauss-Hermite (lme4's nAGQ = k > 1; Pinheiro & Bates 1995, J. Comput. Graph. Stat. 4(1),
section 3): nodes u_i + sqrt(2) z_k / sqrt(D_i) centred at each mode and scaled by its conditional
SD. Its gradient and Hessian are the exact-integral ones (Louis 1982, JRSS-B 44, eq. 3.1: the
posterior mean of the complete-data score and the observed information identity), evaluated with
the same nodes.

Sums over groups run strictly in row order, so zero padding rows at the end never change a
replicate's floating-point result.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import expit, gammaln


def log_choose(n, y):
    """Elementwise log C(n, y): the constant lme4 adds to the log-likelihood of aggregated data."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    return gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)


def ordered_sum(values, axis):
    """Sum along ``axis`` strictly in index order, so trailing zero padding never changes a result."""
    values = np.moveaxis(values, axis, 0)
    total = values[0].copy()
    for row in values[1:]:
        total += row
    return total


def sum_over_groups(values):
    """Sum (..., groups, replicates) over the groups axis in fixed row order."""
    return ordered_sum(values, axis=-2)


def _log1p_exp(eta):
    return np.logaddexp(0.0, eta)


def laplace_objective(beta, sigma, u, y, n, count):
    """Laplace log-likelihood, gradient and Hessian in (beta, sigma) at the modes ``u``.

    Parameters
    ----------
    beta, sigma : ndarray, shape (R,)
    u, y, n, count : ndarray, shape (K, R)
        Modes, successes, trials and multiplicities of the distinct groups.

    Returns
    -------
    value : ndarray, shape (R,)
    grad : ndarray, shape (2, R)
        d/dbeta, d/dsigma.
    hess : ndarray, shape (3, R)
        d2/dbeta2, d2/dbeta dsigma, d2/dsigma2.
    """
    s = sigma
    eta = beta + s * u
    p = expit(eta)
    q = 1.0 - p
    resid = y - n * p
    w = n * p * q
    w1 = w * (q - p)  # dw/deta
    w2 = w * ((q - p) ** 2 - 2.0 * p * q)  # d2w/deta2
    D = 1.0 + s * s * w

    # Implicit derivatives of the mode from h_u(u(theta), theta) = 0, with h_uu = -D.
    h_ub, h_us = -s * w, resid - s * w * u
    h_uuu, h_uub, h_uus = -(s**3) * w1, -s * s * w1, -2.0 * s * w - s * s * w1 * u
    h_ubb, h_ubs, h_uss = -s * w1, -w - s * w1 * u, -2.0 * w * u - s * w1 * u * u
    u_b, u_s = h_ub / D, h_us / D
    u_bb = (h_ubb + 2.0 * h_uub * u_b + h_uuu * u_b * u_b) / D
    u_bs = (h_ubs + h_uus * u_b + h_uub * u_s + h_uuu * u_b * u_s) / D
    u_ss = (h_uss + 2.0 * h_uus * u_s + h_uuu * u_s * u_s) / D

    # Total derivatives of eta = beta + sigma u(theta).
    e_b, e_s = 1.0 + s * u_b, u + s * u_s
    e_bb, e_bs, e_ss = s * u_bb, u_b + s * u_bs, 2.0 * u_s + s * u_ss

    # log D(theta) with D = 1 + sigma^2 w(eta(theta)).
    D_b = s * s * w1 * e_b
    D_s = 2.0 * s * w + s * s * w1 * e_s
    D_bb = s * s * (w2 * e_b * e_b + w1 * e_bb)
    D_bs = 2.0 * s * w1 * e_b + s * s * (w2 * e_b * e_s + w1 * e_bs)
    D_ss = 2.0 * w + 4.0 * s * w1 * e_s + s * s * (w2 * e_s * e_s + w1 * e_ss)

    per_group = np.stack(
        [
            y * eta - n * _log1p_exp(eta) - 0.5 * u * u - 0.5 * np.log(D),
            resid - 0.5 * D_b / D,
            u * resid - 0.5 * D_s / D,
            -w + h_ub * u_b - 0.5 * (D_bb / D - D_b * D_b / (D * D)),
            -w * u + h_ub * u_s - 0.5 * (D_bs / D - D_b * D_s / (D * D)),
            -w * u * u + h_us * u_s - 0.5 * (D_ss / D - D_s * D_s / (D * D)),
        ]
    )
    totals = sum_over_groups(per_group * count)
    return totals[0], totals[1:3], totals[3:6]


@lru_cache(maxsize=None)
def gauss_hermite_rule(n_nodes):
    """Nodes z_k and log-weights log(w_k) + z_k^2 for integrals of f(z) against e^{-z^2}."""
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    return nodes, np.log(weights) + nodes**2


def _mode_sensitivities(beta, sigma, u, y, n):
    """First derivatives in (beta, sigma) of the mode u(theta) and of D(theta) = 1 + sigma^2 w."""
    s = sigma
    p = expit(beta + s * u)
    w = n * p * (1.0 - p)
    w1 = w * (1.0 - 2.0 * p)
    D = 1.0 + s * s * w
    u_b, u_s = -s * w / D, (y - n * p - s * w * u) / D
    D_b = s * s * w1 * (1.0 + s * u_b)
    D_s = 2.0 * s * w + s * s * w1 * (u + s * u_s)
    return D, (u_b, u_s), (D_b, D_s)


def agq_objective(beta, sigma, u, y, n, count, n_nodes):
    """Adaptive Gauss-Hermite log-likelihood, gradient and Hessian in (beta, sigma).

    Same parameters and returns as :func:`laplace_objective`, plus ``n_nodes`` (k >= 1). With one
    node the value equals the Laplace value. Group i contributes

        A_i = log( s_i / sqrt(pi) * sum_k w_k e^{z_k^2} exp(l_i(v_k) - v_k^2 / 2) ),

    with v_k = u_i + sqrt(2) s_i z_k, s_i = D_i^{-1/2} and l_i the binomial log-likelihood
    without its constant. The gradient is the exact derivative of A_i, nodes moving with the mode
    and scale; the Hessian is the observed-information identity (Louis 1982, eq. 3.1) on the same
    nodes, which differs from the exact one only by the quadrature error and so keeps Newton's
    fast convergence.
    """
    nodes, log_weights = gauss_hermite_rule(n_nodes)
    s = sigma
    D, (u_b, u_s), (D_b, D_s) = _mode_sensitivities(beta, s, u, y, n)
    scale = 1.0 / np.sqrt(D)
    # Node k moves as dv_k/dtheta = du/dtheta + sqrt(2) z_k ds/dtheta, ds/dtheta = -s D_theta / (2D).
    scale_b, scale_s = -0.5 * scale * D_b / D, -0.5 * scale * D_s / D

    log_terms, scores_b, scores_s, moved_b, moved_s, curvatures = [], [], [], [], [], []
    for z, log_w in zip(nodes, log_weights):
        v = u + np.sqrt(2.0) * scale * z
        eta = beta + s * v
        p = expit(eta)
        resid = y - n * p
        w = n * p * (1.0 - p)
        log_terms.append(log_w + y * eta - n * _log1p_exp(eta) - 0.5 * v * v)
        scores_b.append(resid)
        scores_s.append(v * resid)
        slope_v = s * resid - v  # d/dv of the integrand's log
        moved_b.append(resid + slope_v * (u_b + np.sqrt(2.0) * z * scale_b))
        moved_s.append(v * resid + slope_v * (u_s + np.sqrt(2.0) * z * scale_s))
        curvatures.append(np.stack([-w, -w * v, -w * v * v]))
    log_terms = np.stack(log_terms)
    peak = log_terms.max(axis=0)
    node_weights = np.exp(log_terms - peak)
    mass = ordered_sum(node_weights, axis=0)
    post = node_weights / mass  # normalised weight of each node

    def post_mean(values):
        return ordered_sum(post * values, axis=0)

    scores_b, scores_s = np.stack(scores_b), np.stack(scores_s)
    mean_b, mean_s = post_mean(scores_b), post_mean(scores_s)
    curvature = ordered_sum(post[:, None] * np.stack(curvatures), axis=0)
    per_group = np.stack(
        [
            np.log(scale) - 0.5 * np.log(np.pi) + peak + np.log(mass),
            post_mean(np.stack(moved_b)) - 0.5 * D_b / D,
            post_mean(np.stack(moved_s)) - 0.5 * D_s / D,
            curvature[0] + post_mean(scores_b * scores_b) - mean_b * mean_b,
            curvature[1] + post_mean(scores_b * scores_s) - mean_b * mean_s,
            curvature[2] + post_mean(scores_s * scores_s) - mean_s * mean_s,
        ]
    )
    totals = sum_over_groups(per_group * count)
    return totals[0], totals[1:3], totals[3:6]
