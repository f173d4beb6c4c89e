"""Input checks shared by the public fitting functions."""

from __future__ import annotations

import numpy as np


def as_counts(y, n) -> tuple[np.ndarray, np.ndarray, bool]:
    """Check and convert successes ``y`` and trials ``n`` to int64 arrays of shape (R, G).

    Parameters
    ----------
    y, n : array_like
        Successes and trials per group, shape ``(G,)`` for one dataset or ``(R, G)`` for
        ``R`` datasets. Groups with ``n == 0`` are padding.

    Returns
    -------
    y, n : ndarray of int64, shape (R, G)
    was_1d : bool
        Whether the input was one dataset, so results drop the leading dimension.

    Raises
    ------
    ValueError
        If the shapes differ or are not 1-D/2-D, a value is NaN, infinite or not an integer, a
        count is negative, or ``y > n`` in some group.
    """
    arrays = {}
    for name, values in (("y", y), ("n", n)):
        arr = np.asarray(values)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        ):
            raise ValueError(f"{name} must be numeric counts, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise ValueError(f"{name} must be real counts, got complex values")
        if np.issubdtype(arr.dtype, np.floating):
            if np.isnan(arr).any():
                raise ValueError(f"{name} contains NaN")
            if np.isinf(arr).any():
                raise ValueError(f"{name} contains infinite values")
            if (arr != np.round(arr)).any():
                raise ValueError(f"{name} must contain whole numbers (non-integer count found)")
        arrays[name] = arr
    y_arr, n_arr = arrays["y"], arrays["n"]
    if y_arr.shape != n_arr.shape:
        raise ValueError(f"y and n must have the same shape, got {y_arr.shape} and {n_arr.shape}")
    if y_arr.ndim not in (1, 2):
        raise ValueError(f"y and n must be 1-D (G,) or 2-D (R, G), got {y_arr.ndim}-D")
    if y_arr.shape[-1] == 0:
        raise ValueError("y and n must contain at least one group")
    y_int = y_arr.astype(np.int64)
    n_int = n_arr.astype(np.int64)
    if (y_int < 0).any():
        raise ValueError("y contains negative counts")
    if (n_int < 0).any():
        raise ValueError("n contains negative counts")
    if (y_int > n_int).any():
        raise ValueError("y exceeds n in some group (successes cannot exceed trials)")
    was_1d = y_arr.ndim == 1
    if was_1d:
        y_int, n_int = y_int[None, :], n_int[None, :]
    if (n_int.sum(axis=1) == 0).any():
        raise ValueError("every dataset needs at least one group with n > 0")
    return y_int, n_int, was_1d
