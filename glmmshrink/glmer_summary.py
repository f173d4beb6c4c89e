"""lme4-style summary of a fitted binomial random-intercept GLMM, with the intercept's SE.

The model is ``y_i ~ Binomial(n_i, expit(beta + b_i))``, ``b_i ~ N(0, sigma^2)``, as in
``glmer(cbind(y, n - y) ~ (1 | g), family = binomial)``.

``fit_glmm`` returns the optimum but no standard error for ``beta``. lme4's ``vcov`` on a glmer
fit defaults to ``use.hessian = TRUE``: it inverts the finite-difference Hessian of the deviance
over ``(theta, beta)`` and keeps the ``beta`` block (lme4 ``vcov.merMod``). With one scalar random
effect, ``theta = sigma``, so :func:`intercept_se` does the same with the Laplace (or adaptive
Gauss-Hermite) log-likelihood of ``../shared/reference/README.md`` at the fitted
``(beta, sigma)``. :func:`intercept_se_conditional` is lme4's ``use.hessian = FALSE`` value,
``[sum_i w_i / (1 + sigma^2 w_i)]^(-1/2)``, which ignores the uncertainty in ``sigma``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, gammaln
from scipy.stats import norm

# lme4's deriv12 uses this step for the Hessian behind vcov().
_HESSIAN_STEP = 1e-4
_MODE_TOLERANCE = 1e-13
_MODE_MAX_STEPS = 200


def log_choose(n, y) -> np.ndarray:
    """Elementwise log C(n, y), the binomial coefficient lme4 adds on aggregated data."""
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    return gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)


def _conditional_modes(y, n, beta, sigma):
    """Conditional modes ``u_i = b_i / sigma`` by damped Newton (the scalar PIRLS of lme4).

    Maximises ``f(u) = y (beta + sigma u) - n log(1 + e^(beta + sigma u)) - u^2 / 2``, which is
    strictly concave (``f'' <= -1``), so halving a step until ``f`` rises always succeeds.
    """

    def objective(u):
        eta = beta + sigma * u
        return y * eta - n * np.logaddexp(0.0, eta) - 0.5 * u**2

    u = np.zeros_like(y, dtype=float)
    for _ in range(_MODE_MAX_STEPS):
        p = expit(beta + sigma * u)
        gradient = sigma * (y - n * p) - u
        curvature = sigma**2 * n * p * (1 - p) + 1.0
        step = gradient / curvature
        current = objective(u)
        slack = 1e-12 * (1.0 + np.abs(current))
        for _ in range(60):
            worse = objective(u + step) < current - slack
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
        u = u + step
        if np.max(np.abs(step)) < _MODE_TOLERANCE:
            break
    return u


def marginal_loglik(y, n, beta, sigma, nagq=1) -> float:
    """Laplace (``nagq = 1``) or adaptive Gauss-Hermite log-likelihood at ``(beta, sigma)``.

    Laplace: ``sum_i [y_i eta_i - n_i log(1 + e^eta_i) - u_i^2/2 - log(1 + sigma^2 w_i)/2]
    + sum_i log C(n_i, y_i)`` at the conditional modes (``../shared/reference/README.md``).
    For ``nagq > 1`` the nodes sit at each mode, scaled by ``1 / sqrt(1 + sigma^2 w_i)`` on
    the ``u`` scale, as lme4's nAGQ; the constant ``sum_i log C(n_i, y_i)`` is included (this is
    the true marginal log-likelihood, not lme4's printed nAGQ > 1 value). The function is even in
    ``sigma``, so it is defined for ``sigma < 0`` too, which the central differences use.
    """
    y = np.asarray(y, dtype=float)
    n = np.asarray(n, dtype=float)
    u_mode = _conditional_modes(y, n, beta, sigma)
    p_mode = expit(beta + sigma * u_mode)
    scale = 1.0 / np.sqrt(1.0 + sigma**2 * n * p_mode * (1 - p_mode))
    nodes, weights = np.polynomial.hermite.hermgauss(nagq)
    # Substituting u = u_mode + sqrt(2) scale z into int exp(f(u)) du / sqrt(2 pi) gives
    # Gauss-Hermite weights times sqrt(2) scale e^(z^2) / sqrt(2 pi); nagq = 1 is Laplace.
    u_nodes = u_mode[:, None] + np.sqrt(2.0) * scale[:, None] * nodes[None, :]
    eta = beta + sigma * u_nodes
    log_integrand = (
        y[:, None] * eta - n[:, None] * np.logaddexp(0.0, eta) - 0.5 * u_nodes**2 + nodes**2
    )
    per_group = (
        np.log(scale)
        + 0.5 * np.log(2.0)
        - 0.5 * np.log(2.0 * np.pi)
        + np.log(np.sum(weights * np.exp(log_integrand - log_integrand.max(axis=1, keepdims=True)), axis=1))
        + log_integrand.max(axis=1)
    )
    return float(np.sum(per_group) + np.sum(log_choose(n, y)))


def intercept_se(y, n, beta, sigma, nagq=1) -> float:
    """Standard error of ``beta`` as lme4's default ``vcov`` computes it.

    Inverts the Hessian of ``-marginal_loglik`` over ``(sigma, beta)`` (central differences with
    lme4's step 1e-4) and takes the ``beta`` entry (lme4 ``vcov.merMod``, ``use.hessian = TRUE``).
    When that Hessian is not positive definite, as on a boundary fit, lme4 falls back to the
    PIRLS value, and so does this function (see :func:`intercept_se_conditional`). Returns NaN
    for a non-finite ``beta`` or ``sigma`` (a separated dataset).
    """
    if not (np.isfinite(beta) and np.isfinite(sigma)):
        return float("nan")
    h = _HESSIAN_STEP

    def negloglik(s, b):
        return -marginal_loglik(y, n, b, s, nagq)

    center = negloglik(sigma, beta)
    d_ss = (negloglik(sigma + h, beta) - 2 * center + negloglik(sigma - h, beta)) / h**2
    d_bb = (negloglik(sigma, beta + h) - 2 * center + negloglik(sigma, beta - h)) / h**2
    d_sb = (
        negloglik(sigma + h, beta + h)
        - negloglik(sigma + h, beta - h)
        - negloglik(sigma - h, beta + h)
        + negloglik(sigma - h, beta - h)
    ) / (4 * h**2)
    hessian = np.array([[d_ss, d_sb], [d_sb, d_bb]])
    if np.all(np.linalg.eigvalsh(hessian) > 0):
        return float(np.sqrt(np.linalg.inv(hessian)[1, 1]))
    return intercept_se_conditional(y, n, beta, sigma)


def intercept_se_conditional(y, n, beta, sigma) -> float:
    """SE of ``beta`` given ``sigma``: ``[sum_i w_i / (1 + sigma^2 w_i)]^(-1/2)``.

    ``w_i = n_i p_i (1 - p_i)`` at the conditional modes. This is lme4's
    ``vcov(fit, use.hessian = FALSE)``, the Schur complement of PIRLS's ``X'WX``.
    """
    if not (np.isfinite(beta) and np.isfinite(sigma)):
        return float("nan")
    y = np.asarray(y, dtype=float)
    n = np.asarray(n, dtype=float)
    u_mode = _conditional_modes(y, n, beta, sigma)
    p_mode = expit(beta + sigma * u_mode)
    weight = n * p_mode * (1 - p_mode)
    return float(1.0 / np.sqrt(np.sum(weight / (1.0 + sigma**2 * weight))))


@dataclass(frozen=True)
class GlmerSummary:
    """Numbers of an lme4 ``summary(glmer(...))`` printout; ``str()`` gives the printout."""

    formula: str
    group_name: str
    n_obs: int
    n_groups: int
    nagq: int
    beta: float
    beta_se: float
    sigma: float
    loglik: float
    converged: bool
    singular: bool
    separated: bool
    max_grad: float

    @property
    def n_params(self) -> int:
        return 2

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2 * self.loglik + np.log(self.n_obs) * self.n_params

    @property
    def deviance(self) -> float:
        return -2 * self.loglik

    @property
    def z_value(self) -> float:
        return self.beta / self.beta_se

    @property
    def p_value(self) -> float:
        return float(2 * norm.sf(abs(self.z_value)))

    def notes(self) -> list[str]:
        """Warnings in lme4's words where lme4 has them."""
        found = []
        if self.separated:
            found.append(
                "complete separation: every trial failed or every trial succeeded, so the "
                "intercept has no finite maximum-likelihood estimate"
            )
        elif not self.converged:
            found.append(f"Model failed to converge with max|grad| = {self.max_grad:.3g}")
        if self.singular:
            found.append("boundary (singular) fit: see help('isSingular')")
        return found

    def __str__(self) -> str:
        method = (
            "Laplace Approximation"
            if self.nagq == 1
            else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}"
        )
        group_width = max(len("Groups"), len(self.group_name))
        lines = [
            f"Generalized linear mixed model fit by maximum likelihood ({method}) [glmmshrink]",
            " Family: binomial  ( logit )",
            f"Formula: {self.formula}",
            "",
            f"{'AIC':>9}{'BIC':>9}{'logLik':>9}{'deviance':>9}{'df.resid':>9}",
            f"{self.aic:>9.1f}{self.bic:>9.1f}{self.loglik:>9.1f}{self.deviance:>9.1f}"
            f"{self.n_obs - self.n_params:>9d}",
            "",
            "Random effects:",
            f" {'Groups':<{group_width}} Name        Variance Std.Dev.",
            f" {self.group_name:<{group_width}} (Intercept) {self.sigma**2:<8.4g} {self.sigma:<8.4g}",
            f"Number of obs: {self.n_obs}, groups:  {self.group_name}, {self.n_groups}",
            "",
            "Fixed effects:",
            "            Estimate Std. Error z value Pr(>|z|)",
            f"(Intercept) {self.beta:>8.4g} {self.beta_se:>10.4g} {self.z_value:>7.3f} "
            f"{_format_p(self.p_value):>8}",
        ]
        notes = self.notes()
        if notes:
            lines.append("")
            lines.extend(notes)
        return "\n".join(lines)


def _format_p(p_value: float) -> str:
    """Like R's format.pval with 3 digits: tiny values print as '<2e-16'."""
    if np.isnan(p_value):
        return "NaN"
    if p_value < 2e-16:
        return "<2e-16"
    return f"{p_value:.3g}"
