"""Exact hierarchical-Bayes posterior of the binomial random-intercept GLMM, by quadrature.

Model (the "flat priors" model of the seed thread, as in ``jags_reference.json``)::

    y_i ~ Binomial(n_i, expit(beta + b_i)),   b_i ~ N(0, sigma^2),
    beta ~ flat or N(m, s^2),   sigma ~ Uniform(0, upper) | half-Cauchy(scale) | half-normal(scale).

The posterior is integrated deterministically (no MCMC noise), per replicate, by a nested rule:

* sigma: composite Gauss-Legendre. One panel in sigma on [0, sigma_L] takes the region where the
  density of log sigma has an exponential tail (the likelihood is flat as sigma -> 0, so that
  density falls only like sigma); three panels in log sigma take the left tail, the bulk
  (mode -+ 3.5 SDs) and the right tail. The ends and the bulk come from a scan of the Laplace
  approximation to the marginal posterior of log sigma on a fixed grid, so the rule adapts to each
  dataset but never to the other replicates in the batch. A Uniform(0, upper) prior ends the last
  panel exactly at ``upper``.
* beta given sigma: Gauss-Hermite centred at the joint mode of (beta, b) given sigma (PIRLS) and
  scaled by its profile curvature (Naylor & Smith 1982, Appl. Statist. 31(3), 214-225; the nested
  grid of Rue, Martino & Chopin 2009, JRSS-B 71(2), section 3.1). Mode and curvature are
  interpolated in log sigma from the scan: they only place the rule.
* each b_i given (beta, sigma): for 1/16 <= sigma <= 8, the trapezoid rule on eta grids shared by
  all groups and outer nodes of a band of sigma, one matrix product per band (``_bayes_grid``);
  adaptive Gauss-Hermite at the conditional mode below (3 to 11 nodes by the smoothness
  sigma^2 n / 4), and Gauss-Legendre on eta over the likelihood's window above
  (``_bayes_quadrature``). Outer nodes whose Laplace weight is below e^-25 of the largest are
  skipped.

Posterior means and SDs of beta, sigma and p_i = expit(beta + b_i) mix exact conditional moments
over the outer nodes. The 95 % credible intervals are the equal-tailed intervals of the exact
marginal posteriors (``_bayes_intervals``): for eta_i = beta + b_i, the mixture over the outer
nodes of the group's exact conditional density L_i(eta) N(eta; beta, sigma^2) / I_i (no normal
shape is assumed), with beta continued between its nodes by the rule's own interpolant where
sigma is narrower than the beta nodes are apart; for beta, the sum over sigma nodes of that
interpolant. Against 4 x 250,000 JAGS draws (``tests/data/jags_interval_reference.json``: the
seed design, I = 5, sd = 0.15, unbalanced and rare-event datasets with groups at and next to
y = 0 and y = n) every end is within 4 MCSE + 2e-4: worst |z| 3.8 over the 360 p ends and 2.5
over the 14 beta ends, worst difference 1.4e-3 on the p scale (where the MCSE is 4e-4). The
independent dense-grid posterior of ``tests/bayes_brute_force.py``, free of Monte Carlo error,
agrees to < 2e-5 on every p end and < 5e-5 on beta's (logit scale) for I >= 30.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, logsumexp

from glmmshrink._bayes_grid import sorted_grid_integrals, uses_grid
from glmmshrink._bayes_intervals import block_quantiles, marginal_densities
from glmmshrink._bayes_quadrature import beta_given_sigma, gauss_legendre, group_integrals, interpolate
from glmmshrink._objective import gauss_hermite_rule, ordered_sum
from glmmshrink._validate import as_counts
from glmmshrink._groups import distinct_groups


@dataclass(frozen=True)
class QuadratureRule:
    """Node counts of the nested rule.

    The defaults keep posterior means within ~3e-6 and SDs within ~1.5e-5 of a rule with 2-4
    times the nodes, on the JAGS reference datasets and simulated datasets of the study's designs
    (J = 5 to 100, sd = 0 to 2, unbalanced); typically 1e-7. On 24 replicates of every cell of
    the default study the largest differences from such a rule are 2e-6 (sigma's mean), 1e-6
    (p's means) and 6e-6 (the p ends). The bulk panel needs its 24 nodes where the posterior of
    log sigma is wide (sd <= 0.5, few trials): with 18, sigma's mean moved by 3e-5 and p ends by
    2e-4 there (``benchmarks/bench_bayes_rules.py`` compares coarser rules). The eta grids have
    their own spacing (``_bayes_grid.GRID_STEP``), good to ~1e-8 in each log integral. Nearly
    separated data under a flat beta prior (all groups but one at y = 0) have heavy-tailed beta
    posteriors that this rule does not resolve.
    """

    sigma_near_zero: int = 5  # Gauss-Legendre nodes in sigma on [0, sigma_L]
    log_sigma_tail: int = 10  # Gauss-Legendre nodes in log sigma on each tail panel
    log_sigma_bulk: int = 24  # ... on the bulk panel, mode -+ bulk_halfwidth SDs
    bulk_halfwidth: float = 3.5
    beta: int = 9  # Gauss-Hermite nodes in beta for each sigma node
    group: int = 11  # most adaptive Gauss-Hermite nodes per group (sigma < 1/16 and fallbacks)
    left_drop: float = 14.0  # log-density drop that ends the log-sigma panels on the left
    right_drop: float = 25.0  # ... and on the right
    prune_drop: float = 25.0  # skip outer nodes this far (log scale) below the peak, by Laplace
    chunk: int = 32  # replicates per block (memory only; results do not depend on it)


DEFAULT_RULE = QuadratureRule()
SCAN_STEP = 0.5
SCAN_LOWEST = -9.0  # log sigma; below it everything is in the near-zero panel
SCAN_HIGHEST = 15.0
CREDIBLE_MASS = 0.95


@dataclass(frozen=True)
class BayesPosterior:
    """Posterior summaries from ``posterior_glmm``; (R,) and (R, G) arrays, or () and (G,) for one dataset.

    ``beta_lower``/``beta_upper`` and ``p_lower``/``p_upper`` are equal-tailed 95 % credible
    intervals of the exact marginal posteriors. ``p_*`` are NaN for padding groups (n == 0);
    every field is NaN where ``improper`` is True.
    """

    beta_mean: np.ndarray
    beta_sd: np.ndarray
    beta_lower: np.ndarray
    beta_upper: np.ndarray
    sigma_mean: np.ndarray
    sigma_sd: np.ndarray
    p_mean: np.ndarray
    p_sd: np.ndarray
    p_lower: np.ndarray
    p_upper: np.ndarray
    improper: np.ndarray
    beta_prior: object = field(default="flat")
    sigma_prior: object = field(default=("uniform", 100.0))

    def __repr__(self):
        head = f"BayesPosterior(beta ~ {_describe(self.beta_prior)}, sigma ~ {_describe(self.sigma_prior)})"
        if np.ndim(self.beta_mean) == 0:
            if self.improper:
                return head + "\n  improper posterior (flat beta prior, all y == 0 or all y == n)"
            lines = [
                head,
                f"  beta : mean {self.beta_mean: .4f}  sd {self.beta_sd:.4f}",
                f"  sigma: mean {self.sigma_mean: .4f}  sd {self.sigma_sd:.4f}",
                f"  p    : {np.size(self.p_mean)} groups, posterior means in "
                f"[{np.nanmin(self.p_mean):.3f}, {np.nanmax(self.p_mean):.3f}] "
                f"with 95% credible intervals",
            ]
            return "\n".join(lines)
        n_reps, n_groups = np.shape(self.p_mean)
        proper = ~np.asarray(self.improper)
        averages = (
            f"; average beta_mean {np.mean(self.beta_mean[proper]):.4f}, "
            f"average sigma_mean {np.mean(self.sigma_mean[proper]):.4f}" if proper.any() else ""
        )
        return f"{head}\n  {n_reps} replicates x {n_groups} groups, {int(np.sum(self.improper))} improper{averages}"



def _describe(prior):
    return prior if isinstance(prior, str) else f"{prior[0]}{tuple(prior[1:])}"


def _positive_finite(value, what):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be positive and finite, got {value!r}")
    return value


def _check_beta_prior(prior):
    """Return (mean, precision) of the beta prior; precision 0 for flat."""
    if isinstance(prior, str):
        if prior != "flat":
            raise ValueError(f"beta_prior must be 'flat' or ('normal', mean, sd), got {prior!r}")
        return 0.0, 0.0
    if not isinstance(prior, (tuple, list)) or len(prior) != 3 or prior[0] != "normal":
        raise ValueError(f"beta_prior must be 'flat' or ('normal', mean, sd), got {prior!r}")
    try:
        mean = float(prior[1])
    except (TypeError, ValueError):
        raise ValueError(f"beta_prior mean must be a number, got {prior[1]!r}") from None
    if not np.isfinite(mean):
        raise ValueError(f"beta_prior mean must be finite, got {prior[1]!r}")
    sd = _positive_finite(prior[2], "beta_prior sd")
    return mean, 1.0 / sd**2


SIGMA_PRIORS = ("uniform", "half_cauchy", "half_normal")


def _check_sigma_prior(prior):
    """Return (kind, parameter) of the sigma prior."""
    if (
        not isinstance(prior, (tuple, list)) or len(prior) != 2 or not isinstance(prior[0], str)
        or prior[0] not in SIGMA_PRIORS
    ):
        raise ValueError(
            "sigma_prior must be ('uniform', upper), ('half_cauchy', scale) or "
            f"('half_normal', scale), got {prior!r}"
        )
    name = "upper" if prior[0] == "uniform" else "scale"
    return prior[0], _positive_finite(prior[1], f"sigma_prior {name}")


def _log_sigma_prior(sigma, kind, parameter):
    """Log prior density of sigma up to a constant (the normalising constants cancel)."""
    if kind == "uniform":
        return np.zeros_like(sigma)
    ratio = sigma / parameter
    if kind == "half_cauchy":
        return -np.log1p(ratio * ratio)
    return -0.5 * ratio * ratio


def _sigma_rule(scan_log_sigma, scan_log_density, rule):
    """Composite sigma nodes and log dsigma-weights per replicate from the log-sigma scan (C, T).

    Panels: Gauss-Legendre in sigma on [0, sigma_L]; in log sigma on the left tail
    [log sigma_L, bulk_lo], the bulk [bulk_lo, bulk_hi] = mode -+ ``bulk_halfwidth`` SDs of the
    scan's parabola at its peak, and the right tail [bulk_hi, log sigma_U]. sigma_L and sigma_U are
    where the scanned log density has dropped by ``left_drop`` and ``right_drop``. An empty tail
    panel gets zero weights.
    """
    best = np.argmax(scan_log_density, axis=-1)
    top = np.take_along_axis(scan_log_density, best[:, None], axis=-1)
    positions = np.arange(scan_log_sigma.size)
    left_ok = (positions < best[:, None]) & (scan_log_density < top - rule.left_drop)
    right_ok = (positions > best[:, None]) & (scan_log_density < top - rule.right_drop)
    left_index = np.where(left_ok.any(axis=-1), np.where(left_ok, positions, -1).max(axis=-1), 0)
    last = scan_log_sigma.size - 1
    right_index = np.where(right_ok.any(axis=-1), np.where(right_ok, positions, last + 1).min(axis=-1), last)
    log_lower, log_upper = scan_log_sigma[left_index], scan_log_sigma[right_index]

    # Parabola through the peak and its neighbours: its vertex and curvature place the bulk panel.
    inner = np.clip(best, 1, last - 1)
    below, at, above = (np.take_along_axis(scan_log_density, (inner + k)[:, None], axis=-1)[:, 0] for k in (-1, 0, 1))
    curvature = np.minimum(below - 2.0 * at + above, -1e-3)
    vertex = scan_log_sigma[inner] + SCAN_STEP * np.clip(0.5 * (below - above) / curvature, -1.0, 1.0)
    sd = np.clip(SCAN_STEP / np.sqrt(-curvature), 0.02, 2.0)
    bulk_lo = np.clip(vertex - rule.bulk_halfwidth * sd, log_lower, log_upper)
    bulk_hi = np.clip(vertex + rule.bulk_halfwidth * sd, bulk_lo, log_upper)

    near_zero, near_zero_w = gauss_legendre(rule.sigma_near_zero, np.zeros_like(log_lower), np.exp(log_lower))
    panels = [gauss_legendre(rule.log_sigma_tail, log_lower, bulk_lo),
              gauss_legendre(rule.log_sigma_bulk, bulk_lo, bulk_hi),
              gauss_legendre(rule.log_sigma_tail, bulk_hi, log_upper)]
    log_sigma_nodes = np.concatenate([nodes for nodes, _ in panels], axis=-1)
    sigma = np.concatenate([near_zero, np.exp(log_sigma_nodes)], axis=-1)
    with np.errstate(divide="ignore"):  # empty panels have zero weight
        # dsigma = sigma dlog(sigma) on the log panels.
        log_weight = np.concatenate(
            [np.log(near_zero_w), np.log(np.concatenate([w for _, w in panels], axis=-1)) + log_sigma_nodes],
            axis=-1,
        )
    return sigma, log_weight


def _posterior_block(y, n, count, beta_prior, sigma_prior, rule):
    """Posterior summaries for a block of replicates; y, n, count are (C, U) distinct groups."""
    prior_mean, prior_precision = beta_prior
    kind, parameter = sigma_prior
    highest = min(SCAN_HIGHEST, np.log(parameter)) if kind == "uniform" else SCAN_HIGHEST
    scan = np.append(np.arange(min(SCAN_LOWEST, highest - 10.0), highest, SCAN_STEP), highest)
    n_reps = y.shape[0]
    ys, ns, cs = y[:, None, :], n[:, None, :], count[:, None, :]

    # Laplace scan of the marginal posterior of log sigma: its mode and tails place the sigma rule.
    total_y, total_n = (count * y).sum(-1), (count * n).sum(-1)
    pooled = np.log((total_y + 0.5) / (total_n - total_y + 0.5))
    scan_sigma = np.broadcast_to(np.exp(scan)[None, :, None], (n_reps, scan.size, 1))
    beta0 = np.broadcast_to(pooled[:, None, None], scan_sigma.shape)
    beta_hat, _, info, laplace = beta_given_sigma(scan_sigma, ys, ns, cs, prior_mean, prior_precision, beta0, None)
    scan_density = (laplace - 0.5 * np.log(info) - 0.5 * prior_precision * (beta_hat - prior_mean) ** 2)[..., 0]
    scan_density += _log_sigma_prior(np.exp(scan), kind, parameter) + scan  # + log Jacobian
    sigma, log_sigma_weight = _sigma_rule(scan, scan_density, rule)
    log_sigma_weight = log_sigma_weight + _log_sigma_prior(sigma, kind, parameter)

    # beta | sigma: Gauss-Hermite at the PIRLS mode, scaled by the profile curvature, both
    # interpolated from the scan (smooth in log sigma; they only place the rule).
    beta_centre, log_info, laplace = interpolate(
        np.log(sigma), scan, beta_hat[..., 0], np.log(info[..., 0]), laplace[..., 0]
    )
    beta_scale = np.exp(-0.5 * log_info)[..., None]  # (C, S, 1)
    laplace = laplace[..., None]
    x, log_w = gauss_hermite_rule(rule.beta)
    beta = beta_centre[..., None] + np.sqrt(2.0) * beta_scale * x  # (C, S, B)
    log_weight = (log_sigma_weight[..., None] + np.log(np.sqrt(2.0) * beta_scale) + log_w
                  - 0.5 * prior_precision * (beta - prior_mean) ** 2)

    # Each group's integral at every (sigma, beta) node: shared eta grids for most nodes,
    # adaptive Gauss-Hermite for sigma near 0 and the eta window for very large sigma.
    sig4 = sigma[:, :, None, None]
    # Nodes whose Laplace-approximate weight is below e^-prune_drop of the largest are skipped:
    # together they carry < 1e-10 of the mass, and about a third of the nodes are skipped.
    laplace_weight = log_weight + laplace - x * x
    keep = laplace_weight >= laplace_weight.max(axis=(1, 2), keepdims=True) - rule.prune_drop
    on_grid = keep & uses_grid(sigma)[:, :, None]
    groups = group_integrals(
        beta[..., None], sig4, y[:, None, None, :], n[:, None, None, :], rule.group, None,
        (keep & ~on_grid)[..., None] & (n[:, None, None, :] > 0),
    )
    grid_sigma = np.broadcast_to(sigma[:, :, None], beta.shape)
    for r in range(n_reps):
        nodes = np.flatnonzero(on_grid[r])
        real = int(np.count_nonzero(n[r]))
        if nodes.size == 0:
            continue
        order, values = sorted_grid_integrals(beta[r].reshape(-1)[nodes], grid_sigma[r].reshape(-1)[nodes],
                                              y[r, :real], n[r, :real])
        nodes = nodes[order]
        for target, value in zip(
            (groups.log_integral, groups.p_mean, groups.p_second_moment, groups.eta_mean, groups.eta_var), values
        ):
            target[r].reshape(-1, target.shape[-1])[nodes, :real] = value
    # Integrals the grid cannot resolve (tiny against the group's likelihood) take the other rules.
    redo = on_grid[..., None] & (n[:, None, None, :] > 0) & np.isnan(groups.log_integral)
    if redo.any():
        # Only those elements, gathered flat (group_integrals works element by element).
        shape = redo.shape
        again = group_integrals(*(np.broadcast_to(a, shape)[redo] for a in (beta[..., None], sig4, y[:, None, None, :],
                                                                           n[:, None, None, :])), rule.group)
        for target, value in zip(
            (groups.log_integral, groups.p_mean, groups.p_second_moment, groups.eta_mean, groups.eta_var),
            (again.log_integral, again.p_mean, again.p_second_moment, again.eta_mean, again.eta_var),
        ):
            target[redo] = value
    log_weight = np.where(
        keep, log_weight + ordered_sum(count[:, None, None, :] * groups.log_integral, axis=-1), -np.inf
    )

    flat = (n_reps, -1)
    log_weight = log_weight.reshape(flat)
    weight = np.exp(log_weight - logsumexp(log_weight, axis=-1, keepdims=True))
    beta = beta.reshape(flat)
    sigma_nodes = np.broadcast_to(sigma[:, :, None], (n_reps, sigma.shape[1], rule.beta)).reshape(flat)

    def moments(values):
        mean = (weight * values).sum(-1)
        return mean, np.sqrt(np.maximum((weight * (values - mean[:, None]) ** 2).sum(-1), 0.0))

    beta_mean, beta_sd = moments(beta)
    sigma_mean, sigma_sd = moments(sigma_nodes)

    def per_group(values):  # (C, S, B, U) -> (C, U, K)
        return np.moveaxis(values.reshape(n_reps, -1, values.shape[-1]), -1, 1)

    w_g = weight[:, None, :]
    p_mean = (w_g * per_group(groups.p_mean)).sum(-1)
    p_var = (w_g * per_group(groups.p_second_moment)).sum(-1) - p_mean**2

    # Credible intervals from the exact marginal posteriors of eta_i and beta (``_bayes_intervals``).
    tail = 0.5 * (1.0 - CREDIBLE_MASS)
    node_log_weight = (log_weight - logsumexp(log_weight, axis=-1, keepdims=True)).reshape(n_reps, -1, rule.beta)
    densities, reals = [], []
    for r in range(n_reps):
        real = int(np.count_nonzero(n[r]))
        reals.append(real)
        densities.append(marginal_densities(
            sigma[r], beta_centre[r], beta_scale[r, :, 0], node_log_weight[r],
            groups.log_integral[r, ..., :real], groups.eta_mean[r, ..., :real], groups.eta_var[r, ..., :real],
            y[r, :real], n[r, :real], rule.beta,
        ))
    eta_bounds = np.full((2,) + y.shape, np.nan)
    beta_bounds = np.empty((2, n_reps))
    for r, (real, (eta_q, beta_q)) in enumerate(zip(reals, block_quantiles(densities, (tail, 1.0 - tail)))):
        eta_bounds[:, r, :real], beta_bounds[:, r] = eta_q, beta_q
    p_lower, p_upper = expit(eta_bounds)
    return (beta_mean, beta_sd, beta_bounds[0], beta_bounds[1], sigma_mean, sigma_sd, p_mean,
            np.sqrt(np.maximum(p_var, 0.0)), p_lower, p_upper)


def _posterior_glmm(y, n, beta_prior, sigma_prior, rule):
    """``posterior_glmm`` with an explicit ``QuadratureRule`` (for refinement checks)."""
    prior_b = _check_beta_prior(beta_prior)
    prior_s = _check_sigma_prior(sigma_prior)
    y, n, was_1d = as_counts(y, n)
    n_reps, n_groups = y.shape
    real = n > 0
    total_y, total_n = (y * real).sum(1), n.sum(1)
    improper = (prior_b[1] == 0.0) & ((total_y == 0) | (total_y == total_n))
    # An improper replicate is swapped for a harmless stand-in so it cannot disturb the arrays.
    y_safe, n_safe = y.copy(), n.copy()
    y_safe[improper], n_safe[improper] = 0, 0
    y_safe[improper, 0], n_safe[improper, 0] = 1, 2

    groups = distinct_groups(y_safe, n_safe)
    dy, dn, dc = groups.y.T, groups.n.T, groups.count.T  # (R, U)
    scalars = ("beta_mean", "beta_sd", "beta_lower", "beta_upper", "sigma_mean", "sigma_sd")
    out = {name: np.empty(n_reps) for name in scalars}
    rows = {name: np.empty(dy.shape) for name in ("p_mean", "p_sd", "p_lower", "p_upper")}
    for start in range(0, n_reps, rule.chunk):
        block = slice(start, start + rule.chunk)
        result = _posterior_block(dy[block], dn[block], dc[block], prior_b, prior_s, rule)
        for name, value in zip(list(out) + list(rows), result):
            (out if name in out else rows)[name][block] = value
    padding = groups.row_of_group < 0
    index = np.maximum(groups.row_of_group, 0)
    fields = {name: value for name, value in out.items()}
    for name, value in rows.items():
        fields[name] = np.where(padding, np.nan, np.take_along_axis(value, index, axis=1))
    for name in fields:
        fields[name][improper] = np.nan
    fields["improper"] = improper
    if was_1d:
        fields = {name: value[0] for name, value in fields.items()}
    return BayesPosterior(**fields, beta_prior=beta_prior, sigma_prior=tuple(sigma_prior))


def posterior_glmm(y, n, beta_prior="flat", sigma_prior=("uniform", 100.0)):
    """Exact posterior of the binomial random-intercept GLMM by deterministic quadrature.

    Parameters
    ----------
    y, n : array_like of int, shape (G,) or (R, G)
        Successes and trials per group; ``n == 0`` marks padding groups.
    beta_prior : "flat" or ("normal", mean, sd)
        Prior of the intercept. Flat is the JAGS reference's N(0, 1000^2) in the limit.
    sigma_prior : ("uniform", upper), ("half_cauchy", scale) or ("half_normal", scale)
        Prior of the random-intercept SD. Uniform(0, upper) truncates the posterior at ``upper``.

    Returns
    -------
    BayesPosterior
        Posterior mean and SD of beta and sigma and the equal-tailed 95 % credible interval of beta
        (beta_lower, beta_upper) (R,); per group p_mean = E[expit(beta + b_i) | y],
        p_sd and the equal-tailed 95 % credible interval (p_lower, p_upper) (R, G); ``improper``
        (R,). For (G,) input the leading dimension is dropped.

    Notes
    -----
    With a flat beta prior, a dataset whose trials all failed (or all succeeded) has an improper
    posterior: it is returned with NaN summaries and ``improper=True`` and never raises. A
    replicate's result does not depend on the other replicates in the call. Input errors raise
    ``ValueError``.
    """
    return _posterior_glmm(y, n, beta_prior, sigma_prior, DEFAULT_RULE)
