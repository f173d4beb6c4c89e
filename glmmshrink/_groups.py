"""Identical (y, n) groups of a replicate, collapsed so each is solved once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DistinctGroups:
    """Each replicate's distinct (y, n) pairs, laid out (K, R), and each group's row among them."""

    y: np.ndarray
    n: np.ndarray
    count: np.ndarray
    row_of_group: np.ndarray  # (R, G); -1 for padding groups


def distinct_groups(y, n):
    """Collapse identical (y, n) groups of each replicate, sorted by (n, y), padding last."""
    n_reps, n_groups = y.shape
    padding = n == 0
    key = np.where(padding, np.iinfo(np.int64).max, n * (int(y.max()) + 1) + y)
    order = np.argsort(key, axis=1, kind="stable")
    sorted_key = np.take_along_axis(key, order, axis=1)
    starts_run = np.ones_like(sorted_key, dtype=bool)
    starts_run[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    sorted_row = np.cumsum(starts_run, axis=1) - 1
    sorted_padding = np.take_along_axis(padding, order, axis=1)
    sorted_row[sorted_padding] = -1
    n_rows = int(sorted_row.max()) + 1

    row_of_group = np.empty_like(sorted_row)
    np.put_along_axis(row_of_group, order, sorted_row, axis=1)
    real = ~padding
    rows, reps = row_of_group[real], np.nonzero(real)[0]
    flat = rows * n_reps + reps
    count = np.bincount(flat, minlength=n_rows * n_reps).reshape(n_rows, n_reps).astype(float)
    y_rows = np.zeros((n_rows, n_reps))
    n_rows_arr = np.zeros((n_rows, n_reps))
    y_rows[rows, reps] = y[real]
    n_rows_arr[rows, reps] = n[real]
    return DistinctGroups(y_rows, n_rows_arr, count, row_of_group)
