"""Fits per second of fit_glmm on one core, and the ratio to lme4::glmer when R is installed.

Run:  python benchmarks/bench_fit.py [--reps 20000] [--lme4-reps 40]

BLAS and OpenMP threads are pinned to 1 before numpy loads, so the figures are per core. The
machine is shared and noisy: compare ratios measured in the same run, not absolute numbers
across runs.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
try:  # peak resident memory; the module is Unix-only
    import resource  # noqa: E402
except ImportError:
    resource = None
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from glmmshrink import fit_glmm  # noqa: E402
from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.simulate import simulate_replicates  # noqa: E402

GLMER_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- jsonlite::fromJSON(args[1])
fit_one <- function(i) {
  g <- factor(seq_along(d$y[i, ]))
  glmer(cbind(d$y[i, ], d$n[i, ] - d$y[i, ]) ~ (1 | g), family = binomial)
}
invisible(fit_one(1))
t0 <- proc.time()[["elapsed"]]
for (i in seq_len(nrow(d$y))) invisible(fit_one(i))
cat((proc.time()[["elapsed"]] - t0) / nrow(d$y), "\n")
"""


def study_data(reps, cell, seed=20261126):
    """``reps`` datasets of ``cell`` from the study's own data-generating mechanism."""
    data = simulate_replicates(cell, seed, 0, reps)
    return data.y, data.n


def fits_per_second(y, n, nagq=1, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fit = fit_glmm(y, n, nagq=nagq)
        best = min(best, time.perf_counter() - start)
    return y.shape[0] / best, fit


def glmer_seconds_per_fit(y, n):
    """Median-free simple timing of glmer on the same datasets; None when R or lme4 is absent."""
    if shutil.which("Rscript") is None:
        return None
    probe = subprocess.run(["Rscript", "-e", "library(lme4); library(jsonlite)"], capture_output=True)
    if probe.returncode != 0:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data_path, script_path = os.path.join(tmp, "d.json"), os.path.join(tmp, "bench.R")
        with open(data_path, "w") as handle:
            json.dump({"y": y.tolist(), "n": n.tolist()}, handle)
        with open(script_path, "w") as handle:
            handle.write(GLMER_SCRIPT)
        out = subprocess.run(["Rscript", script_path, data_path], capture_output=True, text=True)
    if out.returncode != 0:
        print("glmer timing failed:", out.stderr.strip()[-300:])
        return None
    return float(out.stdout.split()[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20_000)
    parser.add_argument("--lme4-reps", type=int, default=40)
    parser.add_argument("--memory-reps", type=int, default=100_000)
    args = parser.parse_args()
    seed_cell = Cell(n_groups=30, n_trials_min=10, n_trials_max=10, re_sd=1.0, p0=0.7)
    designs = {
        "seed design I=30 J=10 p0=0.7 sd=1": (args.reps, seed_cell),
        "I=500 J=5 p0=0.5 sd=1": (max(1, args.reps // 10), Cell(
            n_groups=500, n_trials_min=5, n_trials_max=5, re_sd=1.0, p0=0.5)),
        "unbalanced I=30 n_i~U{1..60} p0=0.5 sd=1": (args.reps, Cell(
            n_groups=30, n_trials_min=1, n_trials_max=60, re_sd=1.0, p0=0.5)),
    }
    seed_data = None
    for label, design in designs.items():
        y, n = study_data(*design)
        rate, fit = fits_per_second(y, n)
        print(f"{label:45s} R={y.shape[0]:6d}  {rate:9.0f} fits/s/core  "
              f"converged {fit.converged.mean():.4f}  singular {fit.singular.mean():.4f}  "
              f"mean iterations {fit.n_iter.mean():.1f}")
        seed_data = seed_data if seed_data is not None else (y, n, rate)
    y, n, seed_rate = seed_data
    agq_rate, _ = fits_per_second(y[:2000], n[:2000], nagq=25, repeats=1)
    print(f"{'seed design, nagq=25':45s} R={2000:6d}  {agq_rate:9.0f} fits/s/core")

    glmer_time = glmer_seconds_per_fit(y[: args.lme4_reps], n[: args.lme4_reps])
    if glmer_time is None:
        print("lme4 comparison skipped: Rscript with lme4 and jsonlite not found")
    else:
        print(f"lme4::glmer on {args.lme4_reps} seed-design datasets: {1000 * glmer_time:.1f} ms/fit; "
              f"fit_glmm is {seed_rate * glmer_time:.0f}x faster per core")

    y, n = study_data(args.memory_reps, seed_cell)
    if resource is None:
        print("peak memory not measured: no resource module on this platform")
        return
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    fit_glmm(y, n)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{args.memory_reps} datasets of I=30: {elapsed:.1f} s, peak RSS {peak / 2**20:.2f} GiB "
          f"(grew {max(0, peak - before) / 2**20:.2f} GiB)")


if __name__ == "__main__":
    main()
