"""Per-replicate time of fit_glmm with nagq = 25 (AGQ) against nagq = 1 (Laplace), on one core.

Run:  python benchmarks/bench_agq.py [--reps 2000] [--rounds 5] [--baseline DIR]

Designs (the study's simulator, issue 11): the seed question (I = 30, J = 10, p0 = 0.7, sd = 1)
and an unbalanced I = 30 design with n_i uniform on 2..50. Each round times Laplace then AGQ on
each design, interleaved, in a fresh process with BLAS/OpenMP threads pinned to 1; the table shows
the best round. Times are the process's CPU time (user + system, ``time.process_time``), which a
shared, oversubscribed machine inflates far less than wall time; page faults count in it. With ``--baseline DIR`` (a directory holding another ``glmmshrink`` package, e.g.
``git archive <commit> glmmshrink | tar -x -C DIR``) the rounds alternate between that tree and
this one, so before/after figures and ratios come from one run on the same machine state.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

DESIGNS = {
    "seed I=30 J=10 p0=0.7 sd=1": dict(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7),
    "unbalanced I=30 n_i~U{2..50}": dict(n_groups=30, n_trials_min=2, n_trials_max=50, re_sd=1.0, p0=0.7),
}
METHODS = {"laplace": 1, "agq25": 25}
SEED = 20261127


def worker(reps):
    """Time each (design, method) once, interleaved; print seconds per replicate as JSON."""
    from glmmshrink import fit_glmm
    from glmmshrink.config import Cell
    from glmmshrink.simulate import simulate_replicates

    data = {label: simulate_replicates(Cell(**cell), SEED, 0, reps) for label, cell in DESIGNS.items()}
    for sample in data.values():  # warm-up: imports, Gauss-Hermite table, allocator
        for nagq in METHODS.values():
            fit_glmm(sample.y[:50], sample.n[:50], nagq=nagq)
    seconds, checks = {}, {}
    for label, sample in data.items():
        for method, nagq in METHODS.items():
            start = time.process_time()
            fit = fit_glmm(sample.y, sample.n, nagq=nagq)
            seconds[f"{label}|{method}"] = (time.process_time() - start) / reps
            checks[f"{label}|{method}"] = float(fit.converged.mean())
    print(json.dumps({"seconds": seconds, "converged": checks}))


def run_round(tree, reps):
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", "--reps", str(reps)],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="directory holding a baseline glmmshrink")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.reps)
        return
    trees = {"current": Path(__file__).resolve().parents[1]}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), **trees}
    best = {name: {} for name in trees}
    converged = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            result = run_round(tree, args.reps)
            converged[name] = result["converged"]
            for key, value in result["seconds"].items():
                best[name][key] = min(best[name].get(key, float("inf")), value)
    print(f"fit_glmm, {args.reps} replicates per design, best of {args.rounds} interleaved rounds, "
          "one thread; CPU ms per replicate")
    print(f"{'tree':9s} {'design':30s} {'Laplace':>9s} {'AGQ-25':>9s} {'ratio':>7s}  converged")
    for name in trees:
        for label in DESIGNS:
            laplace, agq = best[name][f"{label}|laplace"], best[name][f"{label}|agq25"]
            share = converged[name][f"{label}|agq25"]
            print(f"{name:9s} {label:30s} {1e3 * laplace:9.4f} {1e3 * agq:9.4f} "
                  f"{agq / laplace:7.2f}  {share:.4f}")


if __name__ == "__main__":
    main()
