"""The data-generating mechanism and its per-replicate seeding."""

import numpy as np
import pytest
from scipy.special import logit

from glmmshrink.config import Cell
from glmmshrink.simulate import replicate_rng, simulate_replicate, simulate_replicates

CELL = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7)
UNBALANCED = Cell(n_groups=40, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.5)


def test_a_replicate_does_not_depend_on_its_chunk():
    whole = simulate_replicates(CELL, 11, 0, 10)
    first, second = simulate_replicates(CELL, 11, 0, 4), simulate_replicates(CELL, 11, 4, 10)
    for name in ("replicate", "n", "y", "p_true"):
        joined = np.concatenate([getattr(first, name), getattr(second, name)])
        assert np.array_equal(getattr(whole, name), joined)
    n, y, p_true = simulate_replicate(CELL, replicate_rng(11, CELL.key, 7))
    assert np.array_equal(whole.y[7], y) and np.array_equal(whole.p_true[7], p_true)


def test_seed_and_cell_change_the_data():
    base = simulate_replicates(CELL, 11, 0, 5).y
    assert not np.array_equal(base, simulate_replicates(CELL, 12, 0, 5).y)
    other = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.6)
    assert not np.array_equal(base, simulate_replicates(other, 11, 0, 5).y)


def test_counts_are_valid_and_unbalanced_sizes_span_the_range():
    data = simulate_replicates(UNBALANCED, 3, 0, 50)
    assert data.y.dtype == np.int64 and (data.y >= 0).all() and (data.y <= data.n).all()
    assert data.n.min() == 2 and data.n.max() == 50


def test_true_probabilities_follow_the_model():
    data = simulate_replicates(CELL, 5, 0, 400)
    logits = logit(data.p_true).ravel()
    n = logits.size
    # mean logit(p0) and SD 1, each within 5 standard errors
    assert abs(logits.mean() - logit(0.7)) < 5 / np.sqrt(n)
    assert abs(logits.std(ddof=1) - 1.0) < 5 / np.sqrt(2 * (n - 1))
    no_spread = simulate_replicates(Cell(n_groups=5, n_trials_min=10, n_trials_max=10, re_sd=0.0, p0=0.3), 5, 0, 3)
    assert no_spread.p_true == pytest.approx(np.full((3, 5), 0.3))


def test_bad_range_is_rejected():
    with pytest.raises(ValueError, match="start"):
        simulate_replicates(CELL, 1, 5, 2)
