"""Peak memory and time of one fit_glmm call on a study-sized chunk, one process per method.

Run:  python benchmarks/bench_fit_memory.py [--reps 10000] [--groups 500] [--trials 10]

Each method runs in a fresh process (peak RSS is per process) with BLAS/OpenMP threads pinned to
1, importing the ``glmmshrink`` of this checkout. The chunk comes from the study's simulator; the report gives the RSS with the data loaded, the
peak RSS of the process (``ru_maxrss``), CPU and wall time of the fit. The study's jobs must stay
under 2 GiB at chunk_size 10,000 with I = 500 (issue 11).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def _rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(reps, groups, trials_min, trials_max, nagq):
    from glmmshrink import fit_glmm
    from glmmshrink.config import Cell
    from glmmshrink.simulate import simulate_replicates

    data = simulate_replicates(Cell(n_groups=groups, n_trials_min=trials_min, n_trials_max=trials_max, re_sd=1.0,
                                     p0=0.5), 20261127, 0, reps)
    loaded = _rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    fit = fit_glmm(data.y, data.n, nagq=nagq)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"loaded_mib": loaded, "peak_mib": peak, "wall_s": wall, "cpu_s": cpu,
                      "converged": float(fit.converged.mean())}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--trials", type=int, nargs=2, default=(10, 10), metavar=("MIN", "MAX"))
    parser.add_argument("--nagq", type=int, nargs="+", default=(1, 25))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.reps, args.groups, *args.trials, args.worker)
        return
    print(f"fit_glmm on R={args.reps} replicates of I={args.groups}, n_i in "
          f"{args.trials[0]}..{args.trials[1]}, one process per method")
    for nagq in args.nagq:
        command = [sys.executable, __file__, "--worker", str(nagq), "--reps", str(args.reps),
                   "--groups", str(args.groups), "--trials", *map(str, args.trials)]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True,
                                           env=env).stdout)
        print(f"nagq={nagq:2d}: data loaded {result['loaded_mib']:7.0f} MiB, peak RSS "
              f"{result['peak_mib']:7.0f} MiB, fit {result['cpu_s']:6.1f} s CPU "
              f"({result['wall_s']:6.1f} s wall), converged {result['converged']:.4f}")


if __name__ == "__main__":
    main()
