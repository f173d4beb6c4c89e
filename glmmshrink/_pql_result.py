"""The result object of ``fit_pql``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glmmshrink._result import mean_sd_text


@dataclass(frozen=True, repr=False)
class PqlFit:
    """Estimates of ``glmmPQL(result ~ 1, random = ~ 1 | g, family = binomial)`` for R datasets.

    Arrays have a leading replicate dimension R, dropped when one dataset was fitted.

    Attributes
    ----------
    beta, sigma : ndarray, shape (R,)
        Fixed intercept (logit scale) and random-intercept SD (0 exactly at a boundary fit).
    residual_sd : ndarray, shape (R,)
        sqrt of the working LMM's estimated dispersion phi (nlme's ``fit$sigma``); 1 under the
        binomial model.
    b : ndarray, shape (R, G)
        BLUPs of the random intercepts (``ranef``); NaN for padding groups.
    b_sd : ndarray, shape (R, G)
        Conditional SD of b_i in the final working LMM, (1/sigma^2 + n_i p_i (1 - p_i)/phi)^-1/2
        with p_i = p_hat_i: what the conditional-mode interval of p_i uses. 0 where sigma = 0.
    p_hat : ndarray, shape (R, G)
        Group estimates expit(beta + b).
    converged, separated : ndarray of bool, shape (R,)
        Reached the fixed point; all trials failed or all succeeded (no finite estimate).
    damped : ndarray of bool, shape (R,)
        Some update was damped or capped, not glmmPQL's plain eta <- beta + b. It is set on every
        reference dataset on which glmmPQL's own iteration cycles (there ``MASS::glmmPQL`` returns
        an arbitrary iterate) and on a few where the plain iteration would still have converged.
    n_iter : ndarray of int, shape (R,)
        Working LMM fits (glmmPQL's iterations).
    n_groups : ndarray of int, shape (R,)
        Non-padding groups per dataset.
    """

    beta: np.ndarray
    sigma: np.ndarray
    residual_sd: np.ndarray
    b: np.ndarray
    b_sd: np.ndarray
    p_hat: np.ndarray
    converged: np.ndarray
    separated: np.ndarray
    damped: np.ndarray
    n_iter: np.ndarray
    n_groups: np.ndarray

    def __repr__(self) -> str:
        header = (
            "Linear mixed-effects model fit by penalized quasi-likelihood (glmmPQL fixed point) "
            "[glmmshrink]\n Family: binomial  ( logit )\nFormula: result ~ 1 + (1 | group)\n"
        )
        if np.ndim(self.beta) == 0:
            note = ("separation: all trials failed or all succeeded" if self.separated
                    else "did not reach the fixed point" if not self.converged
                    else "converged with damped steps (glmmPQL's own iteration may cycle here)"
                    if self.damped else "converged")
            return header + (
                "Random effects:\n Groups   Name        Std.Dev.\n"
                f" group    (Intercept) {self.sigma:.4f}\n"
                f" Residual             {self.residual_sd:.4f}\n"
                f"Number of groups: {self.n_groups}\n"
                f"Fixed effects:\n            Estimate\n(Intercept) {self.beta:8.4f}\n"
                f"Iterations: {self.n_iter}\nNote: {note}"
            )
        fitted = ~self.separated

        def mean_sd(values):
            return mean_sd_text(values, fitted)

        return header + (
            f"{self.beta.size} datasets: {int(self.converged.sum())} converged "
            f"({int((self.converged & self.damped).sum())} with damped steps), "
            f"{int((fitted & (self.sigma == 0)).sum())} at sigma = 0, "
            f"{int(self.separated.sum())} separated\n"
            f"  beta  {mean_sd(self.beta)}\n  sigma {mean_sd(self.sigma)}\n"
            f"  residual_sd {mean_sd(self.residual_sd)}"
        )
