"""Conditional modes of the random intercepts: lme4's PIRLS step for one scalar effect per group.

With the spherical random effect u = b / sigma, group i's penalised log-likelihood is

    h_i(u) = y_i eta - n_i log(1 + e^eta) - u^2 / 2,    eta = beta + sigma u,

(Bates et al. 2015, J. Stat. Softw. 67(1), eqs. 4-6 and the PIRLS section of the lme4 vignette
"lmer for GLMMs"). It is strictly concave, so each group's mode solves
h_i'(u) = sigma (y_i - n_i p) - u = 0 with p = expit(eta), and lies in [sigma (y_i - n_i), sigma y_i].
With one scalar effect per group PIRLS decouples into independent scalar Newton steps, so the solve
is vectorised over every group of every replicate at once.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

MODE_STEP_TOL = 1e-11
MODE_MAX_ITER = 200


def conditional_modes(beta, sigma, y, n, u_start=None):
    """Solve every group's conditional mode on the spherical scale u = b / sigma.

    Parameters
    ----------
    beta, sigma : ndarray
        Intercept and random-effect SD, broadcastable against ``y``.
    y, n : ndarray of float
        Successes and trials per group; ``n == 0`` entries solve to u = 0.
    u_start : ndarray, optional
        Warm start (the modes at nearby parameters); zeros by default.

    Returns
    -------
    u : ndarray
        Conditional modes, same shape as ``y``.
    converged : ndarray of bool
        Whether each element's Newton iteration met its step tolerance.

    Notes
    -----
    Newton's method on the monotone score g(u) = sigma (y - n p) - u, with step g / (1 + sigma^2 w),
    w = n p (1 - p). A step that does not shrink |g| is halved, so the iteration cannot cycle in the
    logistic tails. Each element stops on its own, so its result never depends on which other
    elements share the call (the batch-independence promise of ``fit_glmm``).
    """
    beta, sigma, y, n = np.broadcast_arrays(
        np.asarray(beta, float), np.asarray(sigma, float), np.asarray(y, float), np.asarray(n, float)
    )
    shape = y.shape
    beta, sigma, y, n = (np.ascontiguousarray(a).reshape(-1) for a in (beta, sigma, y, n))
    lower, upper = sigma * (y - n), sigma * y
    u = np.zeros(y.size) if u_start is None else np.broadcast_to(u_start, shape).reshape(-1).copy()
    np.clip(u, lower, upper, out=u)
    state = _NewtonState(u)
    active = np.arange(y.size)
    for _ in range(MODE_MAX_ITER):
        if active.size == 0:
            break
        if active.size == y.size:  # everything still moving: skip the gathers
            state.step(beta, sigma, y, n, lower, upper, slice(None))
            active = np.nonzero(~state.converged)[0]
        else:
            state.step(beta[active], sigma[active], y[active], n[active],
                       lower[active], upper[active], active)
            active = active[~state.converged[active]]
    return state.u.reshape(shape), state.converged.reshape(shape)


class _NewtonState:
    """Per-element Newton iterate with step halving on the residual |score|."""

    def __init__(self, u):
        self.u = u
        self.u_prev = u.copy()
        self.step_prev = np.zeros(u.size)
        self.abs_score_prev = np.full(u.size, np.inf)
        self.converged = np.zeros(u.size, dtype=bool)

    def step(self, beta, sigma, y, n, lower, upper, where):
        u = self.u[where]
        p = expit(beta + sigma * u)
        score = sigma * (y - n * p) - u
        abs_score = np.abs(score)
        worse = abs_score > self.abs_score_prev[where]
        # Newton step where |score| shrank, else halve the previous step from the last good point.
        step = np.where(worse, 0.5 * self.step_prev[where], score / (1.0 + sigma * sigma * n * p * (1.0 - p)))
        new_u = np.clip(np.where(worse, self.u_prev[where], u) + step, lower, upper)
        self.u_prev[where] = np.where(worse, self.u_prev[where], u)
        self.abs_score_prev[where] = np.where(worse, self.abs_score_prev[where], abs_score)
        self.step_prev[where] = step
        self.u[where] = new_u
        self.converged[where] = (np.abs(step) <= MODE_STEP_TOL * (1.0 + np.abs(new_u))) | (score == 0.0)
