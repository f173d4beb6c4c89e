"""Shared eta grids for the per-group integrals of the exact posterior in ``bayes``.

Group i's marginal likelihood at an outer node (beta, sigma) is

    I_i(beta, sigma) = int L_i(eta) N(eta; beta, sigma^2) d eta,   L_i = expit^y_i expit(-.)^(n_i - y_i),

with the conditional moments of p_i = expit(eta) and eta from the same integrand. For most outer
nodes all of a replicate's groups and nodes can share one set of eta nodes, so the sums become
one matrix product of an (outer nodes x eta nodes) normal kernel with an (eta nodes x groups)
table of likelihoods: a few thousand exponentials per replicate instead of a rule per group and
node. The adaptive Gauss-Hermite and eta-window rules of ``_bayes_quadrature`` take the rest.
"""

from __future__ import annotations

import functools

import numpy as np

from glmmshrink._bayes_quadrature import softplus_and_expit

GRID_MIN_SIGMA = 1.0 / 16.0  # outer nodes with sigma in [GRID_MIN_SIGMA, GRID_MAX_SIGMA] use the
GRID_MAX_SIGMA = 8.0  # shared grids; beyond, a grid would need hundreds of nodes
GRID_BAND_RATIO = 3.0  # one grid serves the nodes with sigma in [s, 3 s)
GRID_MIN_DENSITY = 0.6  # lower bound on 1 / s in rho: keeps the map's singularities 2 pi 0.6 from the axis
GRID_STEP = 1.0  # lattice spacing in t = T(eta)
GRID_REACH = 8.0  # a grid covers beta -+ 8 sigma at each of its nodes (normal mass e^-32 beyond)
LATTICE_REACH = 40.0  # stored lattices cover |beta| up to this; beyond, nodes are computed afresh
TINY_LOG = 300.0  # kernel and likelihood factors are floored at e^-300
TRUSTED_LOG = 250.0  # integrals below e^-250 of the group's likelihood are left to other rules
EDGE_FRACTION = np.exp(-30.0)  # ... and those whose integrand is not negligible at the grid's ends


def uses_grid(sigma):
    """Whether outer nodes at ``sigma`` take the shared eta grids of ``grid_integrals``."""
    return (sigma >= GRID_MIN_SIGMA) & (sigma <= GRID_MAX_SIGMA)


def grid_integrals(beta, sigma, y, n):
    """Every group's integral at every outer node of one replicate, on shared eta grids.

    Parameters
    ----------
    beta, sigma : ndarray (O,)
        The replicate's outer nodes, ``uses_grid(sigma)``.
    y, n : ndarray (U,)
        Its distinct groups (n > 0).

    Returns
    -------
    tuple of ndarray (O, U)
        (log I, E p, E p^2, E eta, Var eta) as from ``group_integrals``: log I without
        log C(n, y). NaN where the grid cannot be trusted, for the caller to compute otherwise: a
        group deep in the tail of the node's normal, whose integrand peaks beyond the grid or
        whose integral is below e^-250 of its largest likelihood.

    Notes
    -----
    The trapezoid rule on a uniform grid converges geometrically for smooth integrands that decay
    on the real line (Trefethen & Weideman 2014, SIAM Rev. 56(3), 385-458, section 5): a Gaussian
    sampled h SDs apart is integrated to a relative 2 exp(-2 pi^2 / h^2). The outer nodes are cut
    into bands sigma in [s, 3 s). In a band the integrand L_i N is at least 1 / rho(eta) wide,
    rho = sqrt(n_max) sech(eta / 2) / 2 + 1 / s, because the curvature of log L_i is
    n p (1 - p) = n sech^2(eta / 2) / 4 whatever y is. The band's nodes are uniform in
    t = T(eta) = int rho = 2 sqrt(n_max) atan(tanh(eta / 4)) + eta / s, GRID_STEP apart, with
    weights GRID_STEP / rho. The map is singular where rho = 0, 2 pi / s from the real t axis,
    which limits the error to about exp(-4 pi^2 / (s GRID_STEP)); hence 1 / s >= GRID_MIN_DENSITY.
    A band's sums are one matrix product whose shapes come from this replicate alone, so batches
    cannot change its results.
    """
    order, values = sorted_grid_integrals(beta, sigma, y, n)
    out = np.empty((5, beta.size, y.size))
    out[:, order] = values
    return tuple(out)


def sorted_grid_integrals(beta, sigma, y, n):
    """``grid_integrals`` with the nodes in the order it works in: (order, values), where row k of
    each value is node ``order[k]`` (saves the caller a scatter)."""
    band = np.floor(np.log(sigma / GRID_MIN_SIGMA) / np.log(GRID_BAND_RATIO)).astype(int)
    n_max = float(n.max())
    # The nodes sorted by band (stably): each band's nodes, eta nodes and kernel are then contiguous
    # pieces, and every step but the per-band matrix product runs once over all bands.
    order = np.argsort(band, kind="stable")
    band, beta, sigma = band[order], beta[order], sigma[order]
    change = band[1:] != band[:-1]
    node_start = np.concatenate([[0], np.flatnonzero(change) + 1])
    levels = band[node_start]
    band_of_node = np.concatenate([[0], np.cumsum(change)])  # 0, 1, ... by band
    lower = np.minimum.reduceat(beta - GRID_REACH * sigma, node_start)
    upper = np.maximum.reduceat(beta + GRID_REACH * sigma, node_start)
    # Each band's first and last lattice index; T is evaluated for every band's ends at once.
    inverse_width = np.array([_band_shape(n_max, int(level))[1] for level in levels])
    t_ends = _stretch(np.stack([lower, upper]), 0.5 * np.sqrt(n_max), inverse_width)
    firsts, lasts = np.floor(t_ends[0] / GRID_STEP).astype(int), np.ceil(t_ends[1] / GRID_STEP).astype(int)
    pieces = [_band_grid(n_max, int(level), first, last) for level, first, last in zip(levels, firsts, lasts)]
    eta, weight, softplus, moments = (np.concatenate(column) for column in zip(*pieces))
    size = np.array([piece[0].size for piece in pieces])
    eta_start = np.concatenate([[0], np.cumsum(size)[:-1]])

    log_lik = y * eta[:, None] - n * softplus[:, None]  # (E, U), every band's nodes
    log_top = np.maximum.reduceat(log_lik, eta_start, axis=0)  # (bands, U)
    # Both factors are floored at e^-300, so no product is subnormal (slow); where a total is
    # above e^-250 the floors change it by less than e^-40 relative.
    log_lik -= np.repeat(log_top, size, axis=0)
    np.maximum(log_lik, -TINY_LOG, out=log_lik)
    lik = np.exp(log_lik, out=log_lik)
    lik *= weight[:, None]
    table = np.empty(lik.shape + (5,))  # (E, U, 5), filled a moment at a time (long inner loops)
    for k in range(5):
        np.multiply(lik, moments[:, k, None], out=table[..., k])
    # Each node's kernel row over its band's eta nodes, all rows laid end to end.
    row_size = size[band_of_node]
    row_first = np.concatenate([[0], np.cumsum(row_size)[:-1]])
    eta_index = np.arange(row_size.sum()) + np.repeat(eta_start[band_of_node] - row_first, row_size)
    kernel = eta[eta_index]
    kernel -= np.repeat(beta, row_size)
    kernel *= np.repeat(1.0 / sigma, row_size)
    kernel *= kernel
    np.minimum(kernel, 2.0 * TINY_LOG, out=kernel)
    kernel *= -0.5
    np.exp(kernel, out=kernel)
    sums = np.empty((beta.size, y.size, 5))
    kernel_start = 0
    for first, count, node_lo, node_hi in zip(eta_start, size, node_start, np.append(node_start[1:], beta.size)):
        rows = node_hi - node_lo
        np.matmul(kernel[kernel_start:kernel_start + rows * count].reshape(rows, count),
                  table[first:first + count].reshape(count, -1), out=sums[node_lo:node_hi].reshape(rows, -1))
        kernel_start += rows * count
    total = sums[..., 0]
    # L_i N is log-concave, so an integrand still above e^-30 of the total at an end of the grid
    # peaks beyond it (a group deep in the tail of the node's normal, far from beta -+ 8 sigma).
    band_first, band_last = eta_start[band_of_node], (eta_start + size - 1)[band_of_node]
    edge = np.maximum(kernel[row_first][:, None] * lik[band_first], kernel[row_first + row_size - 1][:, None] * lik[band_last])
    reliable = (total > np.exp(-TRUSTED_LOG)) & (edge < EDGE_FRACTION * total)
    trusted_total = np.where(reliable, total, np.nan)
    p_mean, p_second, eta_mean, eta_second = (sums[..., k] / trusted_total for k in range(1, 5))
    log_integral = np.log(total) + log_top[band_of_node] - np.log(np.sqrt(2.0 * np.pi) * sigma)[:, None]
    log_integral[~reliable] = np.nan
    return order, (log_integral, p_mean, p_second, eta_mean, np.maximum(eta_second - eta_mean * eta_mean, 0.0))


def _band_grid(n_max, level, first, last):
    """The band's nodes t_k = k GRID_STEP, k = first..last: eta, weights, softplus(eta), (1, p, p^2, eta, eta^2).

    A band's nodes are always a slice of one lattice, computed once per (n_max, level); a range
    beyond the stored lattice is computed afresh.
    """
    half_root_n, inverse_width = _band_shape(n_max, level)
    lattice_first, lattice = _lattice(n_max, level)
    if lattice_first <= first and last < lattice_first + lattice[0].size:
        return tuple(column[first - lattice_first:last + 1 - lattice_first] for column in lattice)
    return _nodes(np.arange(first, last + 1) * GRID_STEP, half_root_n, inverse_width)


def _band_shape(n_max, level):
    """sqrt(n_max) / 2 and 1 / s of the band's density rho."""
    return 0.5 * np.sqrt(n_max), max(1.0 / (GRID_MIN_SIGMA * GRID_BAND_RATIO**level), GRID_MIN_DENSITY)


def _stretch(eta, half_root_n, inverse_width):
    """T(eta) = 2 sqrt(n) atan(tanh(eta / 4)) + eta / s, the integral of rho."""
    return 4.0 * half_root_n * np.arctan(np.tanh(0.25 * eta)) + inverse_width * eta


@functools.lru_cache(maxsize=4096)
def _lattice(n_max, level):
    """First index and nodes of the band's lattice over |eta| <= LATTICE_REACH + GRID_REACH sigma_max."""
    half_root_n, inverse_width = _band_shape(n_max, level)
    reach = LATTICE_REACH + GRID_REACH * GRID_MIN_SIGMA * GRID_BAND_RATIO ** (level + 1)
    last = int(np.ceil(_stretch(reach, half_root_n, inverse_width) / GRID_STEP))
    nodes = _nodes(np.arange(-last, last + 1) * GRID_STEP, half_root_n, inverse_width)
    for column in nodes:
        column.setflags(write=False)
    return -last, nodes


def _nodes(t, half_root_n, inverse_width):
    """eta = T^-1(t), the weights GRID_STEP / rho(eta), softplus(eta) and (1, p, p^2, eta, eta^2)."""
    # Newton from the far side of the asymptote T ~ eta / s -+ pi sqrt(n) / 2: T is concave for
    # eta > 0 and convex for eta < 0, so the iterates approach the root monotonically.
    eta = np.sign(t) * np.maximum(np.abs(t) - np.pi * half_root_n, 0.0) / inverse_width
    for _ in range(200):
        change = (_stretch(eta, half_root_n, inverse_width) - t) / (half_root_n / np.cosh(0.5 * eta) + inverse_width)
        eta -= change
        if np.all(np.abs(change) <= 1e-14 * (1.0 + np.abs(eta))):
            break
    softplus, p = softplus_and_expit(eta)
    moments = np.stack([np.ones_like(eta), p, p * p, eta, eta * eta], axis=-1)
    return eta, GRID_STEP / (half_root_n / np.cosh(0.5 * eta) + inverse_width), softplus, moments
