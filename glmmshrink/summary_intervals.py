"""Interval estimands of one cell: rows of ``performance`` and the zip plot's per-replicate table.

Reads the chunk tables' interval columns (see the README, "Output tables"):

- replicate table: ``beta_hat``, ``beta_se`` (model-based SE: Wald SE for likelihood fits,
  posterior SD for bayes), ``beta_lower``, ``beta_upper`` (95 % Wald or credible interval);
  ``loglik`` and ``loglik_null`` for likelihood fits;
- group table: ``replicate``, ``p_true``, ``p_lower``, ``p_upper`` (95 % interval of p_i).

Rows produced, each with ``value``, ``mcse`` and ``n_used`` (the replicates the measure used):

- beta ``modelse``: sqrt(mean(beta_se^2)), rsimsum's ModSE; ``relerror_modelse``:
  100 (ModSE / EmpSE - 1). ``n_used``: replicates with finite beta_hat and beta_se.
- beta ``coverage_95``: share of [beta_lower, beta_upper] holding the true beta; ``width_95``:
  their mean width. ``n_used``: replicates with finite interval ends.
- p ``coverage_95`` and ``width_95``: over all groups' intervals with the replicate as the
  cluster (:func:`glmmshrink.measures.clustered_coverage`). ``n_used``: replicates with at least
  one finite interval.
- sigma ``rejection_rate``: share of replicates whose boundary LRT of sigma = 0 has p <= 0.05,
  the size at sd = 0 and the power otherwise. ``n_used``: replicates with a finite p-value.
"""

from __future__ import annotations

from typing import Collection

import numpy as np
import pandas as pd

from glmmshrink import intervals, measures

LRT_LEVEL = 0.05
BETA_COLUMNS = ("beta_hat", "beta_se", "beta_lower", "beta_upper")
P_COLUMNS = ("replicate", "p_true", "p_lower", "p_upper")
LIKELIHOOD_COLUMNS = ("loglik", "loglik_null")
BETA_INTERVAL_COLUMNS = [
    "method", "replicate", "beta_true", "beta_hat", "beta_se", "beta_lower", "beta_upper", "covers",
    "z", "z_rank",
]


def _row(method: str, estimand: str, measure: str, result: measures.Measure) -> dict:
    return {"method": method, "estimand": estimand, "measure": measure,
            "value": result.value, "mcse": result.mcse, "n_used": result.n_used}


def _require(table: pd.DataFrame, columns, method: str, what: str) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"method {method!r} is listed as giving {what} but the table lacks "
                         f"column(s) {missing}")


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    return table[name].to_numpy(np.float64)


def beta_rows(method: str, beta_true: float, table: pd.DataFrame) -> list[dict]:
    """``modelse``, ``relerror_modelse``, ``coverage_95``, ``width_95`` of beta for one method."""
    _require(table, BETA_COLUMNS, method, "intervals for beta")
    estimates, se = _column(table, "beta_hat"), _column(table, "beta_se")
    lower, upper = _column(table, "beta_lower"), _column(table, "beta_upper")
    return [
        _row(method, "beta", "modelse", measures.modelse(estimates, se)),
        _row(method, "beta", "relerror_modelse", measures.relerror_modelse(estimates, se)),
        _row(method, "beta", "coverage_95", measures.coverage(lower, upper, beta_true)),
        _row(method, "beta", "width_95", measures.mean_width(lower, upper)),
    ]


def p_rows(method: str, table: pd.DataFrame) -> list[dict]:
    """``coverage_95`` and ``width_95`` of the group intervals of p_i for one method."""
    _require(table, P_COLUMNS, method, "intervals for p")
    lower, upper = _column(table, "p_lower"), _column(table, "p_upper")
    replicate = table["replicate"].to_numpy()
    return [
        _row(method, "p", "coverage_95",
             measures.clustered_coverage(lower, upper, _column(table, "p_true"), replicate)),
        _row(method, "p", "width_95", measures.clustered_mean_width(lower, upper, replicate)),
    ]


def sigma_rows(method: str, table: pd.DataFrame, level: float = LRT_LEVEL) -> list[dict]:
    """``rejection_rate`` of the boundary likelihood-ratio test of sigma = 0 for one method."""
    _require(table, LIKELIHOOD_COLUMNS, method, "a likelihood")
    pvalues = intervals.boundary_lrt_pvalue(_column(table, "loglik"), _column(table, "loglik_null"))
    return [_row(method, "sigma", "rejection_rate", measures.rejection_rate(pvalues, level))]


def interval_rows(
    beta_true: float,
    replicates: pd.DataFrame,
    groups: pd.DataFrame,
    *,
    beta_interval_methods: Collection[str],
    p_interval_methods: Collection[str],
    likelihood_methods: Collection[str],
) -> list[dict]:
    """Performance rows of the interval estimands for every method of one cell.

    Parameters
    ----------
    beta_true : float
        The cell's true beta = logit(p0).
    replicates, groups : DataFrame
        The cell's concatenated chunk tables (any row order).
    beta_interval_methods : collection of str
        Methods with a model-based SE and interval for beta (registry: gives intervals and
        estimates hyperparameters; laplace, agq, bayes).
    p_interval_methods : collection of str
        Methods with intervals for p_i (registry: gives intervals; raw, laplace, agq, bayes).
    likelihood_methods : collection of str
        Methods whose replicate rows carry ``loglik`` and ``loglik_null`` (laplace, agq).

    Returns
    -------
    list of dict
        Keys ``method``, ``estimand``, ``measure``, ``value``, ``mcse``, ``n_used``, methods in
        their order of appearance in ``replicates``. A listed method absent from the tables gets
        no rows; a listed method whose table lacks a needed column raises ValueError.
    """
    rows = []
    groups_by_method = dict(tuple(groups.groupby("method", sort=False)))
    for method, table in replicates.groupby("method", sort=False):
        if method in beta_interval_methods:
            rows += beta_rows(method, beta_true, table)
        if method in p_interval_methods and method in groups_by_method:
            rows += p_rows(method, groups_by_method[method])
        if method in likelihood_methods:
            rows += sigma_rows(method, table)
    return rows


def beta_interval_table(beta_true: float, replicates: pd.DataFrame,
                        beta_interval_methods: Collection[str]) -> pd.DataFrame:
    """Per-replicate beta intervals of one cell, ranked for the zip plot (Morris et al. 2019, Fig. 5).

    Columns ``BETA_INTERVAL_COLUMNS``: ``beta_true`` (the plot's reference line), ``covers``
    (beta_lower <= beta_true <= beta_upper), ``z`` = (beta_hat - beta_true) / beta_se and ``z_rank``, the fractional centile of |z| within
    the method: rank(|z|) / n with average ranks for ties (rsimsum's ``.zip_plot`` divides by the
    largest rank instead, the same unless the largest |z| is tied). Only replicates with finite
    estimate, positive SE and finite interval ends are kept, as in ``coverage_95``'s ``n_used``
    (they differ only if an SE is 0). The caller keys the table by cell, as other summary tables.
    """
    frames = []
    for method, table in replicates.groupby("method", sort=False):
        if method not in beta_interval_methods:
            continue
        _require(table, BETA_COLUMNS, method, "intervals for beta")
        values = {name: _column(table, name) for name in BETA_COLUMNS}
        keep = np.logical_and.reduce([np.isfinite(v) for v in values.values()]) & (values["beta_se"] > 0)
        z = (values["beta_hat"][keep] - beta_true) / values["beta_se"][keep]
        frames.append(pd.DataFrame({
            "method": method,
            "replicate": table["replicate"].to_numpy()[keep],
            "beta_true": float(beta_true),
            **{name: value[keep] for name, value in values.items()},
            "covers": (values["beta_lower"][keep] <= beta_true) & (beta_true <= values["beta_upper"][keep]),
            "z": z,
            "z_rank": pd.Series(np.abs(z)).rank(method="average").to_numpy() / max(z.size, 1),
        }))
    if not frames:
        return pd.DataFrame(columns=BETA_INTERVAL_COLUMNS)
    return pd.concat(frames, ignore_index=True)[BETA_INTERVAL_COLUMNS]
