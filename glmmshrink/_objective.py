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


# _node_sums's rows: for each power j of c, the node sums of e c^j, e r c^j and e z c^j that the
# derivatives need (powers 0-2 of all three, 3 of e and e r, 4 of e), z = r^2 - w.
_ROWS_OF_POWER = (slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 11), slice(11, 12))
# The gradient alone needs e c^j for powers 0-2 and e r c^j for powers 0-1.
_GRADIENT_ROWS_OF_POWER = (slice(0, 2), slice(2, 4), slice(4, 5))


class _NodeWork:
    """Scratch arrays for one pass over the nodes, reused by every node (no temporaries)."""

    def __init__(self, shape):
        self.v, self.eta, self.tail, self.inv, self.minor, self.step, self.resid, self.log_term = (
            np.empty(shape) for _ in range(8)
        )


def _node_terms(node, shift, beta, sigma_root2, u_root_half, scale, y, n, work, out):
    """Write e, e r and (if ``out`` has three rows) e (r^2 - w) at the node z_k = ``node``.

    The node is v = u + sqrt(2) z_k scale, handled as v / sqrt(2) = u / sqrt(2) + z_k scale so
    that v^2 / 2 costs one product; ``shift`` is h(u) - log(w_k) - z_k^2. Logistic terms come from e^{-|eta|}, which cannot overflow: with H = [eta >= 0],
    p = minor + H (inv - minor) and log(1 + e^eta) = H eta + log1p(e^{-|eta|}), where
    inv = 1 / (1 + e^{-|eta|}) and minor = e^{-|eta|} inv = min(p, 1 - p).
    """
    v, eta, tail, inv, minor, step, resid, log_term = (
        work.v, work.eta, work.tail, work.inv, work.minor, work.step, work.resid, work.log_term
    )
    np.multiply(scale, node, out=v)  # v / sqrt(2)
    v += u_root_half
    np.multiply(v, sigma_root2, out=eta)
    eta += beta
    np.abs(eta, out=tail)
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)
    np.add(tail, 1.0, out=inv)
    np.divide(1.0, inv, out=inv)
    np.multiply(tail, inv, out=minor)
    np.greater_equal(eta, 0.0, out=step, casting="unsafe")  # H as 0.0 / 1.0
    np.subtract(inv, minor, out=resid)
    resid *= step
    resid += minor  # p
    # log_term = y eta - n log(1 + e^eta) - v^2 / 2 - (h(u) - log(w_k) - z_k^2)
    np.log1p(tail, out=tail)
    step *= eta
    tail += step
    tail *= n
    np.multiply(y, eta, out=log_term)
    log_term -= tail
    np.multiply(v, v, out=v)
    log_term -= v
    log_term -= shift
    weight, weighted_resid = out[0], out[1]
    np.exp(log_term, out=weight)
    np.multiply(n, resid, out=resid)
    np.subtract(y, resid, out=resid)
    np.multiply(weight, resid, out=weighted_resid)
    if len(out) < 3:
        return
    # z = r^2 - w, w = n p (1 - p) = n minor inv
    resid *= resid
    np.multiply(minor, inv, out=minor)
    minor *= n
    resid -= minor
    np.multiply(weight, resid, out=out[2])


def _node_sums(beta, sigma, u, scale, y, n, h_mode, n_nodes, rows_of_power=_ROWS_OF_POWER):
    """The 12 node sums sum_k X_k c_k^j that the AGQ value, gradient and Hessian need.

    Node k sits at v_k = u + c_k scale, c_k = sqrt(2) z_k. Its weight is
    e_k = w_k e^{z_k^2} exp(h(v_k) - h(u)), the integrand relative to its value at the mode, so
    e_k <= w_k e^{z_k^2} never overflows; r_k = y - n p_k and z_k = r_k^2 - n p_k (1 - p_k). X is
    e (powers 0-4), e r (0-3) and e z (0-2), stored by power (``rows_of_power``; the first five
    of them with ``_GRADIENT_ROWS_OF_POWER``). The rule is symmetric, so nodes are visited in pairs
    +-c_k: even powers take the pair's sum, odd powers its difference. Every operation is
    elementwise, in a fixed order.
    """
    nodes, log_weights = gauss_hermite_rule(n_nodes)
    work = _NodeWork(u.shape)
    args = (beta, sigma * np.sqrt(2.0), u / np.sqrt(2.0), scale, y, n, work)
    shift = np.empty(u.shape)
    n_families = rows_of_power[0].stop
    sums = np.zeros((rows_of_power[-1].stop,) + u.shape)
    plus, minus, odd, scaled = (np.empty((n_families,) + u.shape) for _ in range(4))
    for k in range(n_nodes // 2):  # hermgauss is ascending and exactly symmetric
        offset = -np.sqrt(2.0) * nodes[k]  # c_k > 0
        np.subtract(h_mode, log_weights[k], out=shift)
        _node_terms(-nodes[k], shift, *args, out=plus)
        _node_terms(nodes[k], shift, *args, out=minus)
        np.subtract(plus, minus, out=odd)
        even = np.add(plus, minus, out=plus)
        sums[rows_of_power[0]] += even
        power = offset
        for j, rows in enumerate(rows_of_power[1:], start=1):
            source = odd if j % 2 else even
            width = rows.stop - rows.start
            np.multiply(source[:width], power, out=scaled[:width])
            sums[rows] += scaled[:width]
            power = power * offset
    if n_nodes % 2:
        np.subtract(h_mode, log_weights[n_nodes // 2], out=shift)
        _node_terms(0.0, shift, *args, out=plus)
        sums[rows_of_power[0]] += plus
    return sums


def _poly_mul(a, b):
    """Product of polynomials in c given as coefficient sequences (constant term first)."""
    out = [None] * (len(a) + len(b) - 1)
    for i, a_i in enumerate(a):
        for j, b_j in enumerate(b):
            out[i + j] = a_i * b_j if out[i + j] is None else out[i + j] + a_i * b_j
    return out


def _hankel(moments, poly, n_rows):
    """E[X c^i B(c)] for i < n_rows, from the node averages E[X c^j] and B's coefficients."""
    return [_expect(poly, moments[i:]) for i in range(n_rows)]


def _expect(poly, moments):
    """sum_j poly_j E[X c^j]: the node average of X times the polynomial."""
    total = poly[0] * moments[0]
    for coefficient, moment in zip(poly[1:], moments[1:]):
        total = total + coefficient * moment
    return total


def agq_objective(beta, sigma, u, y, n, count, n_nodes, hessian=True):
    """Adaptive Gauss-Hermite log-likelihood, gradient and Hessian in (beta, sigma).

    Same parameters and returns as :func:`laplace_objective`, plus ``n_nodes`` (k >= 1); with one
    node all three equal the Laplace ones. With ``hessian=False`` the Hessian is None and costs
    nothing. Group i contributes

        A_i = log( s_i / sqrt(pi) * sum_k w_k e^{z_k^2} exp(h_i(v_k)) ),

    with nodes v_k = u_i + c_k s_i, c_k = sqrt(2) z_k, scale s_i = D_i^{-1/2} and
    h_i(v) = y eta - n log(1 + e^eta) - v^2 / 2, eta = beta + sigma v (Pinheiro & Bates 1995).
    The derivatives are exact derivatives of this k-node sum with the nodes moving with the mode
    u(theta) and scale s(theta). With pi_k the normalised node weights and
    G_k = dh(v_k(theta), theta)/dtheta = r_k eta_k' - v_k v_k' (r_k = y - n p_k):

        grad A_i = (log s_i)' + E_pi[G],
        hess A_i = (log s_i)'' + Cov_pi(G, G) + E_pi[dG/dtheta],
        dG/dtheta = -w_k eta_k' eta_k'^T + r_k eta_k'' - v_k' v_k'^T - v_k v_k'',

    where v_k' = u' + c_k s', eta_k' = d(beta + sigma v_k)/dtheta and their second derivatives are
    polynomials in c_k with per-group coefficients; so every node average is a combination of the
    12 node sums of :func:`_node_sums`, the terms in w_k and r_k^2 sharing eta' eta'^T.
    """
    s = sigma
    d = _mode_derivatives(beta, s, u, y, n)
    log_scale_grad, log_scale_hess = _log_scale_derivatives(d)
    scale = 1.0 / np.sqrt(d.D)
    tail = np.exp(-np.abs(d.eta))  # log(1 + e^eta) = max(eta, 0) + log1p(e^{-|eta|})
    h_mode = y * d.eta - n * (np.maximum(d.eta, 0.0) + np.log1p(tail)) - 0.5 * u * u
    rows_of_power = _ROWS_OF_POWER if hessian else _GRADIENT_ROWS_OF_POWER
    sums = _node_sums(beta, s, u, scale, y, n, h_mode, n_nodes, rows_of_power)
    mass = sums[0].copy()
    sums /= mass
    # Node averages E[X c^j] of X = 1, r and r^2 - w, for j = 0, 1, ...
    plain, resid, excess = (
        [sums[rows][family] for rows in rows_of_power if rows.stop - rows.start > family]
        for family in range(3)
    )

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
    value_and_grad = [
        -0.5 * np.log(d.D) - 0.5 * np.log(np.pi) + h_mode + np.log(mass),
        log_scale_grad[0] + mean_score["b"],
        log_scale_grad[1] + mean_score["s"],
    ]
    if not hessian:
        totals = sum_over_groups(np.stack(value_and_grad) * count)
        return totals[0], totals[1:3], None
    # E[X c^i B(c)] for the polynomials B the Hessian pairs up, so that each E[X A(c) B(c)] below
    # is a short dot product with A's coefficients.
    plain_node = _hankel(plain, node, 2)
    plain_node_d = {key: _hankel(plain, node_d[key], 2) for key in "bs"}
    plain_node_times_d = {key: _hankel(plain, node_times_d[key], 3) for key in "bs"}
    resid_node_times_d = {key: _hankel(resid, node_times_d[key], 2) for key in "bs"}
    excess_eta_d = {key: _hankel(excess, eta_d[key], 2) for key in "bs"}
    hess = []
    for pair, log_scale_pair in zip(("bb", "bs", "ss"), log_scale_hess):
        first, second = pair
        # Cov(G, G') + E[dG/dtheta] = E[(r^2 - w) eta' eta'] - E[r (eta' v v' + eta' v v')]
        #   + E[r eta''] + E[v v' v v'] - E[v' v'] - E[v v''] - E[G] E[G'].
        hess.append(
            log_scale_pair
            + _expect(eta_d[first], excess_eta_d[second])
            - _expect(eta_d[first], resid_node_times_d[second])
            - _expect(eta_d[second], resid_node_times_d[first])
            + _expect(eta_dd[pair], resid)
            + _expect(node_times_d[first], plain_node_times_d[second])
            - _expect(node_d[first], plain_node_d[second])
            - _expect(node_dd[pair], plain_node)
            - mean_score[first] * mean_score[second]
        )

    totals = sum_over_groups(np.stack([*value_and_grad, *hess]) * count)
    return totals[0], totals[1:3], totals[3:6]
