"""Cost per replicate of posterior_glmm (exact quadrature posterior) on one core.

Run:  python benchmarks/bench_bayes.py [--reps 500]

Designs: the seed (I = 30 groups, J = 10 trials, p0 = 0.7, sd = 1), the seed answer's J = 50,
the study's largest J = 100, a large-sd cell (sd = 2) and an unbalanced cell (n_i uniform on
5..50, sd = 0.7). BLAS and OpenMP threads are pinned to 1 before numpy loads, so the figures are
per core. The machine is shared and noisy: take the best of a few repeats and compare within one
run. Targets: <= 1.5 ms per replicate for the seed design, <= 3 ms for J = 100 and unbalanced.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from glmmshrink.bayes import posterior_glmm  # noqa: E402
from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.simulate import simulate_replicates  # noqa: E402

DESIGNS = {
    "seed I=30 J=10 p0=0.7 sd=1": (30, 10, 0.7, 1.0),
    "I=30 J=50 p0=0.5 sd=0.7": (30, 50, 0.5, 0.7),
    "I=30 J=100 p0=0.7 sd=1": (30, 100, 0.7, 1.0),
    "I=30 J=10 p0=0.7 sd=2": (30, 10, 0.7, 2.0),
    "I=30 J~U(5,50) p0=0.5 sd=0.7": (30, (5, 50), 0.5, 0.7),
}


def seconds_per_replicate(y, n, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        posterior_glmm(y, n)
        best = min(best, time.perf_counter() - start)
    return best / y.shape[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=500, help="replicates per design")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    print(f"posterior_glmm, {args.reps} replicates per design, 1 thread")
    for name, (groups, trials, p0, sd) in DESIGNS.items():
        low, high = trials if isinstance(trials, tuple) else (trials, trials)
        cell = Cell(n_groups=groups, n_trials_min=low, n_trials_max=high, re_sd=sd, p0=p0)
        data = simulate_replicates(cell, args.seed, 0, args.reps)
        y, n = data.y, data.n
        cost = seconds_per_replicate(y, n)
        print(f"  {name:30s} {cost * 1e3:7.2f} ms/replicate  ({1 / cost:7.0f} replicates/s)")


if __name__ == "__main__":
    main()
