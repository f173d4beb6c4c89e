"""Fitting one chunk of a cell's replicates with every method, and writing its Parquet tables.

A chunk is split into batches; each batch is one joblib task that fits all methods on a
(batch, G) array (:func:`glmmshrink.methods.fit_batch`). ``fit_glmm`` gives a replicate the same
answer alone or in any batch, so the tables depend on neither batch size nor worker count.

Tables are built as Arrow tables straight from numpy, which keeps pandas out of the fitting
jobs' start-up time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glmmshrink.config import Cell
from glmmshrink.methods import METHODS, MethodRegistry, fit_batch, stack_fits
from glmmshrink.simulate import SimulatedData, simulate_replicates

REPLICATE_COLUMNS = [
    "cell", "replicate", "method", "beta_hat", "sigma_hat",
    "converged", "singular", "separated", "fit_error",
]
GROUP_COLUMNS = [
    "cell", "replicate", "group", "n_trials", "successes", "p_true", "p_raw",
    "method", "p_hat", "b", "b_sd",
]


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

    Returns
    -------
    replicates : pyarrow.Table
        One row per method x replicate (``REPLICATE_COLUMNS`` plus method extras).
    groups : pyarrow.Table
        One row per method x replicate x group (``GROUP_COLUMNS`` plus method extras).
    """
    registry = METHODS if registry is None else registry
    unknown = [name for name in methods if name not in registry]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; registered: {sorted(registry)}")
    if n_jobs < 1 or batch_size < 1:
        raise ValueError(f"n_jobs and batch_size must be >= 1, got {n_jobs} and {batch_size}")
    options = {name: registry[name].options((method_options or {}).get(name)) for name in methods}
    data = simulate_replicates(cell, seed, start, stop)
    batches, batch_results = _run_batches(data, options, n_jobs, batch_size, registry)
    parts = {name: [] for name in methods}
    done = 0
    for (lo, hi), result in zip(batches, batch_results):
        for name in methods:
            parts[name].append(result[name])
        done += hi - lo
        if progress is not None:
            progress(done, len(data.replicate))
    fits = {
        name: (stack_fits([fit for fit, _ in pieces]), [e for _, errs in pieces for e in errs])
        for name, pieces in parts.items()
    }
    return _replicate_table(cell, data, fits), _group_table(cell, data, fits)


def _concat(columns_per_method: list[dict], leading: list[str]) -> pa.Table:
    extra_types = {}
    for columns in columns_per_method:
        for name, values in columns.items():
            if name not in leading:
                extra_types.setdefault(name, pa.array(values).type)
    names = leading + sorted(extra_types)

    def missing(name, length):
        # A method without this extra column: NaN for floats, a typed null otherwise.
        if pa.types.is_floating(extra_types[name]):
            return np.full(length, np.nan)
        return pa.nulls(length, type=extra_types[name])

    tables = []
    for columns in columns_per_method:
        length = len(next(iter(columns.values())))
        filled = {k: columns[k] if k in columns else missing(k, length) for k in names}
        tables.append(pa.table(filled))
    return pa.concat_tables(tables)


def _replicate_table(cell, data: SimulatedData, fits) -> pa.Table:
    count = len(data.replicate)
    per_method = []
    for name, (fit, errors) in fits.items():
        per_method.append({
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
        })
    return _concat(per_method, REPLICATE_COLUMNS)


def _group_table(cell, data: SimulatedData, fits) -> pa.Table:
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
    per_method = []
    for name, (fit, _) in fits.items():
        per_method.append({
            **common,
            "method": pa.array([name] * rows, pa.string()),
            "p_hat": fit.p_hat.astype(np.float64).ravel(),
            "b": fit.b.astype(np.float64).ravel(),
            "b_sd": fit.b_sd.astype(np.float64).ravel(),
            **{k: np.asarray(v).ravel() for k, v in fit.extra_group.items()},
        })
    return _concat(per_method, GROUP_COLUMNS)


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
