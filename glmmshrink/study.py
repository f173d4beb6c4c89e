"""Fitting one chunk of a cell's replicates with every method, and writing its Parquet tables.

A chunk is split into batches; each batch is one joblib task that fits all methods on a
(batch, G) array (:func:`glmmshrink.methods.fit_batch`). ``fit_glmm`` gives a replicate the same
answer alone or in any batch, so the tables depend on neither batch size nor worker count.

Tables are built as Arrow tables straight from numpy, which keeps pandas out of the fitting
jobs' start-up time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glmmshrink.config import Cell
from glmmshrink.methods import METHODS, MethodRegistry, fit_batch
from glmmshrink.simulate import SimulatedData, simulate_replicates

REPLICATE_COLUMNS = [
    "cell", "replicate", "method", "beta_hat", "sigma_hat",
    "converged", "singular", "separated", "fit_error",
]
GROUP_COLUMNS = [
    "cell", "replicate", "group", "n_trials", "successes", "p_true", "p_raw",
    "method", "p_hat", "b", "b_sd",
]
# Rows per Parquet row group when streaming (pyarrow's write_table default is 1,048,576): a
# few tens of MB of buffered rows, and one row group for a default-sized chunk.
ROW_GROUP_ROWS = 1 << 18


def _run_batches(data: SimulatedData, options, n_jobs, batch_size, registry):
    bounds = list(range(0, len(data.replicate), batch_size)) + [len(data.replicate)]
    batches = list(zip(bounds[:-1], bounds[1:]))
    if n_jobs == 1:
        # In-process: no worker start-up, which dominates small jobs.
        results = (fit_batch(data.y[lo:hi], data.n[lo:hi], options, registry)
                   for lo, hi in batches)
        return batches, results
    from joblib import Parallel, delayed, parallel_config

    # One BLAS thread per worker: the parallelism comes from the processes.
    with parallel_config(backend="loky", inner_max_num_threads=1):
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(fit_batch)(data.y[lo:hi], data.n[lo:hi], options, registry)
            for lo, hi in batches
        )
    return batches, results


def _fit_batches(cell, seed, start, stop, methods, method_options, n_jobs, batch_size, progress,
                 registry, spill_directory=None):
    """Fit every batch; returns the data and the replicate/group rows, still method-major.

    A batch's rows go into :class:`_MethodMajorRows` as soon as it is fitted (the group rows
    spilled to ``spill_directory`` when given), so no whole-chunk table is ever built here.
    """
    registry = METHODS if registry is None else registry
    unknown = [name for name in methods if name not in registry]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; registered: {sorted(registry)}")
    if n_jobs < 1 or batch_size < 1:
        raise ValueError(f"n_jobs and batch_size must be >= 1, got {n_jobs} and {batch_size}")
    if not 0 <= start < stop:
        raise ValueError(f"a chunk needs 0 <= start < stop, got start={start}, stop={stop}")
    options = {name: registry[name].options((method_options or {}).get(name)) for name in methods}
    data = simulate_replicates(cell, seed, start, stop)
    batches, batch_results = _run_batches(data, options, n_jobs, batch_size, registry)
    replicate_rows = _MethodMajorRows(REPLICATE_COLUMNS)
    group_rows = _MethodMajorRows(GROUP_COLUMNS, spill_directory)
    failures = 0
    for (lo, hi), result in zip(batches, batch_results):
        for name in methods:
            fit, errors = result[name]
            replicate_rows.add(name, lo, hi, _replicate_columns(fit, errors))
            group_rows.add(name, lo, hi, _group_columns(fit))
            failures += sum(1 for error in errors if error)
        if progress is not None:
            progress(hi, len(data.replicate))
    return data, replicate_rows, group_rows, failures


def fit_chunk(
    cell: Cell,
    seed: int,
    start: int,
    stop: int,
    methods: Sequence[str],
    method_options: Mapping[str, Mapping] | None = None,
    n_jobs: int = 1,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    registry: MethodRegistry | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Simulate replicates ``start .. stop - 1`` of ``cell``, fit every method, return tables.

    ``methods`` are names in ``registry`` (default :data:`glmmshrink.methods.METHODS`).
    The tables are held in memory; a Snakemake job uses :func:`write_chunk`, which streams the
    same tables to Parquet.

    Returns
    -------
    replicates : pyarrow.Table
        One row per method x replicate (``REPLICATE_COLUMNS`` plus method extras).
    groups : pyarrow.Table
        One row per method x replicate x group (``GROUP_COLUMNS`` plus method extras).
    """
    data, replicate_rows, group_rows, _ = _fit_batches(
        cell, seed, start, stop, methods, method_options, n_jobs, batch_size, progress, registry
    )
    return (
        pa.concat_tables(replicate_rows.tables(_replicate_common(cell, data))),
        pa.concat_tables(group_rows.tables(_group_common(cell, data))),
    )


def write_chunk(
    cell: Cell,
    seed: int,
    start: int,
    stop: int,
    methods: Sequence[str],
    replicates_path,
    groups_path,
    method_options: Mapping[str, Mapping] | None = None,
    n_jobs: int = 1,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    registry: MethodRegistry | None = None,
) -> int:
    """:func:`fit_chunk`, streamed to two Parquet files; returns the number of failed fits.

    The files hold the same tables as :func:`fit_chunk` returns (rows method by method). Memory
    stays at about one batch plus the chunk's simulated counts: each batch's group rows are
    spilled to a hidden directory beside ``groups_path`` (Arrow IPC, method-specific columns
    only) and read back method by method into a ``pyarrow.parquet.ParquetWriter``. Both files
    appear only when complete (temporary names, then ``os.replace``).
    """
    groups_path, replicates_path = Path(groups_path), Path(replicates_path)
    groups_path.parent.mkdir(parents=True, exist_ok=True)
    replicates_path.parent.mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix=f".{groups_path.name}.", dir=groups_path.parent))
    temporaries = [path.with_name(f".{path.name}.{os.getpid()}.tmp")
                   for path in (replicates_path, groups_path)]
    try:
        data, replicate_rows, group_rows, failures = _fit_batches(
            cell, seed, start, stop, methods, method_options, n_jobs, batch_size, progress,
            registry, spill_directory=spill,
        )
        _write_tables(replicate_rows.tables(_replicate_common(cell, data)), temporaries[0])
        _write_tables(group_rows.tables(_group_common(cell, data)), temporaries[1])
        for temporary, path in zip(temporaries, (replicates_path, groups_path)):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:
            temporary.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return failures


def _replicate_columns(fit, errors) -> dict:
    return {
        "beta_hat": fit.beta_hat.astype(np.float64),
        "sigma_hat": fit.sigma_hat.astype(np.float64),
        "converged": fit.converged.astype(bool),
        "singular": fit.singular.astype(bool),
        "separated": fit.separated.astype(bool),
        "fit_error": pa.array(errors, pa.string()),
        **{k: np.asarray(v) for k, v in fit.extra_replicate.items()},
    }


def _group_columns(fit) -> dict:
    return {
        "p_hat": fit.p_hat.astype(np.float64).ravel(),
        "b": fit.b.astype(np.float64).ravel(),
        "b_sd": fit.b_sd.astype(np.float64).ravel(),
        **{k: np.asarray(v).ravel() for k, v in fit.extra_group.items()},
    }


def _replicate_common(cell, data: SimulatedData):
    """Columns shared by every method's replicate rows lo .. hi - 1."""

    def common(method, lo, hi):
        count = hi - lo
        return {
            "cell": pa.array([cell.name] * count, pa.string()),
            "replicate": data.replicate[lo:hi],
            "method": pa.array([method] * count, pa.string()),
        }

    return common


def _group_common(cell, data: SimulatedData):
    """Columns shared by every method's group rows of replicates lo .. hi - 1."""
    n_groups = data.y.shape[1]

    def common(method, lo, hi):
        rows = (hi - lo) * n_groups
        return {
            "cell": pa.array([cell.name] * rows, pa.string()),
            "replicate": np.repeat(data.replicate[lo:hi], n_groups),
            "group": np.tile(np.arange(n_groups, dtype=np.int64), hi - lo),
            "n_trials": data.n[lo:hi].ravel(),
            "successes": data.y[lo:hi].ravel(),
            "p_true": data.p_true[lo:hi].ravel(),
            "p_raw": (data.y[lo:hi] / data.n[lo:hi]).ravel(),
            "method": pa.array([method] * rows, pa.string()),
        }

    return common


class _MethodMajorRows:
    """Rows that arrive batch by batch (every method per batch) and leave method by method.

    The tables' schema is fixed only once every batch is in: the leading columns, then every
    method's extra columns sorted by name. An extra that a method gives in some batches only
    (a batch whose fits all failed) is NaN there, or 0/False for an integer/boolean extra, as
    :func:`glmmshrink.methods.stack_fits` fills it; an extra of another method is NaN for a
    floating-point column and null otherwise. Its type is that of the first method giving it.
    """

    def __init__(self, leading: list[str], spill_directory: Path | None = None):
        self.leading = leading
        self.spill_directory = spill_directory
        self.parts: dict[str, list] = {}
        self.extra_dtypes: dict[str, dict[str, np.dtype]] = {}
        self.extra_types: dict[str, dict[str, pa.DataType]] = {}
        self.spilled = 0

    def add(self, method: str, lo: int, hi: int, columns: Mapping) -> None:
        table = pa.table(dict(columns))
        dtypes = self.extra_dtypes.setdefault(method, {})
        types = self.extra_types.setdefault(method, {})
        for name, values in columns.items():
            if name not in self.leading:
                dtypes.setdefault(name, np.asarray(values).dtype)
                types.setdefault(name, table.schema.field(name).type)
        if self.spill_directory is not None:
            path = self.spill_directory / f"part{self.spilled}.arrow"
            self.spilled += 1
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            table = path
        self.parts.setdefault(method, []).append((lo, hi, table))

    def tables(self, common: Callable[[str, int, int], dict]) -> Iterator[pa.Table]:
        """One table per (method, batch), in method-major order, all with the same schema."""
        extra_types: dict[str, pa.DataType] = {}
        for types in self.extra_types.values():
            for name, data_type in types.items():
                extra_types.setdefault(name, data_type)
        names = self.leading + sorted(extra_types)
        for method, parts in self.parts.items():
            for lo, hi, stored in parts:
                part = stored if isinstance(stored, pa.Table) else _read_ipc(stored)
                columns = {**common(method, lo, hi),
                           **{name: part.column(name) for name in part.column_names}}
                length = part.num_rows
                for name, dtype in self.extra_dtypes[method].items():
                    if name not in columns:  # this batch's fits all failed: as stack_fits fills
                        columns[name] = np.full(length, np.nan if dtype.kind == "f" else 0, dtype)
                for name in names:
                    if name not in columns:  # another method's extra
                        columns[name] = _missing(extra_types[name], length)
                yield pa.table({name: columns[name] for name in names})


def _missing(data_type: pa.DataType, length: int) -> pa.Array:
    """A column of a method without this extra: NaN for floats, a typed null otherwise."""
    if pa.types.is_floating(data_type):
        return pa.array(np.full(length, np.nan), type=data_type)
    return pa.nulls(length, type=data_type)


def _read_ipc(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_file(source).read_all()


def _write_tables(tables: Iterator[pa.Table], path: Path) -> None:
    """Write tables with one schema to one Parquet file, grouping small ones into row groups."""
    writer = None
    pending, pending_rows = [], 0
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending))
                pending, pending_rows = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending))
    finally:
        if writer is not None:
            writer.close()


def write_parquet_atomic(table, path) -> None:
    """Write a pyarrow Table or pandas DataFrame to ``path`` atomically.

    The data go to a hidden temporary file in the same directory, then ``os.replace`` moves it
    into place, so a job killed mid-write never leaves a truncated Parquet file behind.
    """
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
