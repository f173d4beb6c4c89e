"""Fitting one chunk of a cell's replicates with every method, and writing the Parquet tables.

A chunk is split into batches; each batch is one joblib task that fits all methods on a
(batch, G) array. ``fit_glmm`` gives a replicate the same answer alone or in any batch, so the
tables depend on neither the batch size nor the worker count. If a method raises on a batch, the
batch is refitted one replicate at a time and only the replicates that still raise are kept as
rows with NaN estimates and the exception text in ``fit_error``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from joblib import Parallel, delayed, parallel_config

from glmmshrink.config import Cell
from glmmshrink.methods import METHODS, MethodFit
from glmmshrink.simulate import SimulatedData, simulate_replicates

log = logging.getLogger(__name__)

REPLICATE_COLUMNS = [
    "cell", "replicate", "method", "beta_hat", "sigma_hat",
    "converged", "singular", "separated", "fit_error",
]
GROUP_COLUMNS = [
    "cell", "replicate", "group", "n_trials", "successes", "p_true", "p_raw",
    "method", "p_hat", "b", "b_sd",
]


def _failed_fit(n_groups: int) -> MethodFit:
    return MethodFit(
        beta_hat=np.full(1, np.nan),
        sigma_hat=np.full(1, np.nan),
        p_hat=np.full((1, n_groups), np.nan),
        b=np.full((1, n_groups), np.nan),
        b_sd=np.full((1, n_groups), np.nan),
        converged=np.zeros(1, bool),
        singular=np.zeros(1, bool),
        separated=np.zeros(1, bool),
    )


def _stack(fits: Sequence[MethodFit]) -> MethodFit:
    def extras(attribute, shape_of):
        names = sorted({name for fit in fits for name in getattr(fit, attribute)})
        return {
            name: np.concatenate([
                getattr(fit, attribute).get(name, np.full(shape_of(fit), np.nan)) for fit in fits
            ])
            for name in names
        }

    fields = ("beta_hat", "sigma_hat", "p_hat", "b", "b_sd", "converged", "singular", "separated")
    return MethodFit(
        **{name: np.concatenate([getattr(fit, name) for fit in fits]) for name in fields},
        extra_replicate=extras("extra_replicate", lambda fit: fit.beta_hat.shape),
        extra_group=extras("extra_group", lambda fit: fit.p_hat.shape),
    )


def fit_method_safely(method_name: str, options, y, n) -> tuple[MethodFit, list[str]]:
    """Fit ``y``, ``n`` (R, G); per-replicate fallback on exceptions. Returns fit and error texts."""
    method = METHODS[method_name]
    try:
        return method.fit(y, n, options), [""] * y.shape[0]
    except Exception:  # noqa: BLE001 -- a failing replicate is data, not a crash
        log.warning("%s raised on a batch of %d; refitting one by one", method_name, y.shape[0])
    fits, errors = [], []
    for row in range(y.shape[0]):
        try:
            fits.append(method.fit(y[row : row + 1], n[row : row + 1], options))
            errors.append("")
        except Exception as error:  # noqa: BLE001
            fits.append(_failed_fit(y.shape[1]))
            errors.append(f"{type(error).__name__}: {error}")
    return _stack(fits), errors


def _fit_batch(y, n, method_options: Mapping[str, Mapping]):
    return {
        name: fit_method_safely(name, options, y, n) for name, options in method_options.items()
    }


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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate replicates ``start .. stop - 1`` of ``cell``, fit every method, return tables.

    Returns
    -------
    replicates : DataFrame
        One row per replicate x method (``REPLICATE_COLUMNS`` plus method extras).
    groups : DataFrame
        One row per replicate x group x method (``GROUP_COLUMNS`` plus method extras).
    """
    options = {
        name: METHODS[name].options((method_options or {}).get(name)) for name in methods
    }
    data = simulate_replicates(cell, seed, start, stop)
    bounds = list(range(0, len(data.replicate), batch_size)) + [len(data.replicate)]
    batches = list(zip(bounds[:-1], bounds[1:]))
    results = {name: [] for name in methods}
    done = 0
    # One BLAS thread per worker: parallelism comes from the processes, not from BLAS.
    with parallel_config(backend="loky", inner_max_num_threads=1):
        tasks = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_fit_batch)(data.y[lo:hi], data.n[lo:hi], options) for lo, hi in batches
        )
        for (lo, hi), batch_result in zip(batches, tasks):
            for name in methods:
                results[name].append(batch_result[name])
            done += hi - lo
            if progress is not None:
                progress(done, len(data.replicate))
    fits = {
        name: (_stack([fit for fit, _ in parts]), [e for _, errs in parts for e in errs])
        for name, parts in results.items()
    }
    return _replicate_table(cell, data, fits), _group_table(cell, data, fits)


def _replicate_table(cell, data: SimulatedData, fits) -> pd.DataFrame:
    frames = []
    for name, (fit, errors) in fits.items():
        frame = pd.DataFrame({
            "cell": cell.name,
            "replicate": data.replicate,
            "method": name,
            "beta_hat": fit.beta_hat.astype(np.float64),
            "sigma_hat": fit.sigma_hat.astype(np.float64),
            "converged": fit.converged.astype(bool),
            "singular": fit.singular.astype(bool),
            "separated": fit.separated.astype(bool),
            "fit_error": pd.array(errors, dtype="string"),
            **{key: value for key, value in fit.extra_replicate.items()},
        })
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    extras = sorted(set(table.columns) - set(REPLICATE_COLUMNS))
    return table[REPLICATE_COLUMNS + extras]


def _group_table(cell, data: SimulatedData, fits) -> pd.DataFrame:
    n_replicates, n_groups = data.y.shape
    common = {
        "cell": cell.name,
        "replicate": np.repeat(data.replicate, n_groups),
        "group": np.tile(np.arange(n_groups, dtype=np.int64), n_replicates),
        "n_trials": data.n.ravel(),
        "successes": data.y.ravel(),
        "p_true": data.p_true.ravel(),
        "p_raw": (data.y / data.n).ravel(),
    }
    frames = []
    for name, (fit, _) in fits.items():
        frames.append(pd.DataFrame({
            **common,
            "method": name,
            "p_hat": fit.p_hat.astype(np.float64).ravel(),
            "b": fit.b.astype(np.float64).ravel(),
            "b_sd": fit.b_sd.astype(np.float64).ravel(),
            **{key: np.asarray(value, np.float64).ravel() for key, value in fit.extra_group.items()},
        }))
    table = pd.concat(frames, ignore_index=True)
    extras = sorted(set(table.columns) - set(GROUP_COLUMNS))
    return table[GROUP_COLUMNS + extras]


def write_parquet_atomic(table: pd.DataFrame, path) -> None:
    """Write ``table`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    A job killed mid-write leaves at most a hidden ``.tmp`` file, never a truncated Parquet.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
