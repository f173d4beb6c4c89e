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
SD. Its gradient and Hessian are exact derivatives of that k-node sum, nodes moving with the mode
and the scale; one pass over the nodes accumulates the few node moments all three need.

Sums over groups run strictly in row order, so zero padding rows at the end never change a
replicate's floating-point result.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

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


class _ModeDerivatives(NamedTuple):
    """The mode u(theta) and D(theta) = 1 + sigma^2 w with their first and second derivatives."""

    eta: np.ndarray
    resid: np.ndarray  # y - n p
    w: np.ndarray
    D: np.ndarray
    h_ub: np.ndarray  # d2h/du dbeta at the mode; h_uu = -D
    h_us: np.ndarray
    u_b: np.ndarray
    u_s: np.ndarray
    u_bb: np.ndarray
    u_bs: np.ndarray
    u_ss: np.ndarray
    D_b: np.ndarray
    D_s: np.ndarray
    D_bb: np.ndarray
    D_bs: np.ndarray
    D_ss: np.ndarray


def _mode_derivatives(beta, sigma, u, y, n):
    """Implicit derivatives of u(theta) from h_u(u(theta), theta) = 0, and those of D(theta)."""
    s = sigma
    eta = beta + s * u
    p = expit(eta)
    q = 1.0 - p
    resid = y - n * p
    w = n * p * q
    w1 = w * (q - p)  # dw/deta
    w2 = w * ((q - p) ** 2 - 2.0 * p * q)  # d2w/deta2
    D = 1.0 + s * s * w

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

    D_b = s * s * w1 * e_b
    D_s = 2.0 * s * w + s * s * w1 * e_s
    D_bb = s * s * (w2 * e_b * e_b + w1 * e_bb)
    D_bs = 2.0 * s * w1 * e_b + s * s * (w2 * e_b * e_s + w1 * e_bs)
    D_ss = 2.0 * w + 4.0 * s * w1 * e_s + s * s * (w2 * e_s * e_s + w1 * e_ss)
    return _ModeDerivatives(eta, resid, w, D, h_ub, h_us, u_b, u_s, u_bb, u_bs, u_ss,
                            D_b, D_s, D_bb, D_bs, D_ss)


def _log_scale_derivatives(d):
    """Gradient and Hessian of -log(D) / 2: the log of the conditional SD 1 / sqrt(D)."""
    D, D_b, D_s = d.D, d.D_b, d.D_s
    grad = (-0.5 * D_b / D, -0.5 * D_s / D)
    hess = (
        -0.5 * (d.D_bb / D - D_b * D_b / (D * D)),
        -0.5 * (d.D_bs / D - D_b * D_s / (D * D)),
        -0.5 * (d.D_ss / D - D_s * D_s / (D * D)),
    )
    return grad, hess


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
    d = _mode_derivatives(beta, sigma, u, y, n)
    (log_scale_b, log_scale_s), (log_scale_bb, log_scale_bs, log_scale_ss) = _log_scale_derivatives(d)
    w, resid, h_ub, h_us = d.w, d.resid, d.h_ub, d.h_us
    per_group = np.stack(
        [
            y * d.eta - n * _log1p_exp(d.eta) - 0.5 * u * u - 0.5 * np.log(d.D),
            resid + log_scale_b,
            u * resid + log_scale_s,
            -w + h_ub * d.u_b + log_scale_bb,
            -w * u + h_ub * d.u_s + log_scale_bs,
            -w * u * u + h_us * d.u_s + log_scale_ss,
        ]
    )
    totals = sum_over_groups(per_group * count)
    return totals[0], totals[1:3], totals[3:6]


@lru_cache(maxsize=None)
def gauss_hermite_rule(n_nodes):
    """Nodes z_k and log-weights log(w_k) + z_k^2 for integrals of f(z) against e^{-z^2}."""
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    return nodes, np.log(weights) + nodes**2


# Node sums of _node_sums: (first index, number of powers c^0, c^1, ...) of e, e r, e r^2, e w.
_SUM_FAMILIES = ((0, 5), (5, 4), (9, 3), (12, 3))


def _node_terms(offset, log_weight, beta, sigma, u, scale, y, n, h_mode):
    """e, e r, e r^2 and e w at the node v = u + offset * scale of every group."""
    v = u + offset * scale
    eta = beta + sigma * v
    tail = np.exp(-np.abs(eta))  # e^{-|eta|} cannot overflow; expit and log1p(e^eta) follow
    inv = 1.0 / (1.0 + tail)
    minor = tail * inv  # min(p, 1 - p)
    resid = y - n * np.where(eta >= 0.0, inv, minor)
    log1p_exp = np.maximum(eta, 0.0) + np.log1p(tail)
    weight = np.exp((y * eta - n * log1p_exp - 0.5 * v * v - h_mode) + log_weight)
    weighted_resid = weight * resid
    return weight, weighted_resid, weighted_resid * resid, weight * (n * (minor * inv))


def _node_sums(beta, sigma, u, scale, y, n, h_mode, n_nodes):
    """The 15 node sums sum_k X_k c_k^j that the AGQ value, gradient and Hessian need.

    Node k sits at v_k = u + c_k scale, c_k = sqrt(2) z_k. Its weight is
    e_k = w_k e^{z_k^2} exp(h(v_k) - h(u)), the integrand relative to its value at the mode, so
    e_k <= w_k e^{z_k^2} never overflows; r_k = y - n p_k and w_k = n p_k (1 - p_k). X is e (powers
    0-4), e r (0-3), e r^2 (0-2) and e w (0-2). The rule is symmetric, so nodes are visited in
    pairs +-c_k: even powers take the pair's sum, odd powers its difference.
    """
    nodes, log_weights = gauss_hermite_rule(n_nodes)
    args = (beta, sigma, u, scale, y, n, h_mode)
    sums = [np.zeros_like(u) for _ in range(15)]
    for k in range(n_nodes // 2):  # hermgauss is ascending and exactly symmetric
        offset = -np.sqrt(2.0) * nodes[k]
        plus = _node_terms(offset, log_weights[k], *args)
        minus = _node_terms(-offset, log_weights[k], *args)
        for (first, n_powers), at_plus, at_minus in zip(_SUM_FAMILIES, plus, minus):
            even, odd = at_plus + at_minus, at_plus - at_minus
            sums[first] += even
            power = offset
            for j in range(1, n_powers):
                sums[first + j] += (odd if j % 2 else even) * power
                power = power * offset
    if n_nodes % 2:
        centre = _node_terms(0.0, log_weights[n_nodes // 2], *args)
        for (first, _), at_centre in zip(_SUM_FAMILIES, centre):
            sums[first] += at_centre
    return sums


def _poly_mul(a, b):
    """Product of polynomials in c given as coefficient sequences (constant term first)."""
    out = [None] * (len(a) + len(b) - 1)
    for i, a_i in enumerate(a):
        for j, b_j in enumerate(b):
            out[i + j] = a_i * b_j if out[i + j] is None else out[i + j] + a_i * b_j
    return out


def _poly_add(a, b):
    return [a_i + b_i for a_i, b_i in zip(a, b)]


def _expect(poly, moments):
    """sum_j poly_j E[X c^j]: the node average of X times the polynomial."""
    total = poly[0] * moments[0]
    for coefficient, moment in zip(poly[1:], moments[1:]):
        total = total + coefficient * moment
    return total


def agq_objective(beta, sigma, u, y, n, count, n_nodes):
    """Adaptive Gauss-Hermite log-likelihood, gradient and Hessian in (beta, sigma).

    Same parameters and returns as :func:`laplace_objective`, plus ``n_nodes`` (k >= 1); with one
    node all three equal the Laplace ones. Group i contributes

        A_i = log( s_i / sqrt(pi) * sum_k w_k e^{z_k^2} exp(h_i(v_k)) ),

    with nodes v_k = u_i + c_k s_i, c_k = sqrt(2) z_k, scale s_i = D_i^{-1/2} and
    h_i(v) = y eta - n log(1 + e^eta) - v^2 / 2, eta = beta + sigma v (Pinheiro & Bates 1995).
    The derivatives are exact derivatives of this k-node sum with the nodes moving with the mode
    u(theta) and scale s(theta). With pi_k the normalised node weights and
    G_k = dh(v_k(theta), theta)/dtheta = r_k eta_k' - v_k v_k':

        grad A_i = (log s_i)' + E_pi[G],
        hess A_i = (log s_i)'' + Cov_pi(G, G) + E_pi[dG/dtheta],

    where v_k' = u' + c_k s', eta_k' and their second derivatives are polynomials in c_k with
    per-group coefficients, so every node average reduces to the 15 sums of :func:`_node_sums`.
    """
    s = sigma
    d = _mode_derivatives(beta, s, u, y, n)
    log_scale_grad, log_scale_hess = _log_scale_derivatives(d)
    scale = 1.0 / np.sqrt(d.D)
    h_mode = y * d.eta - n * _log1p_exp(d.eta) - 0.5 * u * u
    sums = _node_sums(beta, s, u, scale, y, n, h_mode, n_nodes)
    mass = sums[0]
    moments = [total / mass for total in sums]
    plain, resid, resid_sq, weight = (moments[first:first + k] for first, k in _SUM_FAMILIES)

    # d(scale) = scale d(log scale); d2(scale) = scale (d2 log scale + (d log scale)^2).
    lb, ls = log_scale_grad
    scale_b, scale_s = scale * lb, scale * ls
    scale_bb, scale_bs, scale_ss = (
        scale * (h + a * b) for h, (a, b) in zip(log_scale_hess, ((lb, lb), (lb, ls), (ls, ls)))
    )
    node = (u, scale)
    node_d = {"b": (d.u_b, scale_b), "s": (d.u_s, scale_s)}
    node_dd = {"bb": (d.u_bb, scale_bb), "bs": (d.u_bs, scale_bs), "ss": (d.u_ss, scale_ss)}
    eta_d = {"b": (1.0 + s * d.u_b, s * scale_b), "s": (u + s * d.u_s, scale + s * scale_s)}
    eta_dd = {
        "bb": (s * d.u_bb, s * scale_bb),
        "bs": (d.u_b + s * d.u_bs, scale_b + s * scale_bs),
        "ss": (2.0 * d.u_s + s * d.u_ss, 2.0 * scale_s + s * scale_ss),
    }
    node_times_d = {key: _poly_mul(node, node_d[key]) for key in "bs"}  # v v'
    mean_score = {
        key: _expect(eta_d[key], resid) - _expect(node_times_d[key], plain) for key in "bs"
    }
    hess = []
    for pair, log_scale_pair in zip(("bb", "bs", "ss"), log_scale_hess):
        first, second = pair
        eta_eta = _poly_mul(eta_d[first], eta_d[second])
        score_product = (
            _expect(eta_eta, resid_sq)
            - _expect(_poly_add(_poly_mul(eta_d[first], node_times_d[second]),
                                _poly_mul(eta_d[second], node_times_d[first])), resid)
            + _expect(_poly_mul(node_times_d[first], node_times_d[second]), plain)
        )
        score_slope = (
            _expect(eta_dd[pair], resid)
            - _expect(eta_eta, weight)
            - _expect(_poly_mul(node_d[first], node_d[second]), plain)
            - _expect(_poly_mul(node, node_dd[pair]), plain)
        )
        covariance = score_product - mean_score[first] * mean_score[second]
        hess.append(log_scale_pair + covariance + score_slope)

    per_group = np.stack(
        [
            -0.5 * np.log(d.D) - 0.5 * np.log(np.pi) + h_mode + np.log(mass),
            log_scale_grad[0] + mean_score["b"],
            log_scale_grad[1] + mean_score["s"],
            *hess,
        ]
    )
    totals = sum_over_groups(per_group * count)
    return totals[0], totals[1:3], totals[3:6]
