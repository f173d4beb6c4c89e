"""Quantiles of densities tabulated on uniform grids, for the credible intervals of ``bayes``.

``grid_quantiles`` inverts the CDF of each column of a table of densities; ``block_quantiles``
puts every replicate's marginal densities (``_bayes_intervals.MarginalDensities``) of a block into
one zero-padded table and inverts it in a single call. Every operation is elementwise or runs down
one column, stopping at that column's own grid, so a column's quantiles do not depend on its
neighbours or on the padding.
"""

from __future__ import annotations

import numpy as np


def _cell_integrals(density, step):
    """Integral over each grid cell of the cubic through the four nearest points (zero beyond the grid)."""
    padded = np.zeros((density.shape[0] + 2,) + density.shape[1:])
    padded[1:-1] = density
    # step / 24 (-f0 + 13 f1 + 13 f2 - f3), evaluated in that order in place (large blocks of columns).
    out = np.negative(padded[:-3])
    term = np.multiply(padded[1:-2], 13.0)
    out += term
    np.multiply(padded[2:-1], 13.0, out=term)
    out += term
    out -= padded[3:]
    out *= step / 24.0
    return out


def grid_quantiles(start, step, density, probs, totals=None, lengths=None):
    """Quantiles ``probs`` of each column of ``density`` (N, M) given on start + step * arange(N).

    The CDF at the grid points sums the cells' four-point integrals (fourth order); between two
    points it is the cubic Hermite interpolant with the density as its slope, inverted by Newton's
    method. With ``totals`` (M,), each column's exact total mass, a quantile below 1/2 is read from
    the mass to its left and one above 1/2 from the mass to its right, so neither depends on how
    much of the far tail on the other side the grid holds; without, columns are normalised by
    their total on the grid. ``start`` and ``step`` may differ by column ((M,) arrays); a column
    with ``lengths`` (M,) below N holds zero padding beyond its own grid. Returns (len(probs), M).
    """
    density = np.maximum(density, 0.0)
    cells = _cell_integrals(density, step)
    columns = np.arange(density.shape[1])
    if lengths is not None:
        # Beyond a column's own grid only the two cells reaching back into it are nonzero.
        lengths = np.asarray(lengths).astype(int)
        for beyond in (lengths - 1, lengths):
            short = (beyond >= 0) & (beyond < cells.shape[0])
            cells[beyond[short], columns[short]] = 0.0
    mass = np.empty(density.shape)  # (N, M)
    mass[0] = 0.0
    np.cumsum(cells, axis=0, out=mass[1:])
    on_grid = mass[-1]
    totals = on_grid if totals is None else totals
    slope = density  # dF per unit of the cell's fraction: density * step / totals
    slope *= step
    slope /= totals
    # A column's last cell is its own (zero padding beyond it holds no mass).
    last_cell = density.shape[0] - 2 if lengths is None else np.maximum(lengths - 2, 0)
    out = np.empty((len(probs), density.shape[1]))
    cdf = np.empty(density.shape)
    for k, prob in enumerate(probs):
        if prob < 0.5:
            np.divide(mass, totals, out=cdf)
        else:  # 1 - (on_grid - mass) / totals
            np.subtract(on_grid, mass, out=cdf)
            cdf /= totals
            np.subtract(1.0, cdf, out=cdf)
        cell = np.clip((cdf < prob).sum(axis=0) - 1, 0, last_cell)
        f0, f1 = cdf[cell, columns], cdf[cell + 1, columns]
        d0, d1 = slope[cell, columns], slope[cell + 1, columns]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip(np.where(f1 > f0, (prob - f0) / (f1 - f0), 0.5), 0.0, 1.0)
        for _ in range(2):  # Newton on the cubic Hermite interpolant of the CDF within the cell
            value = ((2 * t**3 - 3 * t**2 + 1) * f0 + (t**3 - 2 * t**2 + t) * d0
                     + (-2 * t**3 + 3 * t**2) * f1 + (t**3 - t**2) * d1)
            derivative = (6 * t**2 - 6 * t) * (f0 - f1) + (3 * t**2 - 4 * t + 1) * d0 + (3 * t**2 - 2 * t) * d1
            with np.errstate(invalid="ignore", divide="ignore"):
                t = np.clip(np.where(derivative > 0, t - (value - prob) / derivative, t), 0.0, 1.0)
        out[k] = start + step * (cell + t)
    return out



def block_quantiles(densities, probs):
    """Quantiles of every replicate's marginals in one ``grid_quantiles`` call.

    Each replicate contributes its groups' eta columns and one beta column, zero-padded to the
    longest grid of the block; ``grid_quantiles`` works column by column (every operation is
    elementwise or runs down a column in order, and stops at the column's own length), so a
    replicate's quantiles do not depend on the other replicates of the block.

    Returns
    -------
    list of (eta_quantiles (len(probs), U), beta_quantiles (len(probs),)), one per replicate.
    """
    widths = [d.eta_density.shape[1] + 1 for d in densities]
    rows = max(max(d.eta_density.shape[0], d.beta_density.size) for d in densities)
    stacked = np.zeros((rows, sum(widths)))
    start, step, totals, lengths = (np.empty(stacked.shape[1]) for _ in range(4))
    column = 0
    for d, width in zip(densities, widths):
        groups = slice(column, column + width - 1)
        stacked[:d.eta_density.shape[0], groups] = d.eta_density
        stacked[:d.beta_density.size, column + width - 1] = d.beta_density
        start[groups], step[groups], totals[groups], lengths[groups] = (
            d.eta_start, d.eta_step, d.eta_total, d.eta_density.shape[0])
        last = column + width - 1
        start[last], step[last], totals[last], lengths[last] = d.beta_start, d.beta_step, d.beta_total, d.beta_density.size
        column += width
    quantiles = grid_quantiles(start, step, stacked, probs, totals, lengths.astype(int))
    out, column = [], 0
    for width in widths:
        out.append((quantiles[:, column:column + width - 1], quantiles[:, column + width - 1]))
        column += width
    return out
