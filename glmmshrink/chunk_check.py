"""Integrity of the chunk tables before they are summarised.

A chunk file ``results/cells/<cell>/<kind>_<start>-<stop>.parquet`` must hold exactly what its
name says: every configured method's rows for replicates ``start .. stop - 1`` of ``<cell>``, once
each (and, in a groups table, groups ``0 .. n_groups - 1`` of each). A file truncated on disk, a
file of another cell or another replicate range copied over this name, or a stale file written by
an older version fails one of these checks; summarising it would crash or silently count some
replicates twice.

:func:`check_chunks` returns one :class:`ChunkProblem` per bad file; the summarise rule moves those
files aside (:func:`quarantine`) so that the same ``snakemake`` command refits exactly them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

CHUNK_NAME = re.compile(r"^(?P<kind>replicates|groups)_(?P<start>\d+)-(?P<stop>\d+)\.parquet$")
KEY_COLUMNS = {
    "replicates": ["cell", "replicate", "method"],
    "groups": ["cell", "replicate", "method", "group"],
}
DAMAGED_SUFFIX = ".damaged"


@dataclass(frozen=True)
class ChunkProblem:
    """What is wrong with one chunk file."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _expected_columns(kind: str) -> list[str]:
    from glmmshrink.study import GROUP_COLUMNS, REPLICATE_COLUMNS

    return REPLICATE_COLUMNS if kind == "replicates" else GROUP_COLUMNS


def _read_keys(path: Path, kind: str):
    """The key columns of a chunk file, or raise ValueError naming what is wrong."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as error:  # noqa: BLE001 -- any reader error means a damaged file
        raise ValueError(f"cannot be read ({type(error).__name__}: {error})") from None
    missing = [c for c in _expected_columns(kind) if c not in schema.names]
    if missing:
        raise ValueError(f"lacks the column(s) {', '.join(missing)} of a {kind} chunk")
    try:
        return pq.read_table(path, columns=KEY_COLUMNS[kind]).to_pandas()
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"cannot be read ({type(error).__name__}: {error})") from None


def _span(values: np.ndarray) -> str:
    return f"{values.min()}-{values.max()}" if values.size else "none"


def check_chunk(path, cell: str, n_groups: int, methods: Sequence[str]) -> str | None:
    """The reason a chunk file does not hold what its name says, or None if it does."""
    path = Path(path)
    named = CHUNK_NAME.match(path.name)
    if named is None:
        return "is not named <kind>_<start>-<stop>.parquet"
    kind, start, stop = named["kind"], int(named["start"]), int(named["stop"])
    try:
        keys = _read_keys(path, kind)
    except ValueError as error:
        return str(error)
    cells = set(keys["cell"].unique())
    if cells != {cell}:
        return f"holds cell(s) {sorted(cells)}, not {cell}"
    found_methods = set(keys["method"].unique())
    if found_methods != set(methods):
        return f"holds methods {sorted(found_methods)}, the config asks for {sorted(methods)}"
    replicates = keys["replicate"].to_numpy()
    expected = np.arange(start, stop)
    per_replicate = 1 if kind == "replicates" else n_groups
    for method, rows in keys.groupby("method", sort=True):
        found = np.unique(rows["replicate"].to_numpy())
        if not np.array_equal(found, expected):
            return (f"holds replicates {_span(replicates)} ({found.size} distinct), its name says "
                    f"{start}-{stop - 1}")
        if kind == "groups":
            groups = rows["group"].to_numpy()
            if groups.min() < 0 or groups.max() >= n_groups:
                return f"holds groups {_span(groups)}, the cell has groups 0-{n_groups - 1}"
        if rows.duplicated().any():
            return f"holds duplicated rows for method {method}"
        if len(rows) != expected.size * per_replicate:
            return (f"holds {len(rows)} rows for method {method}, expected "
                    f"{expected.size * per_replicate}")
    return None


def check_chunks(paths: Iterable, cells: Mapping[str, int], methods: Sequence[str]):
    """Problems of the chunk files ``paths``; ``cells`` maps a cell name to its n_groups.

    The cell of a file is its directory's name.
    """
    problems = []
    for path in paths:
        cell = Path(path).parent.name
        if cell not in cells:
            problems.append(ChunkProblem(str(path), f"is in no configured cell ({cell})"))
            continue
        reason = check_chunk(path, cell, cells[cell], methods)
        if reason is not None:
            problems.append(ChunkProblem(str(path), reason))
    return problems


def quarantine(problem: ChunkProblem) -> str:
    """Move a bad chunk file aside to ``<file>.damaged`` (kept for inspection); return that path.

    Its job's output is then missing, so the next ``snakemake`` run refits the chunk.
    """
    target = problem.path + DAMAGED_SUFFIX
    os.replace(problem.path, target)
    return target
