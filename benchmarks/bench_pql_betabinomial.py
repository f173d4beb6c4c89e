"""Fits per second of fit_pql and fit_betabinomial on one core, beside fit_glmm (Laplace).

Run:  python benchmarks/bench_pql_betabinomial.py [--reps 10000] [--repeats 3]

BLAS and OpenMP threads are pinned to 1 before numpy loads, and the clock is the process CPU
time, so a busy shared machine inflates the figures less. They are still noisy:
compare the ratios within one run (best of ``--repeats`` for each fitter), not absolute numbers
across runs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

from glmmshrink import fit_betabinomial, fit_glmm, fit_pql  # noqa: E402
from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.simulate import simulate_replicates  # noqa: E402

DESIGNS = {
    "seed question (I=30, J=10, sd=1, p0=0.7)": Cell(
        n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7),
    "J=100 (I=30, sd=1, p0=0.5)": Cell(
        n_groups=30, n_trials_min=100, n_trials_max=100, re_sd=1.0, p0=0.5),
    "unbalanced (I=30, J=2..50, sd=1, p0=0.5)": Cell(
        n_groups=30, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.5),
}
FITTERS = {"fit_betabinomial": fit_betabinomial, "fit_pql": fit_pql, "fit_glmm (Laplace)": fit_glmm}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for label, cell in DESIGNS.items():
        data = simulate_replicates(cell, 1, 0, args.reps)
        rates = {}
        for name, fit in FITTERS.items():
            best = float("inf")
            for _ in range(args.repeats):
                start = time.process_time()
                fit(data.y, data.n)
                best = min(best, time.process_time() - start)
            rates[name] = args.reps / best
        laplace = rates["fit_glmm (Laplace)"]
        print(label)
        for name, rate in rates.items():
            print(f"  {name:20s} {rate:9,.0f} fits/s  ({rate / laplace:.2f} x Laplace)")


if __name__ == "__main__":
    main()
