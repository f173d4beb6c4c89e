"""Brute-force grid posterior of the binomial random-intercept GLMM, independent of glmmshrink.

Model: y_i ~ Bin(n_i, expit(beta + b_i)), b_i ~ N(0, sigma^2), flat beta prior, sigma ~ U(0, upper).
Plain numpy, dense uniform grids, nothing adaptive:

* log I_j(beta, t) = log int L_j(beta + sigma u) phi(u) du, sigma = e^t, by the trapezoid rule on a
  u grid (spacing small against the likelihood's width sigma sqrt(n / 4)), for each distinct
  (y, n) on a coarse beta grid (0.05) x a log-sigma grid (0.05), then four-point Lagrange
  interpolation onto a fine beta grid (0.01).
* The posterior of (beta, t) on that lattice is e^t prod_j I_j (flat beta, uniform sigma).
* beta's marginal: the sum over t, accumulated by the trapezoid rule.
* eta_i = beta + b_i: f_i(eta) = L_i(eta) sum_t e^t int N(eta; beta, sigma^2) G_-i(beta, t) d beta,
  G_-i = prod_{j != i} I_j, by the trapezoid rule in beta where sigma >= 5 beta spacings, and for
  smaller sigma as int phi(v) G_-i(eta - sigma v, t) dv (a v grid, G_-i interpolated linearly in
  log on the fine beta grid), which stays smooth as sigma -> 0.

Run ``python tests/bayes_brute_force.py OUT.json`` to regenerate the stored reference
(tests/data/brute_force_interval_reference.json) for the datasets of jags_interval_reference.json.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

COARSE_STEP = 0.05
FINE_STEP = 0.01
LOG_SIGMA_STEP = 0.05
LOG_SIGMA_LOWEST = -12.0
UPPER30_LOG_SIGMA_STEP = 0.025


def _log_lik(y, n, eta):
    return y * eta - n * np.logaddexp(0.0, eta)


def _log_integrals(pairs, beta, sigma):
    """log int L(eta) N(eta; beta, sigma^2) d eta on a (beta, sigma) lattice for each (y, n): (U, B, T).

    sigma < 1: the trapezoid rule in u = (eta - beta) / sigma on [-10, 10], spacing below the
    likelihood's width. sigma >= 1: the trapezoid rule in eta on [-60, 60] (spacing 0.01), plus
    the normal's tail mass beyond where L tends to 1 (y = 0 on the left, y = n on the right).
    """
    out = np.empty((len(pairs), beta.size, sigma.size))
    eta = np.arange(-60.0, 60.0 + 0.005, 0.01)
    lik = np.exp(np.stack([_log_lik(y, n, eta) for y, n in pairs], axis=1))  # (E, U)
    lik[[0, -1]] *= 0.5
    left_one = np.array([y == 0 for y, n in pairs], float)
    right_one = np.array([y == n for y, n in pairs], float)
    n_max = max(n for _, n in pairs)
    for k, s in enumerate(sigma):
        if s < 1.0:
            du = min(0.02, 0.05 / (s * np.sqrt(n_max / 4.0)))
            u = np.arange(-10.0, 10.0 + du / 2, du)
            for row, (y, n) in enumerate(pairs):
                log_terms = _log_lik(y, n, beta[:, None] + s * u) - 0.5 * u * u
                top = log_terms.max(axis=1, keepdims=True)
                terms = np.exp(log_terms - top)
                total = terms.sum(axis=1) - 0.5 * (terms[:, 0] + terms[:, -1])
                out[row, :, k] = top[:, 0] + np.log(total * du / np.sqrt(2 * np.pi))
        else:
            z = (eta[None, :] - beta[:, None]) / s
            kernel = np.exp(-0.5 * z * z) * (0.01 / (np.sqrt(2 * np.pi) * s))
            total = kernel @ lik  # (B, U)
            tails = (_normal_upper_tail((beta + 60.0) / s)[:, None] * left_one
                     + _normal_upper_tail((60.0 - beta) / s)[:, None] * right_one)
            out[:, :, k] = np.log(total + tails).T
    return out


def _normal_upper_tail(x):
    """Phi(-x), the standard normal's mass above x."""
    return np.array([0.5 * math.erfc(v / math.sqrt(2.0)) for v in np.atleast_1d(x)])


def _four_point(fine, coarse, values):
    """Cubic Lagrange interpolation through the four nearest coarse points (uniform coarse grid)."""
    h = coarse[1] - coarse[0]
    index = np.clip(np.floor((fine - coarse[0]) / h).astype(int), 1, coarse.size - 3)
    s = (fine - coarse[index]) / h
    w = [-s * (s - 1) * (s - 2) / 6, (s + 1) * (s - 1) * (s - 2) / 2,
         -(s + 1) * s * (s - 2) / 2, (s + 1) * s * (s - 1) / 6]
    return sum(wk[:, None] * values[index + k - 1] for k, wk in enumerate(w))


def _quantile(grid, density, prob):
    """Quantile of a density on a uniform grid: the trapezoid CDF with its Euler-Maclaurin end
    correction -h^2/12 (f'(x) - f'(x_0)) (fourth order), then within the cell the CDF of the
    linear interpolant of f, solved exactly."""
    h = grid[1] - grid[0]
    slope = np.gradient(density, h)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * h * (density[1:] + density[:-1]))]) - h * h / 12 * (slope - slope[0])
    prob = prob * cdf[-1]
    k = int(np.clip(np.searchsorted(cdf, prob) - 1, 0, grid.size - 2))
    f0, f1, rest = density[k], density[k + 1], prob - cdf[k]
    a = 0.5 * (f1 - f0) / h  # rest = f0 d + a d^2
    d = rest / f0 if abs(a) < 1e-300 else (-f0 + np.sqrt(max(f0 * f0 + 4 * a * rest, 0.0))) / (2 * a)
    return float(grid[k] + d)


def brute_force_posterior(y, n, sigma_upper=100.0, beta_range=None, fine_step=None, probs=(0.025, 0.975),
                          log_sigma_step=LOG_SIGMA_STEP):
    """Posterior summaries: beta mean/quantiles, sigma mean, and p_i mean/quantiles per group.

    The beta grid spans -+12 (spacing 0.01) for 20 groups or more, and -+60 (spacing 0.02) below:
    with few groups sigma's posterior has a heavy tail (sigma ~ 12 at its 97.5 % point for I = 5)
    and beta's given a large sigma is wide (sd ~ sigma / sqrt(I)).
    """
    y, n = np.asarray(y, float), np.asarray(n, float)
    if beta_range is None:
        beta_range = (-12.0, 12.0) if y.size >= 20 else (-60.0, 60.0)
    if fine_step is None:
        fine_step = FINE_STEP if y.size >= 20 else 2 * FINE_STEP
    pairs, group_row, counts = np.unique(np.stack([y, n], axis=1), axis=0, return_inverse=True, return_counts=True)
    group_row = group_row.reshape(-1)
    coarse = np.arange(beta_range[0] - 2 * COARSE_STEP, beta_range[1] + 2.5 * COARSE_STEP, COARSE_STEP)
    fine = np.arange(beta_range[0], beta_range[1] + fine_step / 2, fine_step)
    t = np.arange(LOG_SIGMA_LOWEST, np.log(sigma_upper), log_sigma_step)
    t = np.append(t, np.log(sigma_upper))
    sigma = np.exp(t)
    coarse_log_i = _log_integrals([tuple(pair) for pair in pairs], coarse, sigma)
    log_i = np.stack([_four_point(fine, coarse, values) for values in coarse_log_i])  # (U, F, T)
    log_joint = np.tensordot(counts.astype(float), log_i, axes=1) + t  # (F, T): flat beta, uniform sigma
    # Trapezoid weights in t (the last cell is shorter: it ends at log(upper)).
    dt = np.diff(t)
    t_weight = np.zeros(t.size)
    t_weight[:-1] += 0.5 * dt
    t_weight[1:] += 0.5 * dt
    log_joint += np.log(t_weight)
    top = log_joint.max()
    joint = np.exp(log_joint - top)
    mass = joint.sum()
    beta_density = joint.sum(axis=1)
    out = {
        "beta_mean": float((beta_density * fine).sum() / mass),
        "sigma_mean": float((joint.sum(axis=0) * sigma).sum() / mass),
        "beta_lower": _quantile(fine, beta_density, probs[0]),
        "beta_upper": _quantile(fine, beta_density, probs[1]),
    }
    p_mean, p_lower, p_upper = [], [], []
    eta = fine
    for u_row, (py, pn) in enumerate(pairs):
        log_loo = log_joint - log_i[u_row] - top  # (F, T): G_-i e^t with the t weights
        density = np.zeros(eta.size)
        floor = log_loo.max() - 80.0
        for k, s in enumerate(sigma):
            column = log_loo[:, k]
            shift = column.max()
            if shift < floor:
                continue
            values = np.exp(column - shift)
            if s >= 5 * fine_step:
                reach = min(int(np.ceil(10 * s / fine_step)), eta.size)
                offsets = np.arange(-reach, reach + 1) * fine_step / s
                kernel = np.exp(-0.5 * offsets**2) * fine_step / (np.sqrt(2 * np.pi) * s)
                size = 1 << int(np.ceil(np.log2(eta.size + kernel.size)))
                full = np.fft.irfft(np.fft.rfft(values, size) * np.fft.rfft(kernel, size), size)
                density += np.exp(shift - floor) * np.maximum(full[reach:reach + eta.size], 0.0)
            else:
                v = np.linspace(-8, 8, 161)
                weight_v = np.exp(-0.5 * v * v) * (v[1] - v[0]) / np.sqrt(2 * np.pi)
                shifted = np.interp((eta[:, None] - s * v).reshape(-1), eta, column - shift,
                                    left=-np.inf, right=-np.inf)
                density += np.exp(shift - floor) * (np.exp(shifted.reshape(eta.size, v.size)) @ weight_v)
        density *= np.exp(_log_lik(py, pn, eta) - _log_lik(py, pn, eta).max())
        p = 1.0 / (1.0 + np.exp(-eta))
        p_mean.append(float((density * p).sum() / density.sum()))
        p_lower.append(float(1.0 / (1.0 + np.exp(-_quantile(eta, density, probs[0])))))
        p_upper.append(float(1.0 / (1.0 + np.exp(-_quantile(eta, density, probs[1])))))
    out["p_mean"] = [p_mean[r] for r in group_row]
    out["p_lower"] = [p_lower[r] for r in group_row]
    out["p_upper"] = [p_upper[r] for r in group_row]
    return out


def main(argv):
    """python tests/bayes_brute_force.py [JAGS_JSON [OUT_JSON]]: datasets not yet in OUT are added."""
    source = Path(argv[0]) if argv else Path(__file__).parent / "data" / "jags_interval_reference.json"
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "data" / "brute_force_interval_reference.json"
    datasets = json.loads(source.read_text())["datasets"]
    results = json.loads(target.read_text())["datasets"] if target.exists() else []
    done = {result["id"] for result in results}
    meta = {"method": "tests/bayes_brute_force.py: dense grids, flat beta, sigma ~ U(0, 100)",
            "grids": f"beta {COARSE_STEP} (integrals) / {FINE_STEP} (marginals; -+12, or -+60 by "
                     f"{2 * FINE_STEP} below 20 groups), log sigma {LOG_SIGMA_STEP} from {LOG_SIGMA_LOWEST}"}
    # The I = 5 dataset again under sigma ~ U(0, 30): its beta posterior then fits in -+60. Its
    # beta ends come from the far tail of sigma, where the 0.05 log-sigma grid's O(h^2) error is
    # ~1.5e-4 (halving the step moves beta's upper end by 1.1e-4); at UPPER30_LOG_SIGMA_STEP it
    # is a quarter of that.
    meta["extra"] = ("sim_I5_r1_upper30: the I = 5 dataset under sigma ~ U(0, 30), whose beta posterior "
                     f"fits in the grid's -+60; log sigma {UPPER30_LOG_SIGMA_STEP}")
    extra = [{**d, "id": d["id"] + "_upper30", "sigma_upper": 30.0, "log_sigma_step": UPPER30_LOG_SIGMA_STEP}
             for d in datasets if d["id"] == "sim_I5_r1"]
    for dataset in datasets + extra:
        if dataset["id"] in done:
            continue
        upper = dataset.get("sigma_upper", 100.0)
        step = dataset.get("log_sigma_step", LOG_SIGMA_STEP)
        summary = brute_force_posterior(dataset["y"], dataset["n"], sigma_upper=upper, log_sigma_step=step)
        results.append({"id": dataset["id"], **({"sigma_upper": upper} if upper != 100.0 else {}),
                        **({"log_sigma_step": step} if step != LOG_SIGMA_STEP else {}),
                        "y": dataset["y"], "n": dataset["n"], **summary})
        target.write_text(json.dumps({"meta": meta, "datasets": results}, indent=1))
        print(dataset["id"], "done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
