"""Per-cell x method performance summaries of the study, from the replicate and group tables.

Tables (see the README for every column):

- ``cells``: one row per cell with its parameters and true beta and sigma;
- ``performance``: long table of measures (bias, EmpSE, RMSE of beta-hat and sigma-hat; RMSE of
  group estimates and its ratio to raw; shrinkage slope; the interval estimands of
  :mod:`glmmshrink.summary_intervals` (ModSE, coverage and width of intervals, the rejection
  rate of the LRT of sigma = 0); mean and EmpSE of a method's own hyperparameters), each with
  MCSE and replicates used;
- ``fit_flags``: counts and rates of non-convergence, singular fits, separation, fit errors (and
  improper posteriors for methods that can be improper);
- ``shrinkage_curve``: mean estimate and mean true p per observed proportion (or bin of it);
- ``theory``: observed shrinkage slope and RMSE ratio next to the values :mod:`glmmshrink.theory`
  predicts at the cell's true (beta, sigma);
- ``beta_intervals``: each replicate's interval for beta, ranked for the zip plot.

What is measured for a method follows its registry entry (:class:`glmmshrink.methods.Method`),
never its name or the columns present.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from glmmshrink import measures, summary_intervals, theory
from glmmshrink.config import Cell
from glmmshrink.methods import METHODS, MethodRegistry

FLAGS = {
    "nonconverged": lambda table: ~table["converged"],
    "singular": lambda table: table["singular"],
    "separated": lambda table: table["separated"],
    "fit_error": lambda table: table["fit_error"] != "",
}


def cell_row(cell: Cell, replicates: int) -> dict:
    return {
        "cell": cell.name,
        "cell_key": cell.key,
        **cell.parameters(),
        "balanced": cell.balanced,
        "beta_true": cell.beta_true,
        "sigma_true": float(cell.re_sd),
        "replicates": replicates,
    }


def _measure_row(method, estimand, measure_name, measure: measures.Measure) -> dict:
    return {
        "method": method,
        "estimand": estimand,
        "measure": measure_name,
        "value": measure.value,
        "mcse": measure.mcse,
        "n_used": measure.n_used,
    }


def _group_matrix(groups: pd.DataFrame, column: str, n_groups: int) -> np.ndarray:
    """Column of a (replicate, group)-sorted group table as an (R, G) array."""
    return groups[column].to_numpy(np.float64).reshape(-1, n_groups)


def _hyperparameter_rows(method, table: pd.DataFrame, truths: dict) -> list[dict]:
    rows = []
    for estimand, truth in truths.items():
        estimates = table[f"{estimand}_hat"].to_numpy(np.float64)
        rows.append(_measure_row(method, estimand, "bias", measures.bias(estimates, truth)))
        rows.append(_measure_row(method, estimand, "empse", measures.empirical_se(estimates)))
        rows.append(_measure_row(method, estimand, "rmse", measures.rmse(estimates, truth)))
    return rows


def performance_rows(cell: Cell, replicates: pd.DataFrame, groups: pd.DataFrame,
                     registry: MethodRegistry = METHODS) -> list[dict]:
    """Measures of every method in the tables; what is measured follows the method's
    registry entry (:class:`glmmshrink.methods.Method`)."""
    rows = []
    truths = {"beta": cell.beta_true, "sigma": cell.re_sd}
    by_method = {name: table for name, table in groups.groupby("method", sort=False)}
    raw_mse = _raw_mse(groups, cell)
    for method, table in replicates.groupby("method", sort=False):
        spec = registry[method]
        if spec.estimates_hyperparameters:
            rows += _hyperparameter_rows(method, table, truths)
        for column in spec.extra_hyperparameters:
            estimates = table[column].to_numpy(np.float64)
            rows.append(_measure_row(method, column, "mean", measures.mean_with_mcse(estimates)))
            rows.append(_measure_row(method, column, "empse", measures.empirical_se(estimates)))
        group_table = by_method[method]
        p_hat = _group_matrix(group_table, "p_hat", cell.n_groups)
        p_true = _group_matrix(group_table, "p_true", cell.n_groups)
        p_raw = _group_matrix(group_table, "p_raw", cell.n_groups)
        method_mse = measures.replicate_mse(p_hat, p_true)
        rows.append(_measure_row(method, "p", "rmse", measures.rmse_of_replicate_mse(method_mse)))
        rows.append(_measure_row(method, "p", "rmse_ratio_vs_raw", measures.rmse_ratio(method_mse, raw_mse)))
        slopes = measures.replicate_slopes(p_hat, p_raw)
        rows.append(_measure_row(method, "p", "shrinkage_slope", measures.mean_with_mcse(slopes)))
    names = list(dict.fromkeys(replicates["method"]))
    rows += summary_intervals.interval_rows(
        cell.beta_true, replicates, groups,
        beta_interval_methods=_giving_intervals(registry, names, "beta"),
        p_interval_methods=_giving_intervals(registry, names, "p"),
        likelihood_methods=registry.having(names, "likelihood_ratio_test"),
    )
    return rows


def _giving_intervals(registry: MethodRegistry, names, estimand: str) -> list[str]:
    return [name for name in names if estimand in registry[name].interval_estimands]


def _raw_mse(groups: pd.DataFrame, cell: Cell) -> np.ndarray:
    # Every method's rows carry p_raw, so the raw proportion's error needs no "raw" method.
    first = groups[groups["method"] == groups["method"].iloc[0]]
    return measures.replicate_mse(
        _group_matrix(first, "p_raw", cell.n_groups), _group_matrix(first, "p_true", cell.n_groups)
    )


def _flags_of(spec) -> dict:
    """FLAGS, plus ``improper`` for a method that can be improper (``Method.can_be_improper``)."""
    if spec.can_be_improper:
        return {**FLAGS, "improper": lambda rows: rows["improper"].fillna(False).astype(bool)}
    return FLAGS


def flag_rows(replicates: pd.DataFrame, registry: MethodRegistry = METHODS) -> list[dict]:
    rows = []
    for method, table in replicates.groupby("method", sort=False):
        for flag, select in _flags_of(registry[method]).items():
            events = select(table).to_numpy(bool)
            rate = measures.proportion(events)
            rows.append({
                "method": method,
                "flag": flag,
                "count": int(events.sum()),
                "replicates": int(events.size),
                "rate": rate.value,
                "rate_mcse": rate.mcse,
            })
    return rows


def _clustered_ratio(sums: np.ndarray, counts: np.ndarray):
    """Ratio estimator sum_r(s_r)/sum_r(c_r) per bin (rows) with its replicate-clustered SE.

    ``sums`` and ``counts`` are (bins, replicates). Vectorised form of
    :func:`glmmshrink.measures.clustered_mean` (Cochran 1977, eq. 6.13): variance
    R/(R - 1) * sum((s_r - mean c_r)^2) / (sum c_r)^2 over the R replicates with c_r > 0.
    """
    total = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sums.sum(axis=1) / total
        squares = np.sum((sums - mean[:, None] * counts) ** 2, axis=1)
        n_clusters = np.count_nonzero(counts, axis=1)
        variance = n_clusters / (n_clusters - 1) * squares / total**2
    return mean, np.where(n_clusters > 1, np.sqrt(variance), np.nan)


def shrinkage_curve(cell: Cell, groups: pd.DataFrame, n_bins: int) -> pd.DataFrame:
    """Mean estimate and mean true p for each observed proportion y/n (balanced cells) or each of
    ``n_bins`` equal-width bins of it (unbalanced cells), with replicate-clustered MCSEs."""
    frames = []
    for method, table in groups.groupby("method", sort=True):
        proportion = table["p_raw"].to_numpy(np.float64)
        if cell.balanced:
            bin_value = table["successes"].to_numpy(np.int64)
        else:
            bin_value = np.minimum((proportion * n_bins).astype(np.int64), n_bins - 1)
        bins, bin_index = np.unique(bin_value, return_inverse=True)
        _, replicate_index = np.unique(table["replicate"].to_numpy(), return_inverse=True)
        n_replicates = replicate_index.max() + 1
        slot = bin_index * n_replicates + replicate_index

        def per_bin_and_replicate(weights):
            totals = np.bincount(slot, weights=weights, minlength=bins.size * n_replicates)
            return totals.reshape(bins.size, n_replicates)

        estimate = table["p_hat"].to_numpy(np.float64)
        finite = np.isfinite(estimate)
        counts = per_bin_and_replicate(None)
        mean_estimate, estimate_mcse = _clustered_ratio(
            per_bin_and_replicate(np.where(finite, estimate, 0.0)),
            per_bin_and_replicate(finite.astype(np.float64)),
        )
        mean_true, true_mcse = _clustered_ratio(
            per_bin_and_replicate(table["p_true"].to_numpy(np.float64)), counts
        )
        in_bin = counts.sum(axis=1)
        # A balanced cell's bin is the count y itself; an unbalanced cell's bins have width 1/n_bins.
        denominator, width = (cell.n_trials_min, 0) if cell.balanced else (n_bins, 1)
        frames.append(pd.DataFrame({
            "method": method,
            "bin": bins,
            "proportion_low": bins / denominator,
            "proportion_high": (bins + width) / denominator,
            "mean_proportion": np.bincount(bin_index, weights=proportion) / in_bin,
            "count": in_bin.astype(np.int64),
            "n_estimates": np.bincount(bin_index, weights=finite, minlength=bins.size).astype(np.int64),
            "mean_estimate": mean_estimate,
            "mean_estimate_mcse": estimate_mcse,
            "mean_true_p": mean_true,
            "mean_true_p_mcse": true_mcse,
        }))
    return pd.concat(frames, ignore_index=True)


def predicted_shrinkage(cell: Cell) -> dict:
    """Theory at the cell's true (beta, sigma): shrinkage slope (a) and RMSE gain (c).

    An unbalanced cell's n_i ~ U{min..max} is averaged by giving every size in min..max equal
    weight, as :func:`glmmshrink.theory.predicted_shrinkage_slope` pools an array of sizes.
    """
    sizes = np.arange(cell.n_trials_min, cell.n_trials_max + 1)
    gain = theory.predicted_rmse(cell.beta_true, cell.re_sd, sizes)
    return {
        "predicted_slope": theory.predicted_shrinkage_slope(cell.beta_true, cell.re_sd, sizes),
        "predicted_rmse_raw": gain.rmse_raw,
        "predicted_rmse_shrunk": gain.rmse_shrunk,
        "predicted_rmse_ratio": gain.ratio,
    }


def theory_rows(cell: Cell, performance: pd.DataFrame,
                registry: MethodRegistry = METHODS) -> pd.DataFrame:
    """Observed shrinkage slope and RMSE ratio of each method that shrinks (``Method.shrinks``)
    beside the theory's. The theory is the normal random-effects model's, whatever the cell's
    ``re_dist``."""
    predicted = predicted_shrinkage(cell)
    observed = performance[performance["estimand"] == "p"].set_index(["method", "measure"])
    rows = []
    for method in dict.fromkeys(performance["method"]):
        if not registry[method].shrinks:
            continue  # e.g. raw: its slope is 1 by construction
        slope = observed.loc[(method, "shrinkage_slope")]
        ratio = observed.loc[(method, "rmse_ratio_vs_raw")]
        rows.append({
            "method": method,
            "observed_slope": slope["value"],
            "observed_slope_mcse": slope["mcse"],
            "predicted_slope": predicted["predicted_slope"],
            "slope_difference": slope["value"] - predicted["predicted_slope"],
            "observed_rmse_ratio": ratio["value"],
            "observed_rmse_ratio_mcse": ratio["mcse"],
            "predicted_rmse_ratio": predicted["predicted_rmse_ratio"],
            "predicted_rmse_raw": predicted["predicted_rmse_raw"],
            "predicted_rmse_shrunk": predicted["predicted_rmse_shrunk"],
            "n_used": slope["n_used"],
        })
    return pd.DataFrame(rows, columns=THEORY_COLUMNS)


THEORY_COLUMNS = [
    "method", "observed_slope", "observed_slope_mcse", "predicted_slope", "slope_difference",
    "observed_rmse_ratio", "observed_rmse_ratio_mcse", "predicted_rmse_ratio",
    "predicted_rmse_raw", "predicted_rmse_shrunk", "n_used",
]


def summarise_cell(cell: Cell, replicates: pd.DataFrame, groups: pd.DataFrame, n_bins: int = 10,
                   registry: MethodRegistry = METHODS):
    """All summary tables of one cell, each keyed by ``cell`` plus the cell's parameters.

    ``replicates`` and ``groups`` are the concatenated chunk tables of the cell; ``registry``
    holds the entries of the methods in them.
    """
    replicates = replicates.sort_values(["method", "replicate"], kind="stable")
    groups = groups.sort_values(["method", "replicate", "group"], kind="stable")
    n_replicates = replicates["replicate"].nunique()
    keys = {"cell": cell.name, **cell.parameters()}

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat(
            [pd.DataFrame({k: [v] * len(frame) for k, v in keys.items()}), frame.reset_index(drop=True)],
            axis=1,
        )

    performance = pd.DataFrame(performance_rows(cell, replicates, groups, registry))
    names = list(dict.fromkeys(replicates["method"]))
    beta_intervals = summary_intervals.beta_interval_table(
        cell.beta_true, replicates, _giving_intervals(registry, names, "beta"))
    return {
        "cells": pd.DataFrame([cell_row(cell, n_replicates)]),
        "performance": keyed(performance),
        "fit_flags": keyed(pd.DataFrame(flag_rows(replicates, registry))),
        "shrinkage_curve": keyed(shrinkage_curve(cell, groups, n_bins)),
        "theory": keyed(theory_rows(cell, performance, registry)),
        "beta_intervals": keyed(beta_intervals),
    }


def combine(per_cell: list[dict]) -> dict[str, pd.DataFrame]:
    """Concatenate per-cell summaries, rows ordered by cell name so grid order does not matter."""
    tables = {}
    for name in per_cell[0]:
        table = pd.concat([summary[name] for summary in per_cell], ignore_index=True)
        tables[name] = table.sort_values("cell", kind="stable").reset_index(drop=True)
    return tables
