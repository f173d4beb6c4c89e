"""Interval rows of performance.parquet and the zip plot's table (glmmshrink.summary_intervals)."""

import numpy as np
import pandas as pd
import pytest

from glmmshrink import fit_glmm, measures
from glmmshrink.config import Cell
from glmmshrink.glmer_summary import intercept_se
from glmmshrink.intervals import boundary_lrt_pvalue
from glmmshrink.method_intervals import likelihood_fit_columns, raw_columns
from glmmshrink.simulate import simulate_replicates
from glmmshrink.summary_intervals import BETA_INTERVAL_COLUMNS, beta_interval_table, interval_rows

BETA_TRUE = 0.5
CAPABILITIES = dict(beta_interval_methods={"laplace", "agq", "bayes"},
                    p_interval_methods={"raw", "laplace", "agq", "bayes"},
                    likelihood_methods={"laplace", "agq"})


def synthetic_tables():
    """raw, laplace and bayes on 4 replicates of 2 groups, with hand-checkable intervals."""
    beta_hat = np.array([0.4, 0.6, 0.9, np.inf])  # the last replicate is separated
    beta_se = np.array([0.1, 0.2, 0.1, np.nan])
    laplace = pd.DataFrame({
        "replicate": np.arange(4), "method": "laplace", "beta_hat": beta_hat, "beta_se": beta_se,
        "beta_lower": beta_hat - 1.96 * beta_se, "beta_upper": beta_hat + 1.96 * beta_se,
        "loglik": [-10.0, -10.0 + 1e-13, -12.0, np.nan], "loglik_null": [-12.0, -10.0, -14.0, 0.0],
    })
    bayes = laplace.assign(method="bayes", loglik=np.nan, loglik_null=np.nan)
    raw = pd.DataFrame({"replicate": np.arange(4), "method": "raw", "beta_hat": np.nan})
    replicates = pd.concat([raw, laplace, bayes], ignore_index=True)
    p_lower = np.array([0.1, 0.3, 0.5, 0.5, 0.2, 0.2, np.nan, np.nan])
    p_upper = np.array([0.5, 0.4, 0.9, 0.8, 0.6, 0.3, np.nan, np.nan])
    groups = pd.concat([
        pd.DataFrame({"replicate": np.repeat(np.arange(4), 2), "group": np.tile([0, 1], 4),
                      "method": method, "p_true": 0.45, "p_lower": p_lower, "p_upper": p_upper})
        for method in ("raw", "laplace", "bayes")
    ], ignore_index=True)
    return replicates, groups


def as_table(rows):
    return pd.DataFrame(rows).set_index(["method", "estimand", "measure"])


def test_each_method_gets_exactly_the_measures_its_capabilities_give():
    replicates, groups = synthetic_tables()
    table = as_table(interval_rows(BETA_TRUE, replicates, groups, **CAPABILITIES))
    beta = [("beta", m) for m in ("modelse", "relerror_modelse", "coverage_95", "width_95")]
    p = [("p", "coverage_95"), ("p", "width_95")]
    expected = ([("raw", *key) for key in p] + [("laplace", *key) for key in beta + p]
                + [("laplace", "sigma", "rejection_rate")] + [("bayes", *key) for key in beta + p])
    assert list(table.index) == expected
    assert list(table.columns) == ["value", "mcse", "n_used"]


def test_interval_rows_by_hand():
    replicates, groups = synthetic_tables()
    table = as_table(interval_rows(BETA_TRUE, replicates, groups, **CAPABILITIES))
    # beta intervals: [0.204, 0.596] covers 0.5, [0.208, 0.992] covers, [0.704, 1.096] does not;
    # the separated replicate is left out
    coverage = table.loc[("laplace", "beta", "coverage_95")]
    assert coverage["value"] == pytest.approx(2 / 3) and coverage["n_used"] == 3
    assert table.loc[("laplace", "beta", "width_95"), "value"] == pytest.approx(2 * 1.96 * 0.4 / 3)
    assert table.loc[("laplace", "beta", "modelse"), "value"] == pytest.approx(np.sqrt(0.06 / 3))
    # p: replicate 0 covers 1 of 2, replicate 1 0 of 2, replicate 2 1 of 2, replicate 3 none usable
    p_coverage = table.loc[("raw", "p", "coverage_95")]
    assert p_coverage["value"] == pytest.approx(2 / 6) and p_coverage["n_used"] == 3
    assert table.loc[("raw", "p", "width_95"), "value"] == pytest.approx((0.4 + 0.1 + 0.4 + 0.3 + 0.4 + 0.1) / 6)
    # LRT: T = 4 (p = 0.5 P(chi2_1 > 4) = 0.023), T ~ 0 (p = 1), T = 4; the NaN loglik is left out
    rejection = table.loc[("laplace", "sigma", "rejection_rate")]
    assert rejection["value"] == pytest.approx(2 / 3) and rejection["n_used"] == 3
    assert rejection["mcse"] == pytest.approx(np.sqrt(2 / 9 / 3))


def test_a_listed_method_missing_its_columns_is_an_error_and_an_absent_method_is_skipped():
    replicates, groups = synthetic_tables()
    without_loglik = replicates.drop(columns=["loglik"])
    with pytest.raises(ValueError, match="lacks column.*loglik"):
        interval_rows(BETA_TRUE, without_loglik, groups, **CAPABILITIES)
    # a listed method whose columns are all NaN (every fit failed) gets rows with n_used = 0
    all_nan = as_table(interval_rows(BETA_TRUE, replicates, groups, beta_interval_methods=set(),
                                     p_interval_methods=set(), likelihood_methods={"bayes"}))
    assert all_nan.loc[("bayes", "sigma", "rejection_rate"), "n_used"] == 0
    rows = interval_rows(BETA_TRUE, replicates[replicates["method"] != "bayes"],
                         groups[groups["method"] != "bayes"], **CAPABILITIES)
    assert {row["method"] for row in rows} == {"raw", "laplace"}


def test_beta_interval_table_ranks_absolute_z_within_each_method():
    replicates, _ = synthetic_tables()
    table = beta_interval_table(BETA_TRUE, replicates, {"laplace", "bayes"})
    assert list(table.columns) == BETA_INTERVAL_COLUMNS
    laplace = table[table["method"] == "laplace"]
    assert list(laplace["replicate"]) == [0, 1, 2]  # the separated replicate has no interval
    np.testing.assert_allclose(laplace["z"], [-1.0, 0.5, 4.0])
    np.testing.assert_allclose(laplace["z_rank"], [2 / 3, 1 / 3, 1.0])
    assert list(laplace["covers"]) == [True, True, False]
    assert beta_interval_table(BETA_TRUE, replicates, set()).empty


def fitted_tables(cell: Cell, replicates: int, nagq: int):
    """Chunk tables with interval columns built as the methods will build them."""
    data = simulate_replicates(cell, 17, 0, replicates)
    replicate_frames, group_frames = [], []
    groups_common = {"replicate": np.repeat(data.replicate, cell.n_groups), "p_true": data.p_true.ravel()}
    raw = raw_columns(data.y, data.n)
    group_frames.append(pd.DataFrame({**groups_common, "method": "raw",
                                      **{k: v.ravel() for k, v in raw.group.items()}}))
    replicate_frames.append(pd.DataFrame({"replicate": data.replicate, "method": "raw"}))
    for method, quadrature in (("laplace", 1), ("agq", nagq)):
        fit = fit_glmm(data.y, data.n, nagq=quadrature)
        beta_se = [intercept_se(y, n, b, s, quadrature)
                   for y, n, b, s in zip(data.y, data.n, fit.beta, fit.sigma)]
        columns = likelihood_fit_columns(data.y, data.n, fit, beta_se)
        replicate_frames.append(pd.DataFrame({"replicate": data.replicate, "method": method,
                                              "beta_hat": fit.beta, **columns.replicate}))
        group_frames.append(pd.DataFrame({**groups_common, "method": method,
                                          **{k: v.ravel() for k, v in columns.group.items()}}))
    return pd.concat(replicate_frames, ignore_index=True), pd.concat(group_frames, ignore_index=True)


def test_fitted_cell_gives_every_interval_measure_with_a_finite_mcse():
    cell = Cell(n_groups=12, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.5)
    replicates, groups = fitted_tables(cell, 30, nagq=9)
    capabilities = {**CAPABILITIES, "beta_interval_methods": {"laplace", "agq"}}
    rows = interval_rows(cell.beta_true, replicates, groups, **capabilities)
    assert len(rows) == 2 + 2 * (4 + 2 + 1)
    for row in rows:
        assert np.isfinite(row["value"]) and np.isfinite(row["mcse"]) and row["n_used"] == 30, row


def test_singular_fits_of_an_sd0_cell_never_reject():
    cell = Cell(n_groups=12, n_trials_min=10, n_trials_max=10, re_sd=0.0, p0=0.5)
    replicates, _ = fitted_tables(cell, 30, nagq=5)
    laplace = replicates[replicates["method"] == "laplace"]
    pvalues = boundary_lrt_pvalue(laplace["loglik"], laplace["loglik_null"])
    singular = laplace["loglik"].to_numpy() - laplace["loglik_null"].to_numpy() < 1e-9
    assert 0 < singular.sum() < 30  # both kinds of fit occur
    assert np.all(pvalues[singular] == 1.0) and np.all(pvalues[~singular] < 1.0)
    assert measures.rejection_rate(pvalues).n_used == 30
