"""Penalized quasi-likelihood (PQL) fit of the binomial random-intercept GLMM, as ``glmmPQL``.

Model::

    y_i ~ Binomial(n_i, expit(beta + b_i)),   b_i ~ N(0, sigma^2).

``fit_pql`` returns the fixed point of ``MASS::glmmPQL(result ~ 1, random = ~ 1 | g,
family = binomial)`` on the 0/1 rows of the counts (Breslow & Clayton 1993, JASA 88, 9-25;
Venables & Ripley 2002, Modern Applied Statistics with S, 4th ed., section 10.4). Each step fits,
by maximum likelihood, nlme's
``lme(z ~ 1, random = ~ 1 | g, weights = varFixed(~ 1 / w), method = "ML")`` to the working
response z = eta + (y - mu) / (mu (1 - mu)) with working weights w = mu (1 - mu), and sets
eta_i = beta + b_i from its estimates and BLUPs. The residual variance phi of that linear
mixed model (LMM) is estimated, so ``residual_sd`` = sqrt(phi) is reported beside ``sigma``.

Every row of group i shares eta_i, so the working LMM needs only per-group statistics:
c_i = n_i w_i, the group mean zbar_i = eta_i + (y_i / n_i - mu_i) / w_i and the within-group
weighted sum of squares y_i (n_i - y_i) / (n_i w_i), summed to SSW. With the variance ratio
lam = sigma^2 / phi and a_i = c_i / (1 + c_i lam), the ML estimates given lam are closed form
(the profiled likelihood nlme maximises, Pinheiro & Bates 2000, Mixed-Effects Models in S and
S-PLUS, sections 2.2 and 5.2, here with one random intercept and known relative weights)::

    beta = sum a_i zbar_i / sum a_i,   phi = (SSW + sum a_i (zbar_i - beta)^2) / N,   N = sum n_i,

and lam maximises the profile log-likelihood -1/2 [N log phi + sum log(1 + c_i lam)]. The varFixed
weights have no free parameter, so nlme's normalising term -1/2 sum log(1 / w) does not move the
optimum. The BLUPs are b_i = lam a_i (zbar_i - beta).

Each replicate runs its own iteration: a safeguarded Newton solve in s = sqrt(lam) per working
fit, warm-started from the last one, then the update of eta. It freezes when max |d eta| <
``ETA_TOL``. On some rare-event data glmmPQL's plain update cycles (sigma alternating between 0
and ~2); a replicate whose update reverses direction without shrinking then takes damped steps
eta + omega (eta_new - eta), which have the same fixed points. Sums over groups run in fixed row
order and every step size is per replicate, so a replicate's result is bit-identical alone or in
any batch.

Boundary sigma = 0. In s = sqrt(lam) the profile is even, so s = 0 is stationary; it is a local
maximum when the profile slope in lam at 0, -1/2 [sum c_i - sum c_i^2 (zbar_i - beta_0)^2 / phi_0],
is not positive. The fit then reports sigma = 0 exactly, the optimum, where nlme (which works on
log sigma) stops at a small positive value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from glmmshrink._groups import distinct_groups
from glmmshrink._objective import sum_over_groups
from glmmshrink._pql_result import PqlFit
from glmmshrink._validate import as_counts

ETA_TOL = 1e-11  # max |change in eta| between working fits at the fixed point
MAX_OUTER = 1000  # working-LMM fits; rare-event data contract slowly
MAX_ETA_STEP = 5.0  # largest move of any eta in one update
MIN_DAMPING = 1.0 / 16.0
DIVERGED_ETA = 50.0  # |eta| beyond this: the iteration is running off to a saturated fit
# A Newton step in s = sqrt(lam) below this (relative), at negative curvature, is the last of a
# working fit: the profile is locally quadratic, so after it s is exact to ~1e-14.
RATIO_STEP_TOL = 1e-7
LOCAL_STEP = 0.05  # relative Newton steps this short, at negative curvature, skip the line search
BOUNDARY_SLOPE_TOL = 1e-12  # relative to sum c_i
RATIO_MAX = 1e6  # s = sigma / sqrt(phi) beyond this: the working LMM interpolates (phi -> 0)
MAX_INNER = 100
MAX_BACKTRACKS = 60
BLOCK_CELLS = 32_768  # distinct groups x replicates per block, as in fit_glmm
MIN_BLOCK_REPLICATES = 64


@dataclass(frozen=True)
class _WorkingData:
    """Per-group statistics of the working LMM, (K, R), and its totals, (R,)."""

    count: np.ndarray  # multiplicity of each distinct (y, n) row; 0 for padding
    c: np.ndarray  # n_i w_i
    zbar: np.ndarray  # group mean of the working response
    within_ss: np.ndarray  # weighted within-group sum of squares, summed over groups
    n_rows: np.ndarray  # N = sum n_i


def _working_data(eta, y, n, count, n_rows):
    """Working response statistics at eta (glmmPQL's zz and invwt, summarised per group)."""
    # mu and 1 - mu from expit(+-eta), so that (ybar - mu) / w keeps its digits in the tails.
    mu, one_minus_mu = expit(eta), expit(-eta)
    w = mu * one_minus_mu
    ybar = y / n
    zbar = eta + ybar / mu - (1.0 - ybar) / one_minus_mu
    within_ss = sum_over_groups(count * (y * (n - y) / (n * w)))
    return _WorkingData(count, n * w, zbar, within_ss, n_rows)


def _profile(ratio, data, derivatives=True):
    """Profile ML log-likelihood in lam (up to a constant), its first two derivatives, beta, phi.

    d/dlam follows from the envelope theorem; d2/dlam2 subtracts the (beta, phi) coupling:
    L'' = 1/2 S(a^2) - S(a^3 r^2) / phi + S(a^2 r)^2 / (phi S(a)) + S(a^2 r^2)^2 / (2 N phi^2),
    with S() the count-weighted sum over groups and r = zbar - beta.
    """
    count, c = data.count, data.c
    a = c / (1.0 + c * ratio)
    weighted = count * a
    # Two stacked ordered sums (before and after beta is known) instead of one per term.
    sum_a, sum_az, sum_log, sum_a2 = sum_over_groups(np.stack(
        [weighted, weighted * data.zbar, count * np.log1p(c * ratio), weighted * a]))
    beta = sum_az / sum_a
    r = data.zbar - beta
    war = weighted * r
    s_ar2, s_a2r2, s_a3r2, s_a2r = sum_over_groups(np.stack(
        [war * r, war * r * a, war * r * a * a, war * a]))
    phi = (data.within_ss + s_ar2) / data.n_rows
    value = -0.5 * (data.n_rows * np.log(phi) + sum_log)
    if not derivatives:
        return value, None, None, beta, phi
    grad = -0.5 * (sum_a - s_a2r2 / phi)
    hess = (0.5 * sum_a2 - s_a3r2 / phi + s_a2r * s_a2r / (phi * sum_a)
            + s_a2r2 * s_a2r2 / (2.0 * data.n_rows * phi * phi))
    return value, grad, hess, beta, phi


def _fit_working_lmm(s, data):
    """Maximise the profile over s = sqrt(lam) >= 0 for each replicate, starting from ``s``.

    A safeguarded Newton ascent per replicate (each with its own step length, frozen after a
    relative Newton step below ``RATIO_STEP_TOL``); s = 0 is taken exactly when it is a local
    maximum and the ascent heads toward it. Returns s, beta and phi there, whether it converged,
    and whether s ran past ``RATIO_MAX``: the profile then rises toward lam = inf (phi -> 0), which
    can happen only when the within-group sum of squares is 0, i.e. every group has y_i = 0 or n_i.
    """
    s = s.copy()
    # The profile at s = 0 is needed only near the boundary; computed on demand per replicate.
    value_0, boundary_is_max = np.full(s.size, np.nan), np.zeros(s.size, dtype=bool)
    known_0 = np.zeros(s.size, dtype=bool)

    def learn_boundary(idx):
        idx = idx[~known_0[idx]]
        if idx.size:
            sub = _take(data, idx)
            v0, g0, _, _, _ = _profile(np.zeros(idx.size), sub)
            # The slope at 0 is a difference of two sums of size sum c_i; below this it is rounding.
            boundary_is_max[idx] = g0 <= BOUNDARY_SLOPE_TOL * sum_over_groups(sub.count * sub.c)
            value_0[idx], known_0[idx] = v0, True

    start_at_zero = np.nonzero(s == 0.0)[0]
    learn_boundary(start_at_zero)
    s[start_at_zero[~boundary_is_max[start_at_zero]]] = 1.0  # leave a saddle at 0
    done = s == 0.0  # boundary optimum already reached
    ok = done.copy()
    unbounded = np.zeros(s.size, dtype=bool)
    active = np.nonzero(~done)[0]
    for _ in range(MAX_INNER):
        if active.size == 0:
            break
        sub = _take(data, active)
        s_act = s[active]
        v_cur, g_lam, h_lam, _, _ = _profile(s_act * s_act, sub)
        grad = 2.0 * s_act * g_lam
        hess = 2.0 * g_lam + 4.0 * s_act * s_act * h_lam
        newton = hess < 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(newton, -grad / hess, np.sign(grad) * np.maximum(0.5 * s_act, 0.1))
        step = np.clip(step, -np.maximum(2.0, s_act), np.maximum(2.0, s_act))
        finished = newton & (np.abs(step) <= RATIO_STEP_TOL * (1.0 + s_act))
        broken = ~np.isfinite(v_cur) | ~np.isfinite(step)
        toward_zero = (step < -0.5 * s_act) & ~finished & ~broken
        learn_boundary(active[toward_zero])
        jump = toward_zero & boundary_is_max[active] & (value_0[active] >= v_cur)
        # Backtrack on the profile until it does not decrease. A short Newton step at negative
        # curvature is taken as is: near the optimum the profile's change is below its rounding.
        alpha = np.ones(active.size)
        short = newton & (np.abs(step) < LOCAL_STEP * (1.0 + s_act)) & ~(finished | jump)
        moving = ~(finished | jump | short | broken)
        s_new = s_act.copy()
        s_new[short | finished] = s_act[short | finished] + step[short | finished]
        for _ in range(MAX_BACKTRACKS):
            idx = np.nonzero(moving)[0]
            if idx.size == 0:
                break
            trial = s_act[idx] + alpha[idx] * step[idx]
            trial = np.where(trial > 0.0, trial, 0.1 * s_act[idx])
            v_try = _profile(trial * trial, _take(sub, idx), derivatives=False)[0]
            accept = v_try >= v_cur[idx] - 1e-14 * (1.0 + np.abs(v_cur[idx]))
            s_new[idx[accept]] = trial[accept]
            moving[idx[accept]] = False
            alpha[idx[~accept]] *= 0.5
        stalled = moving | broken  # no ascent found: the iterate is as good as it gets
        # Stalled within rounding of the boundary value: the optimum is s = 0 to working precision.
        learn_boundary(active[stalled & ~broken])
        flat = stalled & ~broken & (v_cur <= value_0[active] + 1e-13 * (1.0 + np.abs(v_cur)))
        jump, stalled = jump | flat, stalled & ~flat
        s_new[jump] = 0.0
        s[active] = s_new
        escaped = s_new > RATIO_MAX
        unbounded[active[escaped]] = True
        stop = finished | jump | stalled | escaped
        done[active[stop]] = True
        ok[active[finished | jump]] = True
        active = active[~stop]
    _, _, _, beta, phi = _profile(s * s, data, derivatives=False)  # at the final s
    return s, beta, phi, ok, unbounded


def _take(data, idx):
    """The replicates ``idx`` (sorted, unique) of ``data``; no copy when that is all of them."""
    if idx.size == data.n_rows.size:
        return data
    return _WorkingData(data.count[:, idx], data.c[:, idx], data.zbar[:, idx],
                        data.within_ss[idx], data.n_rows[idx])


def _fit_block(y, n, count):
    """Iterate the working fits of one block of distinct-group arrays (K, R) to the fixed point."""
    n_reps = y.shape[1]
    total_y, total_n = sum_over_groups(count * y), sum_over_groups(count * n)
    separated = (total_y == 0) | (total_y == total_n)
    real = count > 0
    # Padding rows get harmless values (n = 1, y = 0, eta = beta) and weight count = 0.
    n = np.where(real, n, 1.0)
    y = np.where(real, y, 0.0)

    beta = np.where(separated, np.where(total_y == 0, -np.inf, np.inf), np.nan)
    sigma, residual_sd = np.full(n_reps, np.nan), np.full(n_reps, np.nan)
    b = np.full(y.shape, np.nan)
    converged, damped = np.zeros(n_reps, dtype=bool), np.zeros(n_reps, dtype=bool)
    n_iter = np.zeros(n_reps, dtype=np.int64)
    fit = np.nonzero(~separated)[0]
    if fit.size == 0:
        return beta, sigma, residual_sd, b, converged, n_iter, separated, damped

    y, n, count, real = y[:, fit], n[:, fit], count[:, fit], real[:, fit]
    n_rows = total_n[fit]
    # glmmPQL starts from the glm fit: the pooled proportion for an intercept-only model.
    eta = np.broadcast_to(logit(total_y[fit] / n_rows), y.shape).copy()
    s = np.ones(fit.size)
    ratio_ok = np.ones(fit.size, dtype=bool)
    beta_fit, phi_fit = np.empty(fit.size), np.empty(fit.size)
    b_fit = np.zeros_like(eta)
    iters = np.zeros(fit.size, dtype=np.int64)
    ok = np.zeros(fit.size, dtype=bool)
    diverged = np.zeros(fit.size, dtype=bool)
    damping = np.ones(fit.size)
    last_change = np.full(fit.size, np.inf)
    last_update = np.zeros_like(eta)
    modified = np.zeros(fit.size, dtype=bool)
    active = np.arange(fit.size)
    while active.size:
        iters[active] += 1
        data = _working_data(eta[:, active], y[:, active], n[:, active], count[:, active],
                             n_rows[active])
        s_new, beta_new, phi_new, solved, unbounded = _fit_working_lmm(s[active], data)
        ratio = s_new * s_new
        a = data.c / (1.0 + data.c * ratio)
        b_new = np.where(real[:, active], ratio * a * (data.zbar - beta_new), 0.0)
        eta_new = beta_new + b_new
        change = np.max(np.abs(eta_new - eta[:, active]), axis=0)
        s[active], ratio_ok[active] = s_new, solved
        beta_fit[active], phi_fit[active], b_fit[:, active] = beta_new, phi_new, b_new
        # glmmPQL's plain update eta <- beta + b can cycle (rare events: sigma jumps between 0
        # and ~2 on alternate fits). A replicate whose update reverses direction without halving
        # takes damped steps eta + omega (eta_new - eta) instead, which have the same fixed points.
        update = eta_new - eta[:, active]
        reversing = sum_over_groups(count[:, active] * update * last_update[:, active]) < 0.0
        cycling = reversing & (change > 0.5 * last_change[active])
        damping[active[cycling]] = np.maximum(0.5 * damping[active[cycling]], MIN_DAMPING)
        last_change[active], last_update[:, active] = change, update
        omega = np.minimum(damping[active], MAX_ETA_STEP / np.maximum(change, MAX_ETA_STEP))
        eta[:, active] = eta[:, active] + omega * update
        modified[active] |= omega < 1.0
        settled = change < ETA_TOL
        ok[active[settled]] = ratio_ok[active[settled]]
        escaping = ~settled & (unbounded | ~(np.max(np.abs(eta[:, active]), axis=0) < DIVERGED_ETA))
        diverged[active[escaping]] = True
        active = active[~settled & ~escaping & (iters[active] < MAX_OUTER)]

    beta_fit[diverged], phi_fit[diverged], s[diverged] = np.nan, np.nan, np.nan
    b_fit[:, diverged] = np.nan
    beta[fit], sigma[fit], residual_sd[fit] = beta_fit, s * np.sqrt(phi_fit), np.sqrt(phi_fit)
    b[:, fit], converged[fit], n_iter[fit], damped[fit] = b_fit, ok, iters, modified
    return beta, sigma, residual_sd, b, converged, n_iter, separated, damped


def fit_pql(y, n):
    """Fit ``MASS::glmmPQL(result ~ 1, random = ~ 1 | g, family = binomial)`` to its fixed point.

    Parameters
    ----------
    y, n : array_like of int, shape (G,) or (R, G)
        Successes and trials per group; the 0/1 rows glmmPQL sees are y_i ones and n_i - y_i zeros
        of group i. Groups with ``n == 0`` are padding and contribute nothing.

    Returns
    -------
    PqlFit
        Estimates and diagnostics; for (G,) input every field drops its leading dimension.

    Notes
    -----
    glmmPQL stops when sum (d eta)^2 < 1e-6 sum eta^2 or after 10 iterations, which can leave it
    ~5e-3 from the fixed point on rare-event data; this iterates until max |d eta| < 1e-11
    (``converged`` is False if that takes more than ``MAX_OUTER`` working fits), damping the
    update where glmmPQL's own iteration would cycle.

    Where the iteration runs off instead, ``converged`` is False and beta, sigma, residual_sd, b
    and p_hat are NaN. That happens when every group has y_i = 0 or y_i = n_i, as on 0/1 data with
    one trial per group: the working LMM then has no within-group variation, its ML fit can
    interpolate the working response with phi -> 0, and glmmPQL's estimates grow without bound
    (it runs away on all four such reference datasets). A replicate is stopped once its working
    fit passes sigma / sqrt(phi) = 1e6 or |eta| > 50.

    At a boundary fit sigma is exactly 0, the ML optimum of the working LMM, where nlme (on
    log sigma) stops at a small positive value (1e-5 to 3e-4 on the reference datasets).

    A dataset whose trials all failed (or all succeeded) has no finite estimate (glm diverges):
    it is returned as ``fit_glmm`` does, with ``separated=True``, ``converged=False``,
    beta = -inf (+inf), sigma, residual_sd and b NaN and p_hat 0 (1). Input errors raise
    ``ValueError``.

    References
    ----------
    Breslow, N. E. & Clayton, D. G. (1993). Approximate inference in generalized linear mixed
    models. JASA 88, 9-25. Pinheiro, J. C. & Bates, D. M. (2000). Mixed-Effects Models in S and
    S-PLUS, sections 2.2 and 5.2 (``lme``, ``varFixed``). Venables, W. N. & Ripley, B. D. (2002).
    Modern Applied Statistics with S, 4th ed., section 10.4 (``glmmPQL``).
    """
    y, n, was_1d = as_counts(y, n)
    n_reps = y.shape[0]
    groups = distinct_groups(y, n)
    n_rows = groups.y.shape[0]

    beta, sigma, residual_sd = np.empty(n_reps), np.empty(n_reps), np.empty(n_reps)
    b_rows = np.empty((n_rows, n_reps))
    converged, separated = np.empty(n_reps, dtype=bool), np.empty(n_reps, dtype=bool)
    damped = np.empty(n_reps, dtype=bool)
    n_iter = np.empty(n_reps, dtype=np.int64)
    block = max(MIN_BLOCK_REPLICATES, BLOCK_CELLS // n_rows)
    for start in range(0, n_reps, block):
        cols = slice(start, start + block)
        # A runaway replicate (phi -> 0, see Notes) meets 0/0 on its way out; it ends as NaN.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            (beta[cols], sigma[cols], residual_sd[cols], b_rows[:, cols], converged[cols],
             n_iter[cols], separated[cols], damped[cols]) = _fit_block(
                groups.y[:, cols], groups.n[:, cols], groups.count[:, cols])

    rows, padding = np.maximum(groups.row_of_group, 0), groups.row_of_group < 0
    b = np.where(padding, np.nan, np.take_along_axis(b_rows.T, rows, axis=1))
    p_hat = expit(beta[:, None] + b)
    p_hat[separated] = np.where(padding[separated], np.nan, np.isposinf(beta[separated])[:, None])

    # Conditional SD of b_i in the final working LMM: y_i's n_i rows share the weight
    # p(1 - p), so Var(b_i | z) = (1/sigma^2 + n_i p_i (1 - p_i) / phi)^-1 (Pinheiro & Bates 2000,
    # section 2.2); 0 at a boundary fit, as lme4's condVar at sigma = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        b_sd = 1.0 / np.sqrt(1.0 / sigma[:, None] ** 2
                             + n * p_hat * (1.0 - p_hat) / residual_sd[:, None] ** 2)
    b_sd = np.where(np.isnan(b), np.nan, b_sd)
    fields = dict(beta=beta, sigma=sigma, residual_sd=residual_sd, b=b, b_sd=b_sd, p_hat=p_hat,
                  converged=converged, separated=separated, damped=damped, n_iter=n_iter)
    if was_1d:
        fields = {key: val[0] for key, val in fields.items()}
    n_groups = (n > 0).sum(axis=1)
    return PqlFit(**fields, n_groups=n_groups[0] if was_1d else n_groups)
