"""The data-generating mechanism: binomial counts from a random-intercept logistic model.

Group i of I has n_i trials and y_i ~ Binomial(n_i, p_i) with logit(p_i) = logit(p0) + sd * z_i,
z_i drawn from the cell's ``re_dist`` standardized to mean 0 and SD 1 (N(0, 1) by default; see
:mod:`glmmshrink.random_effects`); n_i = J in a balanced cell, n_i ~ uniform on {min, ..., max}
otherwise.

Each replicate draws from its own ``numpy.random.Generator`` seeded by
``SeedSequence(entropy=seed, spawn_key=(cell.key, replicate))``, so a replicate's data depend on
the master seed, the cell's parameter values and the replicate index only -- not on chunking,
worker count or grid order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from glmmshrink.config import Cell
from glmmshrink.random_effects import standardized_draws


@dataclass(frozen=True)
class SimulatedData:
    """Replicates ``replicate`` (R,) with trials ``n``, successes ``y`` and true ``p_true`` (R, I)."""

    replicate: np.ndarray
    n: np.ndarray
    y: np.ndarray
    p_true: np.ndarray

    def __repr__(self) -> str:
        reps = self.replicate
        span = f"{reps[0]}..{reps[-1]}" if reps.size else "none"
        return f"SimulatedData(replicates {span}, {self.y.shape[1]} groups)"


def replicate_rng(seed: int, cell_key: int, replicate: int) -> np.random.Generator:
    """The generator of one replicate: SeedSequence(entropy=seed, spawn_key=(cell_key, replicate))."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(cell_key, replicate))
    return np.random.default_rng(sequence)


def simulate_replicate(cell: Cell, rng: np.random.Generator):
    """One dataset: (n, y, p_true), each of shape (I,). Draw order: n (if unbalanced), z, y."""
    if cell.balanced:
        n = np.full(cell.n_groups, cell.n_trials_min, dtype=np.int64)
    else:
        n = rng.integers(cell.n_trials_min, cell.n_trials_max, size=cell.n_groups, endpoint=True)
    z = standardized_draws(cell.re_dist, rng, cell.n_groups)
    p_true = expit(cell.beta_true + cell.re_sd * z)
    y = rng.binomial(n, p_true)
    return n.astype(np.int64), y.astype(np.int64), p_true


def simulate_replicates(cell: Cell, seed: int, start: int, stop: int) -> SimulatedData:
    """Replicates ``start .. stop - 1`` of ``cell`` under master ``seed``."""
    if not 0 <= start <= stop:
        raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
    replicates = np.arange(start, stop, dtype=np.int64)
    shape = (replicates.size, cell.n_groups)
    n, y, p_true = np.empty(shape, np.int64), np.empty(shape, np.int64), np.empty(shape)
    key = cell.key  # a SHA-256 of the cell's name: computed once, not per replicate
    for row, replicate in enumerate(replicates):
        n[row], y[row], p_true[row] = simulate_replicate(cell, replicate_rng(seed, key, int(replicate)))
    return SimulatedData(replicates, n, y, p_true)
