"""write_chunk streams the same tables fit_chunk builds, and the same as before streaming.

``_reference_tables`` is the whole-chunk implementation that ``fit_chunk`` had before it
streamed (every batch's fits stacked, then one table per kind concatenated across methods); the
streamed and in-memory tables must equal it in column order, types, values and row order.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glmmshrink import methods as method_registry
from glmmshrink import study
from glmmshrink.config import Cell
from glmmshrink.methods import METHODS, fit_batch, stack_fits
from glmmshrink.simulate import simulate_replicates

CELL = Cell(n_groups=7, n_trials_min=2, n_trials_max=9, re_sd=1.0, p0=0.3)


def _reference_concat(columns_per_method, leading):
    extra_types = {}
    for columns in columns_per_method:
        for name, values in columns.items():
            if name not in leading:
                extra_types.setdefault(name, pa.array(values).type)
    names = leading + sorted(extra_types)

    def missing(name, length):
        if pa.types.is_floating(extra_types[name]):
            return np.full(length, np.nan)
        return pa.nulls(length, type=extra_types[name])

    tables = []
    for columns in columns_per_method:
        length = len(next(iter(columns.values())))
        filled = {k: columns[k] if k in columns else missing(k, length) for k in names}
        tables.append(pa.table(filled))
    return pa.concat_tables(tables)


def _reference_tables(cell, seed, start, stop, methods, method_options=None, batch_size=100,
                      registry=METHODS):
    options = {name: registry[name].options((method_options or {}).get(name)) for name in methods}
    data = simulate_replicates(cell, seed, start, stop)
    bounds = list(range(0, len(data.replicate), batch_size)) + [len(data.replicate)]
    parts = {name: [] for name in methods}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        result = fit_batch(data.y[lo:hi], data.n[lo:hi], options, registry)
        for name in methods:
            parts[name].append(result[name])
    fits = {
        name: (stack_fits([fit for fit, _ in pieces]), [e for _, errs in pieces for e in errs])
        for name, pieces in parts.items()
    }
    count = len(data.replicate)
    replicate_rows = [{
        "cell": pa.array([cell.name] * count, pa.string()),
        "replicate": data.replicate,
        "method": pa.array([name] * count, pa.string()),
        "beta_hat": fit.beta_hat.astype(np.float64),
        "sigma_hat": fit.sigma_hat.astype(np.float64),
        "converged": fit.converged.astype(bool),
        "singular": fit.singular.astype(bool),
        "separated": fit.separated.astype(bool),
        "fit_error": pa.array(errors, pa.string()),
        **{k: np.asarray(v) for k, v in fit.extra_replicate.items()},
    } for name, (fit, errors) in fits.items()]
    n_replicates, n_groups = data.y.shape
    rows = n_replicates * n_groups
    common = {
        "cell": pa.array([cell.name] * rows, pa.string()),
        "replicate": np.repeat(data.replicate, n_groups),
        "group": np.tile(np.arange(n_groups, dtype=np.int64), n_replicates),
        "n_trials": data.n.ravel(),
        "successes": data.y.ravel(),
        "p_true": data.p_true.ravel(),
        "p_raw": (data.y / data.n).ravel(),
    }
    group_rows = [{
        **common,
        "method": pa.array([name] * rows, pa.string()),
        "p_hat": fit.p_hat.astype(np.float64).ravel(),
        "b": fit.b.astype(np.float64).ravel(),
        "b_sd": fit.b_sd.astype(np.float64).ravel(),
        **{k: np.asarray(v).ravel() for k, v in fit.extra_group.items()},
    } for name, (fit, _) in fits.items()]
    return (_reference_concat(replicate_rows, study.REPLICATE_COLUMNS),
            _reference_concat(group_rows, study.GROUP_COLUMNS))


def assert_same_table(table, reference):
    """Same schema, row order and values; NaN equals NaN (pyarrow's equals says it does not)."""
    assert table.schema.equals(reference.schema)
    assert table.num_rows == reference.num_rows
    for name in reference.column_names:
        got, want = table.column(name).combine_chunks(), reference.column(name).combine_chunks()
        if pa.types.is_floating(want.type):
            assert got.is_null().equals(want.is_null()), name
            assert np.array_equal(got.to_numpy(zero_copy_only=False),
                                  want.to_numpy(zero_copy_only=False), equal_nan=True), name
        else:
            assert got.equals(want), name


def _written(tmp_path, *args, **kwargs):
    replicates = tmp_path / "out" / "replicates.parquet"
    groups = tmp_path / "out" / "groups.parquet"
    study.write_chunk(*args, replicates_path=replicates, groups_path=groups, **kwargs)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["groups.parquet",
                                                                    "replicates.parquet"]
    return pq.read_table(replicates), pq.read_table(groups)


@pytest.mark.parametrize("batch_size", [4, 25])
def test_streamed_and_in_memory_tables_equal_the_whole_chunk_tables(tmp_path, batch_size,
                                                                     monkeypatch):
    methods = ["raw", "laplace", "agq", "bayes"]
    options = {"agq": {"nagq": 5}}
    # Several row groups per file, so the streaming path is exercised at this small size.
    monkeypatch.setattr(study, "ROW_GROUP_ROWS", 40)
    expected = _reference_tables(CELL, 5, 3, 20, methods, options, batch_size)
    streamed = _written(tmp_path, CELL, 5, 3, 20, methods, method_options=options,
                        batch_size=batch_size)
    in_memory = study.fit_chunk(CELL, 5, 3, 20, methods, options, batch_size=batch_size)
    for table, reference in [*zip(streamed, expected), *zip(in_memory, expected)]:
        assert_same_table(table, reference)
    assert pq.ParquetFile(tmp_path / "out" / "groups.parquet").num_row_groups > 1


def test_extras_missing_in_a_batch_or_a_method_are_filled_as_before(tmp_path):
    # "partial" gives integer, boolean and float extras, but fails on replicates 0-3: the whole
    # first batch (of 4), refitted one by one, has no extras at all. "raw" has none either.
    laplace = METHODS["laplace"]
    data = simulate_replicates(CELL, 5, 0, 12)
    failing = [data.y[row] for row in range(4)]

    def partial(y, n, options):
        if any(np.array_equal(row, bad) for row in y for bad in failing):
            raise FloatingPointError("synthetic failure")
        fit = laplace.fit(y, n, options)
        fields = ("beta_hat", "sigma_hat", "p_hat", "b", "b_sd", "converged", "singular",
                  "separated")
        return method_registry.MethodFit(
            **{name: getattr(fit, name) for name in fields},
            extra_replicate={"count": np.arange(y.shape[0], dtype=np.int32),
                             "flag": np.ones(y.shape[0], bool)},
            extra_group={"score": np.full(y.shape, 0.5)},
        )

    registry = METHODS.with_methods(
        method_registry.Method(name="partial", fit=partial, label="partial", color="C7", order=99))
    methods = ["raw", "partial", "bayes"]
    expected = _reference_tables(CELL, 5, 0, 12, methods, batch_size=4, registry=registry)
    errors = expected[0].to_pandas().query("method == 'partial'")["fit_error"]
    assert (errors.iloc[:4] != "").all() and (errors.iloc[4:] == "").all()
    assert expected[0].schema.field("count").type == pa.int32()
    streamed = _written(tmp_path, CELL, 5, 0, 12, methods, batch_size=4, registry=registry)
    for table, reference in zip(streamed, expected):
        assert_same_table(table, reference)


def test_a_failed_chunk_leaves_no_file_and_no_spill(tmp_path, monkeypatch):
    def broken_batch(y, n, options, registry=None):
        raise KeyboardInterrupt  # not caught by fit_safely, like a kill

    monkeypatch.setattr(study, "fit_batch", broken_batch)
    with pytest.raises(KeyboardInterrupt):
        study.write_chunk(CELL, 5, 0, 10, ["raw"], tmp_path / "r.parquet", tmp_path / "g.parquet")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_chunk_is_refused():
    with pytest.raises(ValueError, match="start < stop"):
        study.fit_chunk(CELL, 5, 4, 4, ["raw"])
