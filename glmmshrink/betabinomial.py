"""Maximum-likelihood beta-binomial fit: the conjugate empirical-Bayes competitor of the GLMM.

Model (Skellam 1948, JRSS-B 10, 257-261; Griffiths 1973, Biometrics 29, 637-648)::

    y_i | p_i ~ Binomial(n_i, p_i),   p_i ~ Beta(a, b),
    mu = a / (a + b),   rho = 1 / (a + b + 1)  (the intra-class correlation).

With a = mu (1 - rho) / rho and b = (1 - mu)(1 - rho) / rho, the log-likelihood of group i is
(Griffiths 1973; the likelihood VGAM's ``betabinomial`` family maximises)::

    log C(n_i, y_i) + sum_{k < y_i} log(mu (1 - rho) + k rho)
                    + sum_{k < n_i - y_i} log((1 - mu)(1 - rho) + k rho)
                    - sum_{k < n_i} log((1 - rho) + k rho).

The finite sums stay exact at rho = 0, where the model is Binomial(n_i, mu). Summed over groups they
need only, per k, the numbers of groups with y_i > k, n_i - y_i > k and n_i > k, so one replicate
costs O(max n_i) per evaluation whatever the number of groups. Sums over k run in fixed order, so a
replicate's result is bit-identical alone or in any batch.

The fit is a safeguarded Newton ascent on (logit mu, logit rho) with exact derivatives, separately
per replicate. The boundary rho = 0 is decided by the score in rho at (mu = sum y / sum n, rho = 0),
Tarone's (1979, Biometrika 66, 585-590) overdispersion score: when it is not positive, rho = 0
and the binomial MLE mu are a local maximum and are returned exactly; VGAM, on logit(rho), can
only approach them. Group estimates are the posterior means p_i = (y_i + a) / (n_i + a + b),
which equal mu at rho = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from glmmshrink._objective import ordered_sum
from glmmshrink._result import mean_sd_text
from glmmshrink._validate import as_counts

STEP_TOL = 1e-10  # max |Newton step| on (logit mu, logit rho) at the optimum
GAIN_TOL = 1e-15  # relative predicted gain of a Newton step at the optimum
LOCAL_STEP = 1e-3  # Newton steps this short, at negative-definite curvature, skip the line search
MAX_ITER = 200
MAX_BACKTRACKS = 60
RHO_START_RANGE = (0.005, 0.9)  # the moment estimate of rho, clipped, starts the ascent
SCORE_TOL = 1e-10  # relative: a score at rho = 0 below this is rounding, i.e. zero
BLOCK_CELLS = 1 << 17  # (max n) x replicates per block: working arrays stay in cache


@dataclass(frozen=True, repr=False)
class BetaBinomialFit:
    """Maximum-likelihood beta-binomial estimates for R datasets.

    Arrays have a leading replicate dimension R, dropped when one dataset was fitted.

    Attributes
    ----------
    mu, rho : ndarray, shape (R,)
        Mean of the Beta distribution of the p_i and intra-class correlation 1 / (a + b + 1);
        rho is 0 exactly at a boundary fit.
    loglik : ndarray, shape (R,)
        Log-likelihood including sum log C(n_i, y_i), as VGAM's ``logLik``.
    p_hat : ndarray, shape (R, G)
        Posterior means (y_i + a) / (n_i + a + b); mu for every group when rho = 0; NaN for padding.
    converged, boundary, separated : ndarray of bool, shape (R,)
        Optimiser success; rho = 0 (no overdispersion); all trials failed or all succeeded.
    n_iter : ndarray of int, shape (R,)
        Newton iterations.
    n_groups : ndarray of int, shape (R,)
        Non-padding groups per dataset.
    """

    mu: np.ndarray
    rho: np.ndarray
    loglik: np.ndarray
    p_hat: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    separated: np.ndarray
    n_iter: np.ndarray
    n_groups: np.ndarray

    @property
    def a(self):
        """First Beta shape, mu (1 - rho) / rho (inf at rho = 0)."""
        with np.errstate(divide="ignore"):
            return self.mu * (1.0 - self.rho) / self.rho

    @property
    def b(self):
        """Second Beta shape, (1 - mu)(1 - rho) / rho (inf at rho = 0)."""
        with np.errstate(divide="ignore"):
            return (1.0 - self.mu) * (1.0 - self.rho) / self.rho

    def __repr__(self) -> str:
        header = "Beta-binomial model fit by maximum likelihood [glmmshrink]\n"
        if np.ndim(self.mu) == 0:
            note = ("separation: all trials failed or all succeeded" if self.separated
                    else "boundary: rho = 0, no overdispersion" if self.boundary
                    else "converged" if self.converged else "failed to converge")
            return header + (
                f"   logLik {self.loglik:.4f}   iterations {self.n_iter}   groups {self.n_groups}\n"
                f"   mu  {self.mu:.4f}\n   rho {self.rho:.4f}\nNote: {note}"
            )
        fitted = ~self.separated

        def mean_sd(values):
            return mean_sd_text(values, fitted)

        return header + (
            f"{self.mu.size} datasets: {int(self.converged.sum())} converged, "
            f"{int(self.boundary.sum())} at rho = 0, {int(self.separated.sum())} separated\n"
            f"  mu  {mean_sd(self.mu)}\n  rho {mean_sd(self.rho)}"
        )


def _exceedance_counts(values, depth):
    """Per replicate, the number of groups with value > k, k = 0 .. depth - 1; shape (depth, R)."""
    n_reps = values.shape[0]
    flat = values.T.reshape(-1) * n_reps + np.tile(np.arange(n_reps), values.shape[1])
    tally = np.bincount(flat, minlength=(depth + 1) * n_reps)[: (depth + 1) * n_reps]
    tally = tally.reshape(depth + 1, n_reps)
    above = np.cumsum(tally[::-1], axis=0)[::-1]  # groups with value >= k, exact integers
    return above[1:].astype(float)


def _loglik(theta, counts, k, derivatives=True):
    """Log-likelihood without log C, with gradient and Hessian in (logit mu, logit rho).

    ``counts`` stacks the exceedance counts (A, B, C) of y, n - y and n, each (depth, R).
    """
    mu, one_minus_mu = expit(theta[0]), expit(-theta[0])
    rho, one_minus_rho = expit(theta[1]), expit(-theta[1])
    A, B, C = counts
    u = mu * one_minus_rho + k * rho
    v = one_minus_mu * one_minus_rho + k * rho
    t = one_minus_rho + k * rho
    terms = [A * np.log(u) + B * np.log(v) - C * np.log(t)]
    if derivatives:
        du, dv, dt = k - mu, k - one_minus_mu, k - 1.0  # d/drho of u, v, t
        A_u, B_v = A / u, B / v
        A_uu, B_vv = A_u / u, B_v / v
        terms += [
            A_u - B_v,  # d/dmu, over (1 - rho)
            A_u * du + B_v * dv - C * dt / t,  # d/drho
            A_uu + B_vv,  # -d2/dmu2, over (1 - rho)^2
            -A_u - one_minus_rho * A_uu * du + B_v + one_minus_rho * B_vv * dv,  # d2/dmu drho
            -A_uu * du * du - B_vv * dv * dv + C * dt * dt / (t * t),  # d2/drho2
        ]
    sums = ordered_sum(np.stack(terms, axis=1), axis=0)
    value = sums[0]
    if not derivatives:
        return value, None, None
    l_mu, l_rho = one_minus_rho * sums[1], sums[2]
    l_mumu, l_murho, l_rhorho = -one_minus_rho**2 * sums[3], sums[4], sums[5]
    jac_mu, jac_rho = mu * one_minus_mu, rho * one_minus_rho
    grad = np.stack([l_mu * jac_mu, l_rho * jac_rho])
    hess = np.stack([
        l_mumu * jac_mu**2 + l_mu * jac_mu * (one_minus_mu - mu),
        l_murho * jac_mu * jac_rho,
        l_rhorho * jac_rho**2 + l_rho * jac_rho * (one_minus_rho - rho),
    ])
    return value, grad, hess


def _ascent_direction(grad, hess):
    """Newton direction -H^{-1} g with H shifted to be negative definite, each component capped."""
    h11, h12, h22 = hess
    half_trace = 0.5 * (h11 + h22)
    top_eigen = half_trace + np.hypot(0.5 * (h11 - h22), h12)
    scale = np.abs(h11) + np.abs(h22)
    shift = np.where(top_eigen >= -1e-8 * scale, top_eigen + 0.1 * scale + 1e-12, 0.0)
    a, c = h11 - shift, h22 - shift
    det = a * c - h12 * h12
    step = np.stack([-(c * grad[0] - h12 * grad[1]) / det, -(a * grad[1] - h12 * grad[0]) / det])
    largest = np.max(np.abs(step), axis=0)
    return step * np.minimum(1.0, 3.0 / np.maximum(largest, 1e-300)), shift == 0.0


def _moment_rho(y, n, total_y, total_n):
    """Moment estimate of rho from Var(y_i) = n_i mu (1 - mu)(1 + (n_i - 1) rho), summed over groups
    with unit weights (cf. Kleinman 1973, JASA 68, 46-54); NaN when every n_i = 1."""
    mu = total_y / total_n
    squares = ordered_sum((y - n * mu[:, None]) ** 2, axis=1)
    pairs = ordered_sum(n * (n - 1.0), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (squares / (mu * (1.0 - mu)) - total_n) / pairs


def _fit_block(counts, k, total_y, total_n, all_extreme, rho_start):
    """Newton ascent for one block; counts (3, depth, R).

    Returns mu, rho, the log-likelihood without log C, converged, boundary and iterations.
    """
    n_reps = total_y.size
    mu_0 = total_y / total_n
    theta_0 = np.stack([logit(mu_0), np.full(n_reps, -np.inf)])
    value_0 = _loglik(theta_0, counts, k, derivatives=False)[0]
    # Tarone's score in rho at rho = 0 (binomial MLE of mu), from the finite-sum derivative.
    A, B, C = counts
    score_0 = ordered_sum(A * (k - mu_0) / mu_0 + B * (k - 1.0 + mu_0) / (1.0 - mu_0)
                          - C * (k - 1.0), axis=0)
    size = ordered_sum(A + B + C, axis=0)
    boundary = (score_0 <= SCORE_TOL * size) & ~all_extreme

    mu, rho, value = mu_0.copy(), np.zeros(n_reps), value_0.copy()
    ok, iters = boundary.copy(), np.zeros(n_reps, dtype=np.int64)
    theta = np.stack([logit(mu_0), logit(np.clip(np.nan_to_num(rho_start), *RHO_START_RANGE))])
    active = np.nonzero(~boundary & ~all_extreme)[0]
    sub = counts[:, :, active]
    v_cur, g_cur, h_cur = _loglik(theta[:, active], sub, k)
    while active.size:
        iters[active] += 1
        step, newton = _ascent_direction(g_cur, h_cur)
        size_of_step = np.max(np.abs(step), axis=0)
        # Converged: a tiny Newton step, or one whose predicted gain is below the rounding of
        # the log-likelihood (a sum of up to max n terms per group; matters for n ~ 1e6).
        gain = 0.5 * np.abs(np.sum(step * g_cur, axis=0))
        finished = newton & ((size_of_step < STEP_TOL) | (gain < GAIN_TOL * (1.0 + np.abs(v_cur))))
        short = newton & (size_of_step < LOCAL_STEP) & ~finished
        alpha = np.ones(active.size)
        moving = ~(finished | short)
        t_new = theta[:, active] + np.where(short | finished, step, 0.0)  # last step taken too
        for _ in range(MAX_BACKTRACKS):
            idx = np.nonzero(moving)[0]
            if idx.size == 0:
                break
            trial = theta[:, active[idx]] + alpha[idx] * step[:, idx]
            v_try = _loglik(trial, sub[:, :, idx], k, derivatives=False)[0]
            accept = v_try >= v_cur[idx] - 1e-13 * (1.0 + np.abs(v_cur[idx]))
            t_new[:, idx[accept]] = trial[:, accept]
            moving[idx[accept]] = False
            alpha[idx[~accept]] *= 0.5
        stalled = moving
        theta[:, active] = t_new
        stop = finished | stalled | (iters[active] >= MAX_ITER)
        ok[active[finished]] = True
        keep = ~stop
        active, sub = active[keep], sub[:, :, keep]
        if active.size:
            v_cur, g_cur, h_cur = _loglik(theta[:, active], sub, k)

    fitted = np.nonzero(~boundary & ~all_extreme)[0]
    value[fitted] = _loglik(theta[:, fitted], counts[:, :, fitted], k, derivatives=False)[0]
    mu[fitted], rho[fitted] = expit(theta[0, fitted]), expit(theta[1, fitted])
    return mu, rho, value, ok, boundary, iters


def fit_betabinomial(y, n):
    """Fit ``VGAM::vglm(cbind(y, n - y) ~ 1, betabinomial)`` by maximum likelihood.

    Parameters
    ----------
    y, n : array_like of int, shape (G,) or (R, G)
        Successes and trials per group. Groups with ``n == 0`` are padding and contribute nothing.

    Returns
    -------
    BetaBinomialFit
        Estimates and diagnostics; for (G,) input every field drops its leading dimension.

    Notes
    -----
    When the data show no overdispersion (Tarone's score at rho = 0 is not positive) the fit
    returns rho = 0 exactly with ``boundary=True`` and the binomial MLE mu = sum y / sum n; every
    p_hat is then mu. If every group has y_i = 0 or y_i = n_i (but not all the same) and some
    n_i >= 2, the likelihood increases all the way to rho = 1: the fit returns that limit (mu the
    share of groups with y_i = n_i, rho = 1, p_hat = y / n) with ``converged=False``. When all
    n_i = 1, rho is not identified; the score at 0 is exactly 0 and the fit reports rho = 0.

    A dataset whose trials all failed (or all succeeded) is returned as ``fit_glmm`` returns it:
    ``separated=True``, ``converged=False``, mu = 0 (1), rho NaN, p_hat 0 (1) and loglik 0, the
    supremum. Input errors raise ``ValueError``.

    References
    ----------
    Griffiths, D. A. (1973). Maximum likelihood estimation for the beta-binomial distribution and
    an application to the household distribution of the total number of cases of a disease.
    Biometrics 29, 637-648. Tarone, R. E. (1979). Testing the goodness of fit of the binomial
    distribution. Biometrika 66, 585-590. Yee, T. W. (2015). Vector Generalized Linear and Additive
    Models (VGAM's ``betabinomial`` family).
    """
    y, n, was_1d = as_counts(y, n)
    n_reps = y.shape[0]
    total_y, total_n = y.sum(axis=1).astype(float), n.sum(axis=1).astype(float)
    separated = (total_y == 0) | (total_y == total_n)
    real = n > 0
    extreme = ((y == 0) | (y == n)) | ~real
    all_extreme = extreme.all(axis=1) & (n >= 2).any(axis=1) & ~separated

    rho_start = _moment_rho(y.astype(float), n.astype(float), total_y, total_n)
    mu, rho, value, constant = (np.zeros(n_reps) for _ in range(4))
    converged, boundary = np.zeros(n_reps, dtype=bool), np.zeros(n_reps, dtype=bool)
    n_iter = np.zeros(n_reps, dtype=np.int64)
    fit = np.nonzero(~separated)[0]
    # Blocks keep (max n) x replicates near BLOCK_CELLS; each has its own depth, max n_i in it.
    block = max(1, BLOCK_CELLS // int(n.max()))
    for start in range(0, fit.size, block):
        cols = fit[start:start + block]
        y_block, n_block = y[cols], n[cols]
        depth = int(n_block.max())
        counts = np.stack([_exceedance_counts(y_block, depth),
                           _exceedance_counts(n_block - y_block, depth),
                           _exceedance_counts(n_block, depth)])
        k = np.arange(depth, dtype=float)[:, None]
        # log C(n_i, y_i) = sum_{k < n_i} log(k + 1) - sum_{k < y_i} ... - sum_{k < n_i - y_i} ...
        constant[cols] = ordered_sum((counts[2] - counts[0] - counts[1]) * np.log1p(k), axis=0)
        (mu[cols], rho[cols], value[cols], converged[cols], boundary[cols],
         n_iter[cols]) = _fit_block(counts, k, total_y[cols], total_n[cols],
                                    all_extreme[cols], rho_start[cols])

    # Limit rho -> 1 when every group is all-or-nothing: Beta(a, b) with a, b -> 0.
    share = (real & (y == n)).sum(axis=1) / real.sum(axis=1)
    mu = np.where(all_extreme, share, mu)
    rho = np.where(all_extreme, 1.0, rho)
    with np.errstate(divide="ignore", invalid="ignore"):
        limit_value = (real & (y == n)).sum(axis=1) * np.log(share) + \
            (real & (y == 0)).sum(axis=1) * np.log1p(-share)
    value = np.where(all_extreme, limit_value, value)
    loglik = np.where(separated, 0.0, value + constant)
    mu = np.where(separated, np.where(total_y == 0, 0.0, 1.0), mu)
    rho = np.where(separated, np.nan, rho)

    # (y + a) / (n + a + b), multiplied through by rho so that rho = 0 gives mu exactly.
    r, m = rho[:, None], mu[:, None]
    p_hat = (r * y + m * (1.0 - r)) / (r * n + (1.0 - r))
    p_hat = np.where(separated[:, None], m, p_hat)  # every group at 0 (or 1), as fit_glmm
    p_hat = np.where(real, p_hat, np.nan)

    fields = dict(mu=mu, rho=rho, loglik=loglik, p_hat=p_hat, converged=converged,
                  boundary=boundary, separated=separated, n_iter=n_iter)
    if was_1d:
        fields = {key: val[0] for key, val in fields.items()}
    n_groups = real.sum(axis=1)
    return BetaBinomialFit(**fields, n_groups=n_groups[0] if was_1d else n_groups)
