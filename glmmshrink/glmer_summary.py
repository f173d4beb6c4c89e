"""lme4-style summary of a fitted binomial random-intercept GLMM, with the intercept's SE.

The model is ``y_i ~ Binomial(n_i, expit(beta + b_i))``, ``b_i ~ N(0, sigma^2)``, as in
``glmer(cbind(y, n - y) ~ (1 | g), family = binomial)``.

``fit_glmm`` returns the intercept's standard error as ``GlmmFit.beta_se``. lme4's ``vcov`` on a
glmer fit defaults to ``use.hessian = TRUE``: it inverts the finite-difference Hessian of the
deviance over ``(theta, beta)`` and keeps the ``beta`` block (lme4 1.1 ``vcov.merMod``). With one
scalar random effect ``theta = sigma``, so :func:`intercept_se` inverts the exact Hessian of the
same Laplace (or adaptive Gauss-Hermite) log-likelihood over ``(beta, sigma)`` (``_objective``)
at any given ``(beta, sigma)``, with the rule of ``_standard_error`` that ``fit_glmm`` uses.
:func:`intercept_se_conditional` is lme4's ``use.hessian = FALSE`` value,
``[sum_i w_i / (1 + sigma^2 w_i)]^(-1/2)``, which treats ``sigma`` as known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import norm

from glmmshrink._modes import conditional_modes
from glmmshrink._objective import agq_objective, laplace_objective
from glmmshrink._standard_error import beta_standard_error


def _one_dataset(y, n, beta, sigma):
    """Groups as the (K, 1) columns the objectives expect, with the modes at (beta, sigma)."""
    y = np.asarray(y, dtype=float)[:, None]
    n = np.asarray(n, dtype=float)[:, None]
    beta, sigma = np.array([float(beta)]), np.array([float(sigma)])
    u_mode, _ = conditional_modes(beta, sigma, y, n)
    return y, n, beta, sigma, u_mode


def _conditional_information(y, n, beta, sigma, u_mode):
    """sum_i w_i / (1 + sigma^2 w_i), w_i = n_i p_i (1 - p_i) at the conditional modes."""
    p_mode = expit(beta + sigma * u_mode)
    weight = n * p_mode * (1 - p_mode)
    return np.sum(weight / (1.0 + sigma**2 * weight), axis=0)


def intercept_se(y, n, beta, sigma, nagq=1) -> float:
    """Standard error of ``beta`` as lme4's default ``vcov`` computes it, at a given (beta, sigma).

    ``sqrt([(-H)^(-1)]_{beta beta})`` with ``H`` the exact Hessian of the Laplace (``nagq = 1``) or
    adaptive Gauss-Hermite log-likelihood over ``(beta, sigma)`` (lme4 ``vcov.merMod`` with
    ``use.hessian = TRUE``; lme4 differentiates numerically). Where ``-H`` is not positive
    definite lme4 falls back to :func:`intercept_se_conditional`, and at ``sigma = 0`` both give
    the binomial GLM's SE (``_standard_error``). ``fit_glmm`` returns the same number at its own
    estimate as ``GlmmFit.beta_se``. Returns NaN for a non-finite ``beta`` or ``sigma``.
    """
    if not (np.isfinite(beta) and np.isfinite(sigma)):
        return float("nan")
    y, n, beta_, sigma_, u_mode = _one_dataset(y, n, beta, sigma)
    count = np.ones_like(y)
    if nagq == 1:
        _, _, hess = laplace_objective(beta_, sigma_, u_mode, y, n, count)
    else:
        _, _, hess = agq_objective(beta_, sigma_, u_mode, y, n, count, nagq)
    information = _conditional_information(y, n, beta_, sigma_, u_mode)
    return float(beta_standard_error(hess, sigma_, information)[0])


def intercept_se_conditional(y, n, beta, sigma) -> float:
    """SE of ``beta`` given ``sigma``: ``[sum_i w_i / (1 + sigma^2 w_i)]^(-1/2)``.

    ``w_i = n_i p_i (1 - p_i)`` at the conditional modes. This is lme4's
    ``vcov(fit, use.hessian = FALSE)``, the Schur complement of PIRLS's ``X'WX``.
    """
    if not (np.isfinite(beta) and np.isfinite(sigma)):
        return float("nan")
    y, n, beta_, sigma_, u_mode = _one_dataset(y, n, beta, sigma)
    return float(1.0 / np.sqrt(_conditional_information(y, n, beta_, sigma_, u_mode)[0]))


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
        return self.deviance + 2 * self.n_params

    @property
    def bic(self) -> float:
        return self.deviance + np.log(self.n_obs) * self.n_params

    @property
    def deviance(self) -> float:
        return -2 * self.loglik + 0.0  # + 0.0 turns -0.0 (separated data, loglik 0) into 0.0

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
            (
                f"{self.aic:>9.1f}{self.bic:>9.1f}{self.loglik:>9.1f}{self.deviance:>9.1f}"
                f"{self.n_obs - self.n_params:>9d}"
            ),
            "",
            "Random effects:",
            f" {'Groups':<{group_width}} Name        Variance Std.Dev.",
            (
                f" {self.group_name:<{group_width}} (Intercept) "
                f"{_signif(self.sigma**2):<8} {_signif(self.sigma):<8}"
            ),
            f"Number of obs: {self.n_obs}, groups:  {self.group_name}, {self.n_groups}",
            "",
            "Fixed effects:",
            "            Estimate Std. Error z value Pr(>|z|)",
            (
                f"(Intercept) {_signif(self.beta):>8} {_signif(self.beta_se):>10} "
                f"{_fixed3(self.z_value):>7} {_format_p(self.p_value):>8}"
            ),
        ]
        notes = self.notes()
        if notes:
            lines.append("")
            lines.extend(notes)
        return "\n".join(lines)


def _signif(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits, keeping trailing zeros as R's print does."""
    if not np.isfinite(value):
        return _r_nonfinite(value)
    return f"{value:#.{digits}g}"


def _r_nonfinite(value: float) -> str:
    """R's spelling of non-finite numbers: NaN, Inf, -Inf."""
    return "NaN" if np.isnan(value) else ("Inf" if value > 0 else "-Inf")


def _fixed3(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else _r_nonfinite(value)


def _format_p(p_value: float) -> str:
    """Like R's format.pval with 3 digits: tiny values print as '<2e-16'."""
    if np.isnan(p_value):
        return "NaN"
    if p_value < 2e-16:
        return "<2e-16"
    return f"{p_value:.3g}"
