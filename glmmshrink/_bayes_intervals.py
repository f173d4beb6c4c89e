"""Equal-tailed credible intervals of beta and of p_i = expit(beta + b_i) from the nested rule of ``bayes``.

The outer rule has sigma nodes s with Gauss-Hermite nodes beta_sb = mu_s + sqrt(2) lambda_s x_b
and normalised weights W_sb. The marginal posterior of eta_i = beta + b_i is exactly

    f_i(eta) = L_i(eta) sum_s int h_is(beta) N(eta; beta, sigma_s^2) d beta,
    h_is(beta) = pi(beta, sigma_s | y) / I_i(beta, sigma_s)   (group i left out),

a mixture over the outer nodes of each group's exact conditional density
L_i(eta) N(eta; beta, sigma^2) / I_i(beta, sigma) of its linear predictor (no normal shape is
assumed anywhere). Its CDF is integrated on a uniform eta grid and inverted.

The beta integral takes one of two forms per sigma node:

* sigma_s >= sqrt(2) lambda_s ("wide"): the node's Gauss-Hermite sum itself,
  sum_b W_sb N(eta; beta_sb, sigma_s^2) / I_i(beta_sb, sigma_s). Each component is at least as
  wide as the beta nodes are apart, where the 9-node rule integrates a normal kernel to ~5e-7.
* narrower: a sum over the beta nodes would be a comb of spikes (sigma -> 0 makes each component
  a point mass at its beta node). There log h_is is continued between the beta nodes by its
  polynomial interpolant in x (the function the Gauss-Hermite rule integrates exactly, Naylor &
  Smith 1982), and the convolution with N(0, sigma_s^2) is an adaptive Gauss-Hermite rule in
  beta centred at the product's mode (Liu & Pierce 1994), so it stays exact as sigma_s -> 0.
  A narrow node carrying less than ``SMALL_MASS`` of the posterior takes a normal with its exact
  conditional mean and variance of eta_i instead: its shape error moves the CDF by < 1e-6.

The marginal posterior of beta is sum_s exp(P_s(x)), P_s the same interpolant of the node's
log density of beta, integrated on a uniform beta grid.

Each quantile comes from a CDF accumulated cell by cell with the four-point (cubic) rule, then a
cubic Hermite inversion within the cell; the lower tail is measured from the left and the upper
from the right against the exact total mass, so a heavy far tail (a group at y = n when sigma
may be large) need not fit on the grid. Refining every grid setting and the rule moves the
p ends of the reference datasets by < 2e-5 and beta's (logit scale) by < 5e-5. Every density is
built from one replicate's arrays, and the block's inversion (``_grid_quantiles.block_quantiles``)
works column by column, so a replicate's intervals never depend on the other replicates of a batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from glmmshrink._bayes_quadrature import softplus_and_expit
from glmmshrink._grid_quantiles import block_quantiles, grid_quantiles  # noqa: F401 (grid_quantiles re-exported)
from glmmshrink._objective import gauss_hermite_rule

NARROW_BLOCK = 1_000_000  # most (node, grid point, beta node, group) terms evaluated at once
SMALL_MASS = 1e-4  # narrow sigma nodes lighter than this take a normal with their exact moments
NARROW_REACH_SCALES, NARROW_REACH_SIGMAS = 7.0, 8.0  # a narrow node's density of beta is below
# e^-24 beyond centre -+ (7 lambda + 8 sigma)
CONVOLUTION_NODES = 7  # adaptive Gauss-Hermite nodes in beta for the narrow sigma nodes
# Grid points per SD of eta given one sigma node (the narrowest feature that node adds to the
# density), by the node's posterior mass: a node of mass m under-resolved at 1.5 points per SD
# still has its cells integrated to ~1e-3 relative, an error below 1e-3 m. Doubling every
# resolution, the reach and the convolution nodes moves the reference datasets' interval ends
# by < 2e-5.
GRID_RESOLUTION = ((1e-4, 4.0), (1e-10, 1.5))
NEGLIGIBLE_MASS = 1e-11  # sigma nodes below this posterior mass are left out of the intervals
GRID_REACH = 8.0  # a grid covers each group's posterior mean -+ 8 posterior SDs of eta
RANGE_MASS = 1e-7  # sigma nodes above this mass set the span of the beta grid
MAX_GRID = 4001  # most grid points per replicate; the spacing grows instead


@functools.lru_cache(maxsize=8)
def _interpolation_tables(n_nodes):
    """For the Gauss-Hermite nodes x_b: the matrix taking node values to the coefficients of the
    interpolating polynomial in x / x_max (well conditioned), and for each end the weights giving
    the slope there of the quadratic through the three end nodes."""
    x, _ = gauss_hermite_rule(n_nodes)
    x_max = x[-1]
    to_coefficients = np.linalg.inv(np.polynomial.polynomial.polyvander(x / x_max, n_nodes - 1))
    slopes = []
    for three, edge in ((x[:3], x[0]), (x[-3:], x[-1])):
        # d/dx of the Lagrange basis of the three nodes, at the edge.
        weights = np.zeros(3)
        for k in range(3):
            others = [j for j in range(3) if j != k]
            weights[k] = sum(edge - three[j] for j in others) / np.prod(three[k] - three[others])
        slopes.append(weights)
    return x, x_max, to_coefficients, slopes[0], slopes[1]


def _interpolant_pieces(values):
    """What ``_log_density_interpolant`` needs of log densities ``values`` (S, K, M) at the K nodes:
    the nodes, x_max, the polynomial coefficients of r (S, K, M), the guard's bounds (S, 1, M) and
    for each end its node, r there and the continuation's slope (S, M)."""
    nodes, x_max, to_coefficients, left_slope, right_slope = _interpolation_tables(values.shape[1])
    deviation = values + (nodes * nodes)[:, None]  # r at the nodes (S, K, M)
    coefficients = np.einsum("jk,skm->sjm", to_coefficients, deviation)
    low, high = deviation.min(axis=1, keepdims=True), deviation.max(axis=1, keepdims=True)
    margin = 0.1 * (high - low)
    ends = ((nodes[0], deviation[:, 0], np.einsum("k,skm->sm", left_slope, deviation[:, :3])),
            (nodes[-1], deviation[:, -1], np.einsum("k,skm->sm", right_slope, deviation[:, -3:])))
    return nodes, x_max, coefficients, low - margin, high + margin, ends


def _log_density_interpolant(x, values):
    """Interpolant in x of log densities (S, K, M) at the K Gauss-Hermite nodes, at points x (S, P) -> (S, M, P).

    The rule was placed so that a node's density of x is close to N(0, 1/2); the interpolated
    function is r(x) = log density + x^2, nearly constant, so its degree K - 1 polynomial does
    not oscillate (it is kept within the nodes' range of r widened by a tenth of that range, a
    guard only). Beyond an end node r continues linearly with the slope of the quadratic through
    the three end nodes. The mass beyond the outer nodes is ~1e-5 of a node's, so the
    continuation hardly matters.
    """
    nodes, x_max, coefficients, low, high, ends = _interpolant_pieces(values)
    # Points last: every elementwise step runs along the long points axis (the M densities are few).
    coefficients = coefficients.transpose(0, 2, 1)[..., None]  # (S, M, K, 1)
    scaled = (np.clip(x, nodes[0], nodes[-1]) / x_max)[:, None, :]
    out = np.repeat(coefficients[:, :, -1], x.shape[1], axis=2)  # Horner, (S, M, P)
    for k in range(values.shape[1] - 2, -1, -1):
        out *= scaled
        out += coefficients[:, :, k]
    np.clip(out, low.transpose(0, 2, 1), high.transpose(0, 2, 1), out=out)
    for beyond, (edge, end, gradient) in zip((x < nodes[0], x > nodes[-1]), ends):
        if beyond.any():
            rows, points = np.nonzero(beyond)
            out[rows, :, points] = end[rows] + (x[rows, points] - edge)[:, None] * gradient[rows]
    out -= (x * x)[:, None, :]
    return out


def _log_density_at(x, counts, values):
    """``_log_density_interpolant`` for one density per row (M = 1) at scattered points: x (N,), the
    first ``counts[0]`` on row 0 of ``values`` (S, K), the next ``counts[1]`` on row 1, ... -> (N,).
    Element by element the same arithmetic."""
    nodes, x_max, coefficients, low, high, ends = _interpolant_pieces(values[..., None])
    scaled = np.clip(x, nodes[0], nodes[-1]) / x_max
    by_point = np.repeat(coefficients[..., 0].T, counts, axis=1)  # (K, N); repeat is faster than a gather
    out = by_point[-1].copy()
    for k in range(values.shape[1] - 2, -1, -1):
        out *= scaled
        out += by_point[k]
    np.clip(out, np.repeat(low[:, 0, 0], counts), np.repeat(high[:, 0, 0], counts), out=out)
    for beyond, (edge, end, gradient) in zip((x < nodes[0], x > nodes[-1]), ends):
        points = np.flatnonzero(beyond)
        if points.size:
            out[points] = np.repeat(end[:, 0], counts)[points] + (x[points] - edge) * np.repeat(gradient[:, 0], counts)[points]
    out -= x * x
    return out


def _fill_skipped(x, log_density, computed):
    """``log_density`` (S, K[, M]) with skipped outer nodes continued from the three nearest computed ones.

    The continuation is the quadratic through those three nodes of r = log density + x^2 (see
    ``_log_density_interpolant``). Skipped nodes are always the outermost: the Laplace weight
    that skips them falls with the Gauss-Hermite weight, monotone in |x|.
    """
    filled = np.array(log_density, dtype=float)
    partial = ~computed.all(axis=1) & (computed.sum(axis=1) >= 3)
    if not partial.any():
        return filled
    first = np.argmax(computed, axis=1)
    last = x.size - 1 - np.argmax(computed[:, ::-1], axis=1)
    square = (x * x).reshape((-1,) + (1,) * (filled.ndim - 2))
    for span in set(zip(first[partial].tolist(), last[partial].tolist())):
        members = np.flatnonzero(partial & (first == span[0]) & (last == span[1]))
        r = np.where(computed[members].reshape(computed[members].shape + (1,) * (filled.ndim - 2)),
                     filled[members] + square, 0.0)
        filled[members] = np.einsum("jk,sk...->sj...", _continuation(x.size, *span), r) - square
    return filled


@functools.lru_cache(maxsize=256)
def _continuation(n_nodes, first, last):
    """(K, K) matrix taking r at the computed nodes first..last to r at every node: the identity on
    them, the quadratic through the three nearest beyond them."""
    x, _ = gauss_hermite_rule(n_nodes)
    matrix = np.zeros((n_nodes, n_nodes))
    matrix[first:last + 1, first:last + 1] = np.eye(last + 1 - first)
    for targets, three in ((range(first), (first, first + 1, first + 2)),
                           (range(last + 1, n_nodes), (last - 2, last - 1, last))):
        for target in targets:
            for k in three:
                matrix[target, k] = np.prod([(x[target] - x[j]) / (x[k] - x[j]) for j in three if j != k])
    return matrix


def _grid_step(node_sd, node_mass, lower, upper):
    """Grid spacing on [lower, upper] resolving each node's SD by its mass (``GRID_RESOLUTION``)."""
    step = upper - lower
    for mass, points_per_sd in GRID_RESOLUTION:
        if (node_mass >= mass).any():
            step = min(step, float(node_sd[node_mass >= mass].min()) / points_per_sd)
    return max(step, (upper - lower) / (MAX_GRID - 1))


def credible_intervals(sigma, beta_centre, beta_scale, log_weight, log_integral, eta_mean, eta_var, y, n,
                       n_beta, probs):
    """Equal-tailed intervals of eta_i (per distinct group) and of beta for one replicate.

    Parameters
    ----------
    sigma, beta_centre, beta_scale : ndarray (S,)
        sigma nodes, and the centre mu_s and scale lambda_s of their beta rules.
    log_weight : ndarray (S, B)
        Normalised log posterior weights of the outer nodes (-inf where skipped).
    log_integral, eta_mean, eta_var : ndarray (S, B, U)
        log I_i (any per-group constant may be left out), E[eta_i | node, y_i], Var[eta_i | node, y_i].
    y, n : ndarray (U,)
        The distinct groups.
    n_beta : int
        Gauss-Hermite nodes of the beta rule.
    probs : sequence of float
        Lower and upper tail probabilities.

    Returns
    -------
    eta_quantiles : ndarray (len(probs), U)
    beta_quantiles : ndarray (len(probs),)
    """
    return block_quantiles([marginal_densities(sigma, beta_centre, beta_scale, log_weight, log_integral, eta_mean,
                                               eta_var, y, n, n_beta)], probs)[0]


def marginal_densities(sigma, beta_centre, beta_scale, log_weight, log_integral, eta_mean, eta_var, y, n, n_beta):
    """The marginal posterior densities of ``credible_intervals`` (same arguments but ``probs``) on
    their grids, before inversion: a ``MarginalDensities``."""
    x, log_w = gauss_hermite_rule(n_beta)
    weight = np.exp(log_weight)  # (S, B)
    sigma_mass = weight.sum(axis=1)
    computed = np.isfinite(log_weight)
    # Outer beta nodes of light sigma nodes are skipped (their Laplace weight is tiny); three
    # computed nodes or more let the interpolant be continued to them.
    complete = computed.sum(axis=1) >= 3
    root2_scale = np.sqrt(2.0) * beta_scale
    # log density of beta at each node, divided out of the Gauss-Hermite weight and Jacobian.
    with np.errstate(invalid="ignore"):
        log_beta_density = _fill_skipped(x, log_weight - log_w - np.log(root2_scale)[:, None], computed)

    beta_grid = _beta_density(x, log_beta_density, complete, sigma_mass, beta_centre, root2_scale)

    # Each group's posterior mean and SD of eta, and its narrowest SD given one sigma node.
    w3 = weight[..., None]
    first_moment = w3 * eta_mean
    second_moment = eta_mean**2
    second_moment += eta_var
    second_moment *= w3
    mean = first_moment.sum(axis=(0, 1))
    second = second_moment.sum(axis=(0, 1))
    sd = np.sqrt(np.maximum(second - mean**2, 1e-300))
    with np.errstate(invalid="ignore", divide="ignore"):
        node_mean = first_moment.sum(axis=1) / sigma_mass[:, None]
        node_var = second_moment.sum(axis=1) / sigma_mass[:, None] - node_mean**2
    lower = float((mean - GRID_REACH * sd).min())
    upper = float((mean + GRID_REACH * sd).max())
    step = _grid_step(np.sqrt(np.maximum(node_var.min(axis=1), 1e-300)), sigma_mass, lower, upper)
    size = int(np.ceil((upper - lower) / step)) + 1
    eta = lower + step * np.arange(size)

    # log of the leave-group-out weights W_sb / I_i, shifted per group so the largest is 0.
    with np.errstate(invalid="ignore"):
        loo = log_weight[..., None] - log_integral  # (S, B, U)
    loo = np.where(np.isfinite(log_weight)[..., None], loo, -np.inf)
    shift = loo.max(axis=(0, 1))
    loo -= shift
    mixture = np.zeros((size, y.size))
    wide = (sigma >= root2_scale) | ~complete
    used = sigma_mass >= NEGLIGIBLE_MASS
    members = np.flatnonzero(wide & used)
    if members.size:
        nodes_beta = (beta_centre[members, None] + root2_scale[members, None] * x).reshape(-1)
        node_sigma = np.repeat(sigma[members], x.size)
        kernel = np.multiply(eta[:, None], np.sqrt(0.5) / node_sigma)
        kernel -= nodes_beta * (np.sqrt(0.5) / node_sigma)
        np.square(kernel, out=kernel)
        np.negative(kernel, out=kernel)
        np.exp(kernel, out=kernel)  # exp(-z^2 / 2); the 1 / sigma goes with the weights
        mixture += kernel @ (np.exp(loo[members].reshape(-1, y.size)) / node_sigma[:, None])
    narrow = ~wide & used
    cheap = narrow & (sigma_mass < SMALL_MASS)
    exact = np.flatnonzero(narrow & ~cheap)
    if exact.size:
        # Each node's window of grid points, padded to the widest: one evaluation for all nodes.
        reach = NARROW_REACH_SCALES * beta_scale[exact] + NARROW_REACH_SIGMAS * sigma[exact]
        first = np.searchsorted(eta, beta_centre[exact] - reach)
        last = np.searchsorted(eta, beta_centre[exact] + reach)
        width = int((last - first).max())
        window = np.minimum(first[:, None] + np.arange(width), size - 1)  # (S, W)
        log_loo_density = _fill_skipped(x, log_beta_density[exact][..., None] - log_integral[exact] - shift,
                                        computed[exact])
        per_block = max(1, NARROW_BLOCK // (width * CONVOLUTION_NODES * y.size))  # bounds memory only
        for lo in range(0, exact.size, per_block):
            part = slice(lo, lo + per_block)
            nodes = exact[part]
            values = _narrow_nodes(eta[window[part]], sigma[nodes], beta_centre[nodes], root2_scale[nodes],
                                   log_loo_density[part])
            for k, (start, stop) in enumerate(zip(first[part], last[part])):  # windows may overlap
                mixture[start:stop] += values[k, :stop - start]
    softplus, _ = softplus_and_expit(eta)
    log_lik = y * eta[:, None] - n * softplus[:, None]
    top = log_lik.max(axis=0)
    density = mixture * np.exp(log_lik - top)
    # The density integrates to sum_s m_s times this (the shifts and the sqrt(2 pi) left out).
    scale = np.sqrt(2.0 * np.pi) * np.exp(-shift - top)
    if cheap.any():
        # Light narrow nodes: a normal with the node's exact mean and variance of eta_i.
        z = eta[:, None, None] - node_mean[cheap]
        z /= np.sqrt(np.maximum(node_var[cheap], 1e-300))
        normal = np.multiply(z, -0.5)
        normal *= z
        np.exp(normal, out=normal)
        normal /= np.sqrt(2.0 * np.pi * np.maximum(node_var[cheap], 1e-300))
        density += scale * np.einsum("s,esu->eu", sigma_mass[cheap], normal)
    beta_start, beta_step, beta_density, beta_total = beta_grid
    return MarginalDensities(lower, step, density, scale * sigma_mass[used].sum(),
                             beta_start, beta_step, beta_density, beta_total)


@dataclass(frozen=True)
class MarginalDensities:
    """One replicate's marginal posterior densities of each group's eta (columns of ``eta_density``,
    on eta_start + eta_step * arange) and of beta (``beta_density`` on its own grid), unnormalised,
    with each one's exact total mass (one total for all groups' columns)."""

    eta_start: float
    eta_step: float
    eta_density: np.ndarray  # (E, U)
    eta_total: float
    beta_start: float
    beta_step: float
    beta_density: np.ndarray  # (F,)
    beta_total: float


def _narrow_nodes(eta, sigma, centre, root2_scale, log_loo_density):
    """int h_is(beta) N(eta; beta, sigma_s^2) d beta at grid points ``eta`` (S, E) of narrow sigma nodes: (S, E, U).

    h_is is the interpolant of node s's leave-group-out log density of beta in x; the integral is
    Gauss-Hermite in beta centred at the mode of N(eta; beta, sigma^2) N(beta; mu, lambda^2) and
    scaled by its SD, so it is exact for a normal h_is whatever sigma / lambda.
    """
    z_nodes, z_log_w = gauss_hermite_rule(CONVOLUTION_NODES)
    lam, sig, mu, scale = (v[:, None] for v in (root2_scale / np.sqrt(2.0), sigma, centre, root2_scale))
    precision = 1.0 / lam**2 + 1.0 / sig**2
    product_sd = 1.0 / np.sqrt(precision)  # (S, 1)
    product_mean = (mu / lam**2 + eta / sig**2) / precision  # (S, E)
    beta = product_mean[..., None] + (np.sqrt(2.0) * product_sd)[..., None] * z_nodes  # (S, E, Z)
    x = ((beta - mu[..., None]) / scale[..., None]).reshape(sigma.size, -1)
    values = _log_density_interpolant(x, log_loo_density).reshape((sigma.size, -1) + beta.shape[1:])  # (S, U, E, Z)
    z = (eta[..., None] - beta) / sig[..., None]
    log_factor = z_log_w - 0.5 * z * z + np.log(np.sqrt(2.0) * product_sd / sig)[..., None]
    values += log_factor[:, None]
    return np.exp(values, out=values).sum(axis=3).transpose(0, 2, 1)


def _beta_density(x, log_beta_density, complete, sigma_mass, centre, root2_scale):
    """Marginal posterior density of beta, the sum over sigma nodes of the interpolated densities,
    on a uniform grid: (start, step, density, exact total mass)."""
    live = complete & (sigma_mass >= NEGLIGIBLE_MASS)
    # The grid spans the nodes above RANGE_MASS; lighter ones (together < 1e-5 of the mass) may
    # reach beyond it, which the exact totals in grid_quantiles absorb.
    spans = live & (sigma_mass >= RANGE_MASS)
    lower = float((centre - 5.0 * root2_scale)[spans].min())
    upper = float((centre + 5.0 * root2_scale)[spans].max())
    step = _grid_step(root2_scale[live] / np.sqrt(2.0), sigma_mass[live], lower, upper)
    size = int(np.ceil((upper - lower) / step)) + 1
    beta = lower + step * np.arange(size)
    t = (beta - centre[live, None]) / root2_scale[live, None]  # (S, F)
    # Each node's density is taken as zero beyond |t| = 5, so only the points within are evaluated;
    # bincount adds each point's terms in node order, as a sum down the (S, F) table would.
    inside = np.abs(t) <= 5.0
    points = np.nonzero(inside)[1]
    values = _log_density_at(t[inside], inside.sum(axis=1), log_beta_density[live])
    density = np.bincount(points, weights=np.exp(values), minlength=size)
    return lower, step, density, sigma_mass[live].sum()
