"""Interval estimates and the boundary likelihood-ratio test that the study's methods report.

- :func:`wilson_interval`: the score interval for a binomial proportion (the ``raw`` method);
- :func:`wald_interval`: estimate +- z SE (beta of the likelihood fits, with lme4's ``vcov`` SE);
- :func:`conditional_mode_interval`: expit(beta-hat + b-hat_i +- z b_sd_i), the interval users
  build from lme4's ``ranef`` and ``condVar``;
- :func:`binomial_null_loglik`: the log-likelihood at sigma = 0, the binomial GLM's;
- :func:`boundary_lrt_statistic` and :func:`boundary_lrt_pvalue`: the likelihood-ratio test of
  sigma = 0 against sigma > 0 with the 50:50 mixture of chi^2_0 and chi^2_1 as null distribution.

Everything is vectorised numpy over leading replicate dimensions. Non-finite inputs (a separated
fit's infinite beta, a failed fit's NaN) give NaN interval ends, so the measures in
:mod:`glmmshrink.measures` leave them out and count them.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, xlog1py, xlogy
from scipy.special import erfc, ndtri

from glmmshrink._objective import log_choose
from glmmshrink._validate import as_counts

NOMINAL_LEVEL = 0.95
LRT_TOLERANCE = 1e-6  # |2 (l - l0)| below this is optimiser round-off at a boundary fit


def critical_value(level: float = NOMINAL_LEVEL) -> float:
    """Two-sided standard-normal quantile z_{(1 + level) / 2} (1.959964 at level 0.95)."""
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    return float(ndtri(0.5 + 0.5 * float(level)))  # the standard normal quantile


def wilson_interval(y, n, level: float = NOMINAL_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion, elementwise.

    Parameters
    ----------
    y, n : array_like of int
        Successes and trials, any matching shape; ``n == 0`` (padding) gives NaN ends.
    level : float
        Nominal coverage.

    Returns
    -------
    lower, upper : ndarray
        (c - h, c + h) with c = (y + z^2/2) / (n + z^2) and
        h = z / (n + z^2) sqrt(y (n - y) / n + z^2 / 4) (Wilson 1927, JASA 22:209, eq. for the
        limits of the inverted score test). At y = 0 the lower end is exactly 0 and at y = n the
        upper end exactly 1.

    Notes
    -----
    Wilson's interval inverts the score test, so it is never empty or degenerate at y = 0 or
    y = n (the Wald interval y/n +- z sqrt(p(1-p)/n) has zero width there). Brown, Cai & DasGupta
    (2001, Stat. Sci. 16:101) recommend it for n <= 40 for coverage close to nominal
    on average over p, whereas Clopper-Pearson's exact interval is conservative. The study's
    ``raw`` method uses it as the interval a user would attach to y/n alone.
    """
    z = critical_value(level)
    y, n = np.asarray(y, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if y.shape != n.shape:
        raise ValueError(f"y and n must have the same shape, got {y.shape} and {n.shape}")
    if np.any(~np.isfinite(y)) or np.any(~np.isfinite(n)) or np.any(n < 0) or np.any(y < 0) or np.any(y > n):
        raise ValueError("y and n must be finite counts with 0 <= y <= n")
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (y + z**2 / 2) / (n + z**2)
        half = z / (n + z**2) * np.sqrt(y * (n - y) / n + z**2 / 4)
    # The formula gives 0 and 1 at the boundaries up to round-off; pin them exactly.
    lower = np.where(y == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    upper = np.where(y == n, 1.0, np.clip(centre + half, 0.0, 1.0))
    padding = n == 0
    return np.where(padding, np.nan, lower), np.where(padding, np.nan, upper)


def _all_finite(*arrays) -> np.ndarray:
    return np.logical_and.reduce([np.isfinite(a) for a in arrays])


def wald_interval(estimate, se, level: float = NOMINAL_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wald interval estimate -+ z_{(1 + level)/2} se, elementwise.

    For beta of the likelihood fits, ``se`` is lme4's default ``vcov`` SE (``use.hessian = TRUE``).
    A non-finite estimate or SE gives NaN ends; a negative SE is an error.
    """
    z = critical_value(level)
    estimate, se = np.broadcast_arrays(np.asarray(estimate, np.float64), np.asarray(se, np.float64))
    if np.any(se < 0):
        raise ValueError("standard errors must be >= 0")
    usable = _all_finite(estimate, se)
    return (np.where(usable, estimate - z * se, np.nan), np.where(usable, estimate + z * se, np.nan))


def conditional_mode_interval(beta, b, b_sd, level: float = NOMINAL_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The p-scale interval built from lme4's ``ranef`` and ``condVar``: expit(beta + b -+ z b_sd).

    Parameters
    ----------
    beta : array_like, shape (R,) or scalar
        Fixed intercept of each replicate (logit scale).
    b, b_sd : array_like, shape (R, G) or (G,)
        Conditional modes and conditional SDs (sqrt of ``condVar``) of the random intercepts.
    level : float
        Nominal level of the normal interval on the logit scale.

    Returns
    -------
    lower, upper : ndarray, shape of ``b``
        Mapped through expit, which is monotone, so the p-scale interval has the same nominal
        level as the logit-scale one. It conditions on beta-hat and sigma-hat (it ignores
        their uncertainty) and treats b_i | y as normal: both make it too narrow (Booth &
        Hobert 1998, JASA 93:262). Non-finite inputs (separated fits) give NaN ends; a
        singular fit (sigma-hat = 0, b_sd = 0) gives a zero-width interval.
    """
    z = critical_value(level)
    b, b_sd = np.asarray(b, np.float64), np.asarray(b_sd, np.float64)
    beta = np.asarray(beta, np.float64)
    if b.shape != b_sd.shape:
        raise ValueError(f"b and b_sd must have the same shape, got {b.shape} and {b_sd.shape}")
    if beta.ndim == b.ndim - 1 and beta.ndim > 0:
        beta = beta[..., None]  # one beta per replicate, shared by its groups
    if np.any(b_sd < 0):
        raise ValueError("b_sd must be >= 0")
    beta, b, b_sd = np.broadcast_arrays(beta, b, b_sd)
    usable = _all_finite(beta, b, b_sd)
    centre = beta + b
    return (np.where(usable, expit(centre - z * b_sd), np.nan),
            np.where(usable, expit(centre + z * b_sd), np.nan))


def binomial_null_loglik(y, n) -> np.ndarray:
    """Log-likelihood at sigma = 0: the binomial GLM with one p = sum(y) / sum(n) per dataset.

    Parameters
    ----------
    y, n : array_like of int, shape (G,) or (R, G)
        Successes and trials; groups with ``n == 0`` are padding and contribute nothing.

    Returns
    -------
    ndarray, shape (R,), or float for one dataset
        sum_i [log C(n_i, y_i) + y_i log p + (n_i - y_i) log(1 - p)], including the constant
        sum log C(n_i, y_i) as lme4 and ``fit_glmm`` do for aggregated binomial data, so it equals
        ``fit_glmm``'s ``loglik`` at a singular fit (Laplace and AGQ are exact at sigma = 0).
        A separated dataset (p = 0 or 1) gives sum log C(n_i, y_i) = 0.
    """
    y, n, was_1d = as_counts(y, n)
    pooled = y.sum(axis=1, keepdims=True) / n.sum(axis=1, keepdims=True)
    per_group = log_choose(n, y) + xlogy(y, pooled) + xlog1py(n - y, -pooled)
    loglik = per_group.sum(axis=1)
    return float(loglik[0]) if was_1d else loglik


def boundary_lrt_statistic(loglik, loglik_null, tolerance: float = LRT_TOLERANCE) -> np.ndarray:
    """Likelihood-ratio statistic T = 2 (l - l0) for sigma = 0, elementwise.

    A fit maximises l over sigma >= 0, which includes sigma = 0, so T >= 0 up to round-off. At a
    singular fit (sigma-hat = 0) l equals l0 but the two sums are accumulated differently, so T is
    +-1e-12 rather than 0: |T| <= ``tolerance`` is set to exactly 0, giving such fits p = 1. A
    clearly negative T means the fit stopped below the null likelihood (a failed optimisation);
    it gives NaN, so the test leaves it out and counts it. Non-finite log-likelihoods give NaN.
    """
    statistic = 2.0 * (np.asarray(loglik, np.float64) - np.asarray(loglik_null, np.float64))
    statistic = np.where(np.abs(statistic) <= tolerance, 0.0, statistic)
    return np.where(np.isfinite(statistic) & (statistic >= 0), statistic, np.nan)


def boundary_lrt_pvalue(loglik, loglik_null, tolerance: float = LRT_TOLERANCE) -> np.ndarray:
    """p-value of the likelihood-ratio test of sigma = 0 against sigma > 0, elementwise.

    Under H0 the parameter sits on the boundary of sigma >= 0 and T = 2 (l - l0) follows the
    50:50 mixture of chi^2_0 (a point mass at 0) and chi^2_1 (Self & Liang 1987, JASA 82:605;
    Stram & Lee 1994, Biometrics 50:1171). Hence p = 0.5 P(chi^2_1 > T) for T > 0 and
    p = 1 for T = 0; the 5 % test rejects when T > chi^2_1 quantile 0.90 = 2.706. NaN where
    :func:`boundary_lrt_statistic` is NaN.
    """
    statistic = boundary_lrt_statistic(loglik, loglik_null, tolerance)
    with np.errstate(invalid="ignore"):
        # P(chi2_1 > T) = P(|Z| > sqrt(T)) = erfc(sqrt(T / 2)).
        pvalue = np.where(statistic > 0, 0.5 * erfc(np.sqrt(statistic / 2)), 1.0)
    return np.where(np.isnan(statistic), np.nan, pvalue)
