"""Fitting a chunk: independence from batching and workers, failures kept as data, atomic files."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from glmmshrink import methods as method_registry
from glmmshrink import study
from glmmshrink.config import Cell
from glmmshrink.study import GROUP_COLUMNS, REPLICATE_COLUMNS, fit_chunk, write_parquet_atomic

CELL = Cell(n_groups=8, n_trials_min=6, n_trials_max=6, re_sd=1.0, p0=0.6)
METHODS = ["raw", "laplace", "agq"]
OPTIONS = {"agq": {"nagq": 7}}


def test_tables_have_the_documented_columns_and_rows():
    replicates, groups = fit_chunk(CELL, 3, 0, 5, METHODS, OPTIONS)
    # The common columns, then the methods' extras in name order (raw, laplace and agq write
    # intervals; the likelihood fits also their log-likelihoods).
    assert replicates.column_names == REPLICATE_COLUMNS + [
        "beta_lower", "beta_se", "beta_upper", "loglik", "loglik_null"]
    assert groups.column_names == GROUP_COLUMNS + ["p_lower", "p_upper"]
    assert replicates.num_rows == 5 * len(METHODS)
    assert groups.num_rows == 5 * CELL.n_groups * len(METHODS)
    frame = groups.to_pandas()
    raw = frame[frame["method"] == "raw"]
    assert np.array_equal(raw["p_hat"], raw["successes"] / raw["n_trials"])


def test_results_do_not_depend_on_batching_workers_or_chunks():
    reference, reference_groups = fit_chunk(CELL, 3, 0, 12, METHODS, OPTIONS, n_jobs=1, batch_size=12)
    parallel, parallel_groups = fit_chunk(CELL, 3, 0, 12, METHODS, OPTIONS, n_jobs=2, batch_size=5)
    assert reference.to_pandas().equals(parallel.to_pandas())
    assert reference_groups.to_pandas().equals(parallel_groups.to_pandas())
    head, _ = fit_chunk(CELL, 3, 0, 7, METHODS, OPTIONS, batch_size=3)
    tail, _ = fit_chunk(CELL, 3, 7, 12, METHODS, OPTIONS, batch_size=2)
    frame = reference.to_pandas().sort_values(["method", "replicate"], ignore_index=True)
    joined = (
        pd.concat([head.to_pandas(), tail.to_pandas()])
        .sort_values(["method", "replicate"], ignore_index=True)
    )
    assert frame.equals(joined)


def test_a_failing_replicate_is_kept_with_its_error():
    laplace = method_registry.METHODS["laplace"]

    def flaky(y, n, options):
        if (y.sum(axis=1) % 4 == 0).any():
            raise FloatingPointError("synthetic failure")
        return laplace.fit(y, n, options)

    registry = method_registry.METHODS.with_methods(
        method_registry.Method(name="flaky", fit=flaky, label="flaky", color="C7", order=99)
    )
    replicates, _ = fit_chunk(CELL, 3, 0, 20, ["laplace", "flaky"], batch_size=10,
                              registry=registry)
    frame = replicates.to_pandas()
    good = frame[frame["method"] == "laplace"].set_index("replicate")
    flaky_rows = frame[frame["method"] == "flaky"].set_index("replicate")
    data_y = study.simulate_replicates(CELL, 3, 0, 20).y
    should_fail = data_y.sum(axis=1) % 4 == 0
    assert should_fail.any() and not should_fail.all()
    failed = flaky_rows["fit_error"] != ""
    assert np.array_equal(failed.to_numpy(), should_fail)
    assert flaky_rows.loc[failed, "fit_error"].str.contains("synthetic failure").all()
    assert flaky_rows.loc[failed, "beta_hat"].isna().all()
    assert not flaky_rows.loc[failed, "converged"].any()
    # Replicates that fit are identical to the plain method's.
    assert np.array_equal(flaky_rows.loc[~failed, "beta_hat"], good.loc[~failed, "beta_hat"])


def test_a_crash_mid_write_leaves_no_parquet(tmp_path, monkeypatch):
    table, _ = fit_chunk(CELL, 3, 0, 2, ["raw"])
    target = tmp_path / "out.parquet"

    def crash(table, where, **kwargs):
        with open(where, "wb") as half_written:
            half_written.write(b"PAR1 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(study.pq, "write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        write_parquet_atomic(table, target)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_parquet_atomic(table, target)
    assert pq.read_table(target).to_pandas().equals(table.to_pandas())


@pytest.mark.parametrize("cell", [CELL, Cell(n_groups=8, n_trials_min=2, n_trials_max=15, re_sd=1.0, p0=0.4)], ids=["balanced", "unbalanced"])
def test_shrinkage_curve_matches_the_clustered_mean_bin_by_bin(cell):
    from glmmshrink.measures import clustered_mean
    from glmmshrink.summary import shrinkage_curve

    _, groups = fit_chunk(cell, 5, 0, 30, ["raw", "laplace"])
    groups = groups.to_pandas()
    curve = shrinkage_curve(cell, groups, n_bins=4)
    if cell.balanced:
        bins = groups["successes"]
    else:
        bins = np.minimum((groups["p_raw"] * 4).astype(int), 3)
    assert curve["count"].sum() == len(groups)
    for row in curve.itertuples():
        chosen = groups[(groups["method"] == row.method) & (bins == row.bin)]
        assert row.count == len(chosen)
        mean, mcse = clustered_mean(chosen["p_hat"], chosen["replicate"])
        assert row.mean_estimate == pytest.approx(mean, rel=1e-12)
        if np.isfinite(mcse):
            assert row.mean_estimate_mcse == pytest.approx(mcse, rel=1e-9)
        else:
            assert np.isnan(row.mean_estimate_mcse)
        assert row.mean_true_p == pytest.approx(clustered_mean(chosen["p_true"], chosen["replicate"])[0])
        assert chosen["p_raw"].between(row.proportion_low, row.proportion_high).all()


def test_bayes_rows_carry_intervals_and_the_improper_flag():
    # Success probability 0.02 with 3 groups of 2 trials: some replicates have no success at
    # all, an improper posterior under the flat beta prior.
    cell = Cell(n_groups=3, n_trials_min=2, n_trials_max=2, re_sd=0.5, p0=0.02)
    replicates, groups = fit_chunk(cell, 1, 0, 10, ["laplace", "bayes"])
    frame = replicates.to_pandas()
    bayes = frame[frame["method"] == "bayes"]
    assert replicates.schema.field("improper").type == "bool"
    assert frame.loc[frame["method"] == "laplace", "improper"].isna().all()
    improper = bayes["improper"].astype(bool)
    assert improper.any() and not improper.all()
    assert (bayes["separated"] == improper).all() and (bayes["converged"] == ~improper).all()
    assert bayes.loc[improper, "beta_hat"].isna().all()
    group_frame = groups.to_pandas()
    intervals = group_frame[group_frame["method"] == "bayes"]
    proper = intervals[intervals["p_upper"].notna()]
    assert (proper["p_lower"] <= proper["p_hat"]).all() and (proper["p_hat"] <= proper["p_upper"]).all()
    assert group_frame.loc[group_frame["method"] == "laplace", "p_sd"].isna().all()


def test_a_failed_replicate_keeps_boolean_extras_boolean():
    parts = [
        method_registry.MethodFit(*(np.zeros(1),) * 2, *(np.zeros((1, 2)),) * 3,
                                  *(np.zeros(1, bool),) * 3,
                                  extra_replicate={"improper": np.array([True]), "sd": np.ones(1)}),
        method_registry._failed_fit(2),
    ]
    stacked = method_registry.stack_fits(parts)
    assert stacked.extra_replicate["improper"].tolist() == [True, False]
    assert stacked.extra_replicate["sd"][0] == 1 and np.isnan(stacked.extra_replicate["sd"][1])


@pytest.mark.parametrize("cell", [Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7), Cell(n_groups=30, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.5)],
                         ids=["balanced", "unbalanced"])
def test_predicted_shrinkage_is_theory_at_the_true_parameters(cell):
    from glmmshrink import theory
    from glmmshrink.summary import predicted_shrinkage

    predicted = predicted_shrinkage(cell)
    sizes = np.arange(cell.n_trials_min, cell.n_trials_max + 1)
    assert predicted["predicted_slope"] == theory.predicted_shrinkage_slope(cell.beta_true, cell.re_sd, sizes)
    assert predicted["predicted_rmse_ratio"] == theory.predicted_rmse(cell.beta_true, cell.re_sd, sizes).ratio
    assert 0 < predicted["predicted_slope"] < 1 and 0 < predicted["predicted_rmse_ratio"] < 1
