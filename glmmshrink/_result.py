"""The result object of ``fit_glmm``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def mean_sd_text(values, fitted) -> str:
    """``"mean m  sd s"`` of ``values`` over the ``fitted`` datasets, for a batch's repr."""
    if not np.any(fitted):
        return "mean nan  sd nan"
    return f"mean {np.mean(values[fitted]):.4f}  sd {np.std(values[fitted]):.4f}"


@dataclass(frozen=True, repr=False)
class GlmmFit:
    """Estimates of ``glmer(cbind(y, n - y) ~ (1 | g), family = binomial)`` for R datasets.

    Arrays have a leading replicate dimension R, dropped when one dataset was fitted.

    Attributes
    ----------
    beta, sigma : ndarray, shape (R,)
        Fixed intercept (logit scale) and random-intercept SD (0 exactly at a boundary fit).
    beta_se : ndarray, shape (R,)
        Standard error of beta as lme4's default ``vcov`` (inverse Hessian of the objective over
        (beta, sigma), beta block); the binomial GLM's SE at sigma = 0; NaN unless converged.
    b : ndarray, shape (R, G)
        Conditional modes on the logit scale (lme4's ``ranef``); NaN for padding groups.
    b_sd : ndarray, shape (R, G)
        Conditional SDs, the square root of lme4's ``condVar``: sigma / sqrt(1 + sigma^2 n p (1-p)).
    p_hat : ndarray, shape (R, G)
        Group estimates expit(beta + b).
    loglik : ndarray, shape (R,)
        Laplace (or AGQ) log-likelihood including sum log C(n_i, y_i), lme4's convention for
        aggregated binomial data.
    converged, singular, separated : ndarray of bool, shape (R,)
        Optimiser success; sigma < 1e-4 (lme4's ``isSingular``); all trials failed or succeeded.
    max_grad : ndarray, shape (R,)
        Largest absolute gradient component in (beta, sigma) at the returned estimate.
    n_iter : ndarray of int, shape (R,)
        Outer (Newton) iterations used; for AGQ those of its Laplace start plus its own.
    nagq : int
        Quadrature nodes per group (1 = Laplace).
    n_groups : ndarray of int, shape (R,)
        Non-padding groups per dataset.
    """

    beta: np.ndarray
    beta_se: np.ndarray
    sigma: np.ndarray
    b: np.ndarray
    b_sd: np.ndarray
    p_hat: np.ndarray
    loglik: np.ndarray
    converged: np.ndarray
    singular: np.ndarray
    separated: np.ndarray
    max_grad: np.ndarray
    n_iter: np.ndarray
    nagq: int
    n_groups: np.ndarray

    @property
    def method(self) -> str:
        if self.nagq == 1:
            return "Laplace Approximation"
        return f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}"

    def __repr__(self) -> str:
        header = (
            "Generalized linear mixed model fit by maximum likelihood "
            f"({self.method}) [glmmshrink]\n"
            " Family: binomial  ( logit )\n"
            "Formula: cbind(y, n - y) ~ 1 + (1 | group)\n"
        )
        if np.ndim(self.beta) == 0:
            return header + self._one_fit_summary()
        return header + self._batch_summary()

    def _notes(self, converged, singular, separated, max_grad):
        if separated:
            return "separation: all trials failed or all succeeded; no finite estimate of beta"
        notes = [] if converged else [f"failed to converge (max|grad| = {max_grad:.2g})"]
        if singular:
            notes.append("boundary (singular) fit: see help('isSingular')")
        return "; ".join(notes) if notes else "converged"

    def _one_fit_summary(self) -> str:
        notes = self._notes(self.converged, self.singular, self.separated, self.max_grad)
        return (
            f"   logLik {self.loglik:.4f}   max|grad| {self.max_grad:.2g}   iterations {self.n_iter}\n"
            "Random effects:\n"
            " Groups Name        Std.Dev.\n"
            f" group  (Intercept) {self.sigma:.4f}\n"
            f"Number of groups: {self.n_groups}\n"
            "Fixed effects:\n"
            "            Estimate Std. Error\n"
            f"(Intercept) {self.beta:8.4f} {self.beta_se:10.4f}\n"
            f"Note: {notes}"
        )

    def _batch_summary(self) -> str:
        fitted = ~self.separated
        return (
            f"{self.beta.size} datasets: {int(self.converged.sum())} converged, "
            f"{int(self.singular.sum())} singular, {int(self.separated.sum())} separated\n"
            f"  beta  mean {np.mean(self.beta[fitted]) if fitted.any() else np.nan:.4f}"
            f"  sd {np.std(self.beta[fitted]) if fitted.any() else np.nan:.4f}\n"
            f"  sigma mean {np.mean(self.sigma[fitted]) if fitted.any() else np.nan:.4f}"
            f"  sd {np.std(self.sigma[fitted]) if fitted.any() else np.nan:.4f}"
        )
