"""Performance measures of a simulation study, each with its Monte Carlo standard error.

The formulas follow rsimsum's code (``R/performance.R``; Gasparini 2018, JOSS 3(26):739) and
Morris, White & Crowther (2019), "Using simulation studies to evaluate statistical methods",
Stat. Med. 38:2074-2102, Table 6. With ``n`` replicates, estimates ``theta_hat_k`` and true
value ``theta``:

- bias = mean(theta_hat) - theta, MCSE = sqrt(sum((theta_hat - mean)^2) / (n (n - 1)));
- EmpSE = sd(theta_hat), MCSE = EmpSE / sqrt(2 (n - 1));
- MSE = mean((theta_hat - theta)^2), MCSE = sqrt(sum(((theta_hat - theta)^2 - MSE)^2) / (n (n - 1)));
- a proportion C (coverage, or here a rate of fit failures), MCSE = sqrt(C (1 - C) / n).

- ModSE = sqrt(mean(se^2)) and its relative error against EmpSE, with rsimsum's MCSEs (see the
  comment above :func:`modelse` for the source lines);
- coverage and mean width of intervals, per replicate (beta) or over groups with the replicate as
  the cluster (p); the rejection rate of a test, MCSE sqrt(r (1 - r) / n).

RMSE is reported as sqrt(MSE) with the delta-method MCSE, MCSE(MSE) / (2 RMSE).
Non-finite estimates (a separated fit's infinite beta, a failed fit's NaN) are left out and the
number of replicates used is returned with every measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Measure:
    """A performance measure, its Monte Carlo SE and how many replicates it used."""

    value: float
    mcse: float
    n_used: int

    def __repr__(self) -> str:
        return f"Measure({self.value:.6g} ± {self.mcse:.2g} MCSE, n_used={self.n_used})"


def _finite(estimates) -> np.ndarray:
    values = np.asarray(estimates, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def bias(estimates, true_value: float) -> Measure:
    """Bias, mean(theta_hat) - theta, with MCSE sqrt(sum((theta_hat - mean)^2) / (n (n - 1)))."""
    values = _finite(estimates)
    n = values.size
    if n == 0:
        return Measure(np.nan, np.nan, 0)
    mean = values.mean()
    mcse = np.sqrt(np.sum((values - mean) ** 2) / (n * (n - 1))) if n > 1 else np.nan
    return Measure(float(mean - true_value), float(mcse), n)


def empirical_se(estimates) -> Measure:
    """Empirical SE, sd(theta_hat) with divisor n - 1, with MCSE EmpSE / sqrt(2 (n - 1))."""
    values = _finite(estimates)
    n = values.size
    if n < 2:
        return Measure(np.nan, np.nan, n)
    empse = values.std(ddof=1)
    return Measure(float(empse), float(empse / np.sqrt(2 * (n - 1))), n)


def mse(estimates, true_value) -> Measure:
    """Mean squared error with MCSE sqrt(sum((e^2 - MSE)^2) / (n (n - 1))), e = theta_hat - theta."""
    errors = np.asarray(estimates, dtype=np.float64).ravel() - np.asarray(true_value).ravel()
    squared = _finite(errors**2)
    n = squared.size
    if n == 0:
        return Measure(np.nan, np.nan, 0)
    value = squared.mean()
    mcse = np.sqrt(np.sum((squared - value) ** 2) / (n * (n - 1))) if n > 1 else np.nan
    return Measure(float(value), float(mcse), n)


def _rmse_from_mse(of_mse: Measure) -> Measure:
    rmse = np.sqrt(of_mse.value)
    # Delta method: d sqrt(m) / dm = 1 / (2 sqrt(m)).
    mcse = of_mse.mcse / (2 * rmse) if rmse > 0 else np.nan
    return Measure(float(rmse), float(mcse), of_mse.n_used)


def rmse(estimates, true_value) -> Measure:
    """Root mean squared error sqrt(MSE), MCSE by the delta method from the MSE's MCSE."""
    return _rmse_from_mse(mse(estimates, true_value))


def proportion(events) -> Measure:
    """Share of replicates with an event (e.g. a singular fit), MCSE sqrt(C (1 - C) / n)."""
    flags = np.asarray(events, dtype=bool).ravel()
    n = flags.size
    if n == 0:
        return Measure(np.nan, np.nan, 0)
    rate = flags.mean()
    return Measure(float(rate), float(np.sqrt(rate * (1 - rate) / n)), n)


def replicate_mse(estimates, truth) -> np.ndarray:
    """Per-replicate mean squared error over groups, shape (R,), from (R, G) arrays.

    Groups within one replicate share beta-hat and sigma-hat, so their errors are correlated;
    treating each replicate's mean as one independent draw gives an honest MCSE.
    """
    errors = np.asarray(estimates, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return np.mean(errors**2, axis=1)


def rmse_of_replicate_mse(per_replicate_mse) -> Measure:
    """RMSE of group estimates from per-replicate MSEs (mean over replicates, delta-method MCSE)."""
    values = _finite(per_replicate_mse)
    n = values.size
    if n == 0:
        return Measure(np.nan, np.nan, 0)
    value = values.mean()
    mcse = values.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    return _rmse_from_mse(Measure(float(value), float(mcse), n))


def rmse_ratio(per_replicate_mse, reference_mse) -> Measure:
    """RMSE of a method over the RMSE of a reference, both from paired per-replicate MSEs.

    The ratio of means a/b has delta-method variance
    (var(a)/b^2 - 2 a cov(a, b)/b^3 + a^2 var(b)/b^4) / n (e.g. Casella & Berger 2002, 5.5.4);
    the square root then halves the relative MCSE.
    """
    a_all = np.asarray(per_replicate_mse, dtype=np.float64).ravel()
    b_all = np.asarray(reference_mse, dtype=np.float64).ravel()
    keep = np.isfinite(a_all) & np.isfinite(b_all)
    a, b = a_all[keep], b_all[keep]
    n = a.size
    if n < 2 or b.mean() <= 0:
        return Measure(np.nan, np.nan, n)
    a_mean, b_mean = a.mean(), b.mean()
    covariance = np.cov(a, b, ddof=1)
    ratio = a_mean / b_mean
    ratio_var = (
        covariance[0, 0] / b_mean**2
        - 2 * a_mean * covariance[0, 1] / b_mean**3
        + a_mean**2 * covariance[1, 1] / b_mean**4
    ) / n
    root = np.sqrt(ratio)
    mcse = np.sqrt(max(ratio_var, 0.0)) / (2 * root) if root > 0 else np.nan
    return Measure(float(root), float(mcse), n)


def replicate_slopes(estimates, observed) -> np.ndarray:
    """Least-squares slope of estimates on observed proportions within each replicate, shape (R,).

    A slope of 1 means no shrinkage; the raw proportion gives exactly 1. Replicates whose
    observed proportions do not vary, or whose estimates are not finite, give NaN.
    """
    estimates = np.asarray(estimates, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    observed_dev = observed - observed.mean(axis=1, keepdims=True)
    estimate_dev = estimates - estimates.mean(axis=1, keepdims=True)
    spread = np.sum(observed_dev * observed_dev, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.sum(observed_dev * estimate_dev, axis=1) / spread
    varies = observed.max(axis=1) > observed.min(axis=1)
    return np.where(varies, slopes, np.nan)


def mean_with_mcse(values) -> Measure:
    """Mean of finite per-replicate values with MCSE sd / sqrt(n)."""
    finite = _finite(values)
    n = finite.size
    if n == 0:
        return Measure(np.nan, np.nan, 0)
    mcse = finite.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    return Measure(float(finite.mean()), float(mcse), n)


def clustered_mean(values, clusters) -> tuple[float, float]:
    """Mean of ``values`` and its SE when observations within a cluster (replicate) correlate.

    Ratio estimator sum(s_r) / sum(c_r) over clusters r with sums s_r and counts c_r; its
    linearised variance is R / (R - 1) * sum((s_r - mean c_r)^2) / (sum c_r)^2
    (Cochran 1977, Sampling Techniques, eq. 6.13).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    clusters = np.asarray(clusters).ravel()
    keep = np.isfinite(values)
    values, clusters = values[keep], clusters[keep]
    if values.size == 0:
        return np.nan, np.nan
    _, cluster_index = np.unique(clusters, return_inverse=True)
    sums = np.bincount(cluster_index, weights=values)
    counts = np.bincount(cluster_index).astype(np.float64)
    mean = sums.sum() / counts.sum()
    n_clusters = sums.size
    if n_clusters < 2:
        return float(mean), np.nan
    variance = n_clusters / (n_clusters - 1) * np.sum((sums - mean * counts) ** 2) / counts.sum() ** 2
    return float(mean), float(np.sqrt(variance))


# Interval estimands. rsimsum's R/performance.R (ellessenne/rsimsum, commit 6041ba7), with nsim
# the replicates whose estimate and SE are both present:
#   modelse       = sqrt(mean(se^2))                                         (line 81)
#   modelse MCSE  = sqrt(var(se^2) / (4 nsim modelse^2))                     (line 213)
#   relerror      = 100 (modelse / empse - 1)                                (line 85)
#   relerror MCSE = 100 (modelse / empse)
#                   * sqrt(var(se^2) / (4 nsim modelse^4) + 1 / (2 (nsim - 1)))  (lines 216-218)
#   cover MCSE    = sqrt(cover (1 - cover) / nsim)                           (line 221)
# var() has divisor nsim - 1, as R's.


def _paired_finite(estimates, standard_errors) -> tuple[np.ndarray, np.ndarray]:
    estimates = np.asarray(estimates, dtype=np.float64).ravel()
    standard_errors = np.asarray(standard_errors, dtype=np.float64).ravel()
    if estimates.shape != standard_errors.shape:
        raise ValueError(f"estimates and standard errors differ in length: "
                         f"{estimates.size} and {standard_errors.size}")
    if np.any(standard_errors < 0):
        raise ValueError("standard errors must be >= 0")
    keep = np.isfinite(estimates) & np.isfinite(standard_errors)
    return estimates[keep], standard_errors[keep]


def modelse(estimates, standard_errors) -> Measure:
    """Average model-based SE, rsimsum's root mean squared SE sqrt(mean(se^2)), with its MCSE.

    rsimsum (R/performance.R) and Morris et al. (2019, Table 6) average the model variances and
    take the root; the plain mean of SEs is smaller by Jensen's inequality. MCSE
    sqrt(var(se^2) / (4 n ModSE^2)) (delta method, rsimsum line 213). Only replicates whose
    estimate and SE are both finite count (rsimsum's ``nsim``).
    """
    _, se = _paired_finite(estimates, standard_errors)
    n = se.size
    if n == 0:
        return Measure(np.nan, np.nan, 0)
    value = np.sqrt(np.mean(se**2))
    if n < 2 or value == 0:
        return Measure(float(value), np.nan, n)
    mcse = np.sqrt(np.var(se**2, ddof=1) / (4 * n * value**2))
    return Measure(float(value), float(mcse), n)


def relerror_modelse(estimates, standard_errors) -> Measure:
    """Relative % error of the model-based SE, 100 (ModSE / EmpSE - 1), with rsimsum's MCSE.

    ModSE as :func:`modelse` and EmpSE the SD of the same replicates' estimates. MCSE
    100 (ModSE/EmpSE) sqrt(var(se^2) / (4 n ModSE^4) + 1 / (2 (n - 1))) (rsimsum
    R/performance.R lines 216-218; it treats ModSE and EmpSE as independent).
    """
    estimates, se = _paired_finite(estimates, standard_errors)
    n = se.size
    if n < 2:
        return Measure(np.nan, np.nan, n)
    model = np.sqrt(np.mean(se**2))
    empirical = estimates.std(ddof=1)
    if empirical == 0 or model == 0:
        return Measure(np.nan, np.nan, n)
    ratio = model / empirical
    mcse = 100 * ratio * np.sqrt(np.var(se**2, ddof=1) / (4 * n * model**4) + 1 / (2 * (n - 1)))
    return Measure(float(100 * (ratio - 1)), float(mcse), n)


def _interval_arrays(lower, upper):
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    if lower.shape != upper.shape:
        raise ValueError(f"lower and upper differ in shape: {lower.shape} and {upper.shape}")
    usable = np.isfinite(lower) & np.isfinite(upper)
    if np.any(lower[usable] > upper[usable]):
        raise ValueError("an interval has lower > upper")
    return lower, upper, usable


def coverage(lower, upper, true_value) -> Measure:
    """Share of replicates' intervals with lower <= truth <= upper, MCSE sqrt(C (1 - C) / n).

    One interval per replicate (e.g. beta's). Intervals with a non-finite end are left out;
    ``n_used`` counts the rest. The ends count as covered, as in rsimsum (line 114).
    """
    lower, upper, usable = _interval_arrays(np.ravel(lower), np.ravel(upper))
    truth = np.broadcast_to(np.asarray(true_value, dtype=np.float64), lower.shape)
    return proportion((lower[usable] <= truth[usable]) & (truth[usable] <= upper[usable]))


def mean_width(lower, upper) -> Measure:
    """Mean width upper - lower of one interval per replicate, MCSE sd / sqrt(n)."""
    lower, upper, usable = _interval_arrays(np.ravel(lower), np.ravel(upper))
    return mean_with_mcse((upper - lower)[usable])


def _clustered_measure(values, usable, clusters) -> Measure:
    values = np.where(usable, values, np.nan).ravel()
    clusters = np.asarray(clusters).ravel()
    if clusters.size != values.size:
        raise ValueError(f"clusters has {clusters.size} entries for {values.size} intervals")
    n_clusters = np.unique(clusters[np.isfinite(values)]).size
    if n_clusters == 0:
        return Measure(np.nan, np.nan, 0)
    value, se = clustered_mean(values, clusters)
    return Measure(value, se, int(n_clusters))


def clustered_coverage(lower, upper, truth, clusters) -> Measure:
    """Coverage over all groups' intervals with the replicate (cluster) as the independent unit.

    The estimate is the share of usable intervals that cover, sum_r(covered_r) / sum_r(usable_r),
    and its MCSE the ratio estimator's linearised SE (:func:`clustered_mean`, Cochran 1977,
    eq. 6.13). Groups of one replicate share beta-hat and sigma-hat, so their coverage events
    correlate; treating replicates as the independent draws keeps the MCSE honest. When every
    replicate has the same number of usable intervals this equals the mean of the per-replicate
    coverage proportions with MCSE sd / sqrt(R). ``n_used`` counts replicates with at least one
    interval whose ends are finite.
    """
    lower, upper, usable = _interval_arrays(lower, upper)
    truth = np.broadcast_to(np.asarray(truth, dtype=np.float64), lower.shape)
    covered = ((lower <= truth) & (truth <= upper)).astype(np.float64)
    return _clustered_measure(covered, usable, clusters)


def clustered_mean_width(lower, upper, clusters) -> Measure:
    """Mean width over all groups' intervals, replicate-clustered MCSE as :func:`clustered_coverage`."""
    lower, upper, usable = _interval_arrays(lower, upper)
    return _clustered_measure(upper - lower, usable, clusters)


def rejection_rate(p_values, level: float = 0.05) -> Measure:
    """Share of replicates whose test rejects (p <= level), MCSE sqrt(r (1 - r) / n).

    At a true null this is the test's size, otherwise its power (rsimsum's ``power``, line 226).
    NaN p-values (a test that could not be computed) are left out; ``n_used`` counts the rest.
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    values = _finite(p_values)
    return proportion(values <= level)
