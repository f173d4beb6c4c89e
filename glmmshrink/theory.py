"""Predicted shrinkage of binomial GLMM group estimates for known (beta, sigma, n).

Model: y ~ Binomial(n, p), logit(p) = beta + b, b ~ N(0, sigma^2). Three predictions:

(a) The exact conditional-mode map y -> expit(beta + b_hat(y)), where b_hat solves
    y - n expit(beta + b) - b / sigma^2 = 0 (the group's PIRLS equation, Bates et al. 2015,
    J. Stat. Softw. 67(1)); at a fit's (beta, sigma) it reproduces ``fit_glmm``'s estimates.
(b) Its linear approximation on the logit scale,
    beta + B (logit(y / n) - beta),   B = sigma^2 / (sigma^2 + 1 / (n p (1 - p))),  p = expit(beta):
    the normal-normal posterior mean (Efron & Morris 1975, JASA 70(350), 311-319; Morris 1983,
    JASA 78(381), 47-55, eq. 1.3; Gelman & Hill 2007, "Data Analysis Using Regression and
    Multilevel/Hierarchical Models", section 12.2, the partial-pooling formula) applied to the
    empirical logit, whose delta-method sampling variance is 1 / (n p (1 - p)) at p = expit(beta).
(c) The RMSE of the raw proportion y / n and of the map (a), averaged exactly over
    p ~ logit-normal(beta, sigma) (Gauss-Hermite) and y ~ Binomial(n, p) (sum over y = 0..n).

The predictions use the true (beta, sigma): they show the shrinkage the model implies, free of
estimation noise in the hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from glmmshrink._modes import conditional_modes

try:
    # The ufunc that scipy.stats.binom.pmf evaluates inside the support (Boost's binomial pmf);
    # importing scipy.stats for it costs about 1 s of CPU in every summary and figure job.
    from scipy.special._ufuncs import _binom_pmf
except ImportError:  # pragma: no cover - a SciPy without it
    _binom_pmf = None


def _binomial_pmf(y, n, p):
    """binom.pmf(y, n, p) for whole y in 0..n, whole n >= 1 and p in [0, 1] (the only calls).

    Bit for bit what ``scipy.stats.binom.pmf`` returns there: that method checks its arguments,
    calls the same ufunc in float64 and clips the result to [0, 1].
    """
    if _binom_pmf is None:  # pragma: no cover
        from scipy.stats import binom

        return binom.pmf(y, n, p)
    pmf = _binom_pmf(np.asarray(y, np.float64), np.asarray(n, np.float64),
                     np.asarray(p, np.float64))
    return np.clip(pmf, 0.0, 1.0)

MARGINAL_NODES = 60  # Gauss-Hermite nodes over b ~ N(0, sigma^2); exact to ~1e-12 for sigma <= 3


def _check_parameters(beta, sigma):
    beta, sigma = np.asarray(beta, float), np.asarray(sigma, float)
    if not np.all(np.isfinite(beta)):
        raise ValueError("beta must be finite")
    if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise ValueError("sigma must be finite and >= 0")
    return beta, sigma


def _check_counts(y, n):
    y, n = np.asarray(y, float), np.asarray(n, float)
    if np.any(n < 1) or np.any(n != np.round(n)):
        raise ValueError("n must be whole numbers >= 1")
    if np.any(y < 0) or np.any(y > n) or np.any(y != np.round(y)):
        raise ValueError("y must be whole numbers between 0 and n")
    return y, n


def conditional_mode(y, n, beta, sigma):
    """Exact conditional mode b_hat of the random intercept for known (beta, sigma).

    Solves y - n expit(beta + b) - b / sigma^2 = 0 (strictly decreasing in b, root in
    [-sigma^2 (n - y), sigma^2 y]) by safeguarded Newton steps, elementwise over broadcast inputs.
    sigma = 0 gives b_hat = 0.
    """
    y, n = _check_counts(y, n)
    beta, sigma = _check_parameters(beta, sigma)
    u, _ = conditional_modes(beta, sigma, y, n)
    return sigma * u


def exact_map(y, n, beta, sigma):
    """(a) The Laplace group estimate expit(beta + b_hat(y)) for known (beta, sigma)."""
    return expit(np.asarray(beta, float) + conditional_mode(y, n, beta, sigma))


def empirical_logit(y, n):
    """logit(y / n), with the 0.5 correction log((y + 1/2) / (n - y + 1/2)) at y = 0 and y = n.

    The correction (Haldane 1956, Ann. Hum. Genet. 20; Cox & Snell 1989, "Analysis of Binary Data",
    section 3.2) keeps the empirical logit finite where logit(y / n) is -inf or +inf.
    """
    y, n = _check_counts(y, n)
    boundary = (y == 0) | (y == n)
    with np.errstate(divide="ignore"):
        raw = logit(y / n)
    return np.where(boundary, np.log((y + 0.5) / (n - y + 0.5)), raw)


def shrinkage_factor(n, beta, sigma):
    """B = sigma^2 / (sigma^2 + 1 / (n p (1 - p))) with p = expit(beta) (Morris 1983, eq. 1.3)."""
    beta, sigma = _check_parameters(beta, sigma)
    p = expit(beta)
    return sigma**2 / (sigma**2 + 1.0 / (np.asarray(n, float) * p * (1.0 - p)))


def linear_map(y, n, beta, sigma):
    """(b) The linear approximation expit(beta + B (empirical_logit(y, n) - beta))."""
    beta = np.asarray(beta, float)
    return expit(beta + shrinkage_factor(n, beta, sigma) * (empirical_logit(y, n) - beta))


@dataclass(frozen=True)
class ShrinkageCurve:
    """Both maps over y = 0..n for one n, with the marginal probability of each y."""

    proportion: np.ndarray
    exact: np.ndarray
    linear: np.ndarray
    probability: np.ndarray

    def __repr__(self):
        return (f"ShrinkageCurve(n={self.proportion.size - 1}, exact estimate "
                f"{self.exact[0]:.3f}..{self.exact[-1]:.3f} over proportion 0..1)")


def _marginal_nodes(beta, sigma):
    """Nodes p_k and weights of p = expit(beta + b), b ~ N(0, sigma^2), by Gauss-Hermite."""
    x, w = np.polynomial.hermite.hermgauss(MARGINAL_NODES)
    return expit(beta + np.sqrt(2.0) * sigma * x), w / np.sqrt(np.pi)


def shrinkage_curve(beta, sigma, n):
    """Exact and linear maps at every y = 0..n, and P(y) under the model (scalars in)."""
    beta, sigma = (float(v) for v in _check_parameters(beta, sigma))
    n = int(_check_counts(0, n)[1])
    y = np.arange(n + 1)
    p, w = _marginal_nodes(beta, sigma)
    probability = (w[:, None] * _binomial_pmf(y[None, :], n, p[:, None])).sum(axis=0)
    return ShrinkageCurve(y / n, exact_map(y, n, beta, sigma), linear_map(y, n, beta, sigma), probability)


@dataclass(frozen=True)
class RmseGain:
    """(c) RMSE of the raw proportion and of the shrunken (conditional-mode) estimate, and their ratio."""

    rmse_raw: float
    rmse_shrunk: float
    ratio: float

    def __repr__(self):
        return (f"RmseGain(raw {self.rmse_raw:.4f}, shrunk {self.rmse_shrunk:.4f}, "
                f"ratio {self.ratio:.3f})")


def _group_sizes(n):
    sizes = np.atleast_1d(np.asarray(n))
    if sizes.ndim != 1 or sizes.size == 0:
        raise ValueError("n must be a positive integer or a 1-D array of group sizes")
    _check_counts(np.zeros(sizes.shape), sizes)
    return sizes.astype(np.int64)


def predicted_rmse(beta, sigma, n):
    """Expected RMSE of y / n and of the exact map (a) as estimates of p, for known (beta, sigma).

    Parameters
    ----------
    beta, sigma : float
        True intercept and random-intercept SD.
    n : int or 1-D array of int
        Trials per group; an array gives the RMSE over groups of those sizes (equally weighted),
        e.g. an unbalanced design.

    Returns
    -------
    RmseGain

    Notes
    -----
    MSE = E_p sum_y Bin(y | n, p) (estimate(y) - p)^2 with p = expit(beta + b), b ~ N(0, sigma^2)
    integrated by Gauss-Hermite and the y-sum exact; for the raw proportion it is E[p (1 - p)] / n.
    """
    beta, sigma = (float(v) for v in _check_parameters(beta, sigma))
    p, w = _marginal_nodes(beta, sigma)
    sizes = _group_sizes(n)
    mse_raw, mse_shrunk = 0.0, 0.0
    for size, count in zip(*np.unique(sizes, return_counts=True)):
        y = np.arange(size + 1)
        pmf = _binomial_pmf(y[None, :], size, p[:, None])  # (nodes, y)
        estimate = exact_map(y, size, beta, sigma)
        share = count / sizes.size
        mse_raw += share * (w * p * (1.0 - p)).sum() / size
        mse_shrunk += share * (w[:, None] * pmf * (estimate[None, :] - p[:, None]) ** 2).sum()
    rmse_raw, rmse_shrunk = np.sqrt(mse_raw), np.sqrt(mse_shrunk)
    return RmseGain(float(rmse_raw), float(rmse_shrunk), float(rmse_shrunk / rmse_raw))


def predicted_shrinkage_slope(beta, sigma, n):
    """Slope of the least-squares line of the exact-map estimate on y / n, weighted by P(y).

    This is the population version of the regression of the group estimate on the observed
    proportion: Cov(estimate, y / n) / Var(y / n) under the marginal distribution of y
    (p ~ logit-normal(beta, sigma), y | p ~ Binomial(n, p)). 1 means no shrinkage, 0 full pooling.
    An array ``n`` pools groups of those sizes, equally weighted. sigma = 0 gives 0.
    """
    beta, sigma = (float(v) for v in _check_parameters(beta, sigma))
    sizes = _group_sizes(n)
    if sigma == 0.0:
        # Full pooling: every estimate is expit(beta), so the slope is exactly 0 (the weighted
        # sums below would leave round-off of either sign).
        return 0.0
    proportions, estimates, weights = [], [], []
    for size, count in zip(*np.unique(sizes, return_counts=True)):
        curve = shrinkage_curve(beta, sigma, size)
        proportions.append(curve.proportion)
        estimates.append(curve.exact)
        weights.append(curve.probability * count / sizes.size)
    x, e, w = (np.concatenate(a) for a in (proportions, estimates, weights))
    w = w / w.sum()
    x_centred = x - (w * x).sum()
    return float((w * x_centred * (e - (w * e).sum())).sum() / (w * x_centred**2).sum())
