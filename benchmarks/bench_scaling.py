"""Cost per replicate of each method against replicates per call, groups I and trials J;
peak memory of one fit_chunk job at chunk_size 10,000 with I = 500 (issue 11, deliverable 3).

Run from the repository root (with the package importable, e.g. ``PYTHONPATH=.``):

    python benchmarks/bench_scaling.py [--budget 6] [--png benchmarks/scaling.png]
    python benchmarks/bench_scaling.py --memory-only [--memory-replicates 10000]

One process, one core: BLAS/OpenMP threads are pinned to 1 before numpy loads. Methods are
``raw``, ``laplace``, ``agq`` (nAGQ = 25), ``bayes`` and any other method in the registry, each
called as the study calls it (``METHODS[name].fit(y, n, options)``) on the study's simulated
data. Axes, each around the base design I = 30, J = 10, sd = 1, p0 = 0.5:

- replicates per call R = 100, 1,000, 10,000;
- groups I = 30, 100, 500 (J = 10), and again in unbalanced cells (n_i ~ U{2..50}, axis
  ``I~``): a balanced cell has at most J + 1 distinct groups, which the fitters may exploit;
- trials J = 5, 10, 50, 100 (I = 30).

Times are CPU seconds of this process (``time.process_time``), the best of ``--repeats``
calls: the machine may be shared, and CPU time is what a dedicated core would take. A point
runs once if its repeats would take more than ``--budget`` CPU seconds (four times that on the
R axis) at the cost a calibration call on 20 replicates measured, and on fewer replicates
(never below 20) if one call would; the table marks those with ``*`` and the replicates run.

The memory figure runs ``glmmshrink.study.write_chunk`` (or, for a checkout from before it
existed, ``fit_chunk`` then ``write_parquet_atomic``) in a child process, as one Snakemake
fit_chunk job would: one worker, batches of 250, the default method list, then reads the
child's peak resident set size (``ru_maxrss`` of RUSAGE_CHILDREN, or VmHWM where ``resource``
is missing). The issue requires less than 2 GiB.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

try:  # Unix only; elsewhere the child reports its own peak
    import resource  # noqa: E402
except ImportError:  # pragma: no cover
    resource = None

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.simulate import simulate_replicates  # noqa: E402

BASE = {"n_groups": 30, "n_trials": 10}
REPLICATES = [100, 1_000, 10_000]
GROUPS = [30, 100, 500]
TRIALS = [5, 10, 50, 100]
UNBALANCED = (2, 50)  # n_i ~ U{2..50} on the I~ axis
AXIS_REPLICATES = 250  # per call on the I and J axes: the batch size of a fit_chunk job
# The default study's methods (config.yaml), for the memory figure.
DEFAULT_METHODS = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["methods"]
OPTIONS = {"agq": {"nagq": 25}}
SEED = 20261127


def fit_method(name, y, n):
    """One registered method on counts (R, G): the only place the registry API is called."""
    from glmmshrink.methods import METHODS

    method = METHODS[name]
    return method.fit(y, n, method.options(OPTIONS.get(name)))


def methods_to_time() -> list[str]:
    from glmmshrink.methods import METHODS

    return DEFAULT_METHODS + sorted(set(METHODS) - set(DEFAULT_METHODS))


def label(name: str) -> str:
    return f"agq-{OPTIONS['agq']['nagq']}" if name == "agq" else name


def seconds_per_replicate(name, n_groups, n_trials, replicates, budget, repeats):
    """(seconds per replicate, replicates run): best of ``repeats`` calls, within ``budget``.

    A calibration call on 20 replicates estimates the cost; a point that would exceed the
    budget runs once, and if one call would still exceed it, on fewer replicates (at least 20).
    """
    low, high = n_trials if isinstance(n_trials, tuple) else (n_trials, n_trials)
    cell = Cell(n_groups=n_groups, n_trials_min=low, n_trials_max=high, re_sd=1.0, p0=0.5)
    data = simulate_replicates(cell, SEED, 0, replicates)
    probe = min(20, replicates)
    began = time.process_time()
    fit_method(name, data.y[:probe], data.n[:probe])
    estimate = max((time.process_time() - began) / probe, 1e-9)
    if estimate * replicates * repeats > budget:
        repeats = 1
    run = int(min(replicates, max(20, budget / estimate)))
    best = np.inf
    for _ in range(repeats):
        began = time.process_time()
        fit_method(name, data.y[:run], data.n[:run])
        best = min(best, time.process_time() - began)
    return best / run, run


def scaling_table(budget: float, repeats: int):
    """Rows (axis, value, method, ms per replicate, replicates asked, replicates run).

    The replicates axis gets four times the budget: its point is the large calls.
    """
    points = (
        [("R", r, BASE["n_groups"], BASE["n_trials"], r) for r in REPLICATES]
        + [("I", i, i, BASE["n_trials"], AXIS_REPLICATES) for i in GROUPS]
        + [("I~", i, i, UNBALANCED, AXIS_REPLICATES) for i in GROUPS]
        + [("J", j, BASE["n_groups"], j, AXIS_REPLICATES) for j in TRIALS]
    )
    rows = []
    for name in methods_to_time():
        fit_method(name, *_warm_up_counts())  # imports and first-call set-up, not timed
        for axis, value, n_groups, n_trials, asked in points:
            allowed = 4 * budget if axis == "R" else budget
            seconds, run = seconds_per_replicate(name, n_groups, n_trials, asked, allowed, repeats)
            rows.append((axis, value, name, 1e3 * seconds, asked, run))
            print(f"  {axis}={value:<6} {label(name):<8} {1e3 * seconds:9.4f} ms/replicate"
                  f" ({run} run)", file=sys.stderr, flush=True)
    return rows


def _warm_up_counts():
    data = simulate_replicates(Cell(n_groups=5, n_trials_min=4, n_trials_max=4, re_sd=1.0, p0=0.5),
                               SEED, 0, 3)
    return data.y, data.n


def markdown(rows) -> str:
    names = list(dict.fromkeys(row[2] for row in rows))
    lines = ["| axis | value | " + " | ".join(label(n) for n in names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    reduced = False
    for axis, value in dict.fromkeys((row[0], row[1]) for row in rows):
        cells = []
        for name in names:
            (_, _, _, ms, asked, run), = [r for r in rows if r[:3] == (axis, value, name)]
            mark = f" *{run}" if run < asked else ""
            reduced |= run < asked
            cells.append(f"{ms:.4g}{mark}")
        lines.append(f"| {axis} | {value} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("CPU ms per replicate, one core, best of repeats. R: replicates per call at "
                 f"I = 30, J = 10; I, I~ and J axes: {AXIS_REPLICATES} replicates per call around "
                 "the same base design (I~: n_i ~ U{2..50}).")
    if reduced:
        lines.append("`*N`: only N replicates were run to stay within the time budget.")
    return "\n".join(lines)


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row[2] for row in rows))
    panels = [("R", "replicates per call (I = 30, J = 10)"), ("I", "groups I (J = 10)"),
              ("I~", "groups I (n_i ~ U{2..50})"), ("J", "trials J (I = 30)")]
    figure, axes = plt.subplots(1, len(panels), figsize=(15, 3.8), sharey=True)
    for axis, (key, title) in zip(axes, panels):
        for name in names:
            chosen = [r for r in rows if r[0] == key and r[2] == name]
            axis.plot([r[1] for r in chosen], [r[3] for r in chosen], "o-", label=label(name))
        axis.set_xscale("log")
        axis.set_yscale("log")
        values = sorted({r[1] for r in rows if r[0] == key})
        axis.set_xticks(values, [str(v) for v in values])
        axis.minorticks_off()
        axis.set_xlabel(title)
    axes[0].set_ylabel("ms per replicate (one core)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


MEMORY_CHILD = r"""
import math, os, sys, tempfile, time
from glmmshrink.config import Cell
from glmmshrink import study
print(study.__file__, file=sys.stderr)
replicates, n_groups, n_trials = map(int, sys.argv[1:4])
methods = sys.argv[4].split(",")
options = {"agq": {"nagq": 25}}
cell = Cell(n_groups=n_groups, n_trials_min=n_trials, n_trials_max=n_trials, re_sd=1.0, p0=0.5)
batch = max(1, min(250, math.ceil(replicates / 4)))  # as scripts/fit_chunk.py, one worker
out = tempfile.mkdtemp(prefix="glmmshrink-memory-")
began, cpu_began = time.perf_counter(), time.process_time()
paths = os.path.join(out, "replicates.parquet"), os.path.join(out, "groups.parquet")
if hasattr(study, "write_chunk"):
    study.write_chunk(cell, 20240611, 0, replicates, methods, *paths, options, batch_size=batch)
else:
    tables = study.fit_chunk(cell, 20240611, 0, replicates, methods, options, batch_size=batch)
    for table, path in zip(tables, paths):
        study.write_parquet_atomic(table, path)
    del tables
seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
size = sum(os.path.getsize(p) for p in paths)
for p in paths:
    os.remove(p)
os.rmdir(out)
status = "/proc/self/status"
lines = open(status).read().splitlines() if os.path.exists(status) else []
hwm = [line.split()[1] for line in lines if line.startswith("VmHWM")]
print(seconds, cpu, size, hwm[0] if hwm else "nan")
"""


def peak_memory(replicates: int, n_groups: int, n_trials: int, methods: list[str]) -> dict:
    """Peak RSS (MiB), seconds and output size of one fit_chunk job run in a child process."""
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(replicates), str(n_groups), str(n_trials),
         ",".join(methods)],
        check=True, capture_output=True, text=True,
        cwd=tempfile.gettempdir(),  # not the repository: the glmmshrink on PYTHONPATH is measured
    )
    seconds, cpu, size, hwm_kib = result.stdout.split()
    peak = float(hwm_kib) / 1024
    if resource is not None:  # ru_maxrss is in KiB on Linux (bytes on macOS)
        scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    module = [line for line in result.stderr.splitlines() if line.endswith("study.py")]
    return {"peak_mib": peak, "seconds": float(seconds), "cpu": float(cpu), "bytes": int(size),
            "module": module[0] if module else "?"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=6.0,
                        help="seconds per (method, point) including repeats")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--png", type=Path, help="write the log-log figure here")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-replicates", type=int, default=10_000)
    parser.add_argument("--memory-groups", type=int, default=500)
    parser.add_argument("--memory-methods", default=",".join(DEFAULT_METHODS))
    arguments = parser.parse_args()

    print(f"load average {os.getloadavg()[0]:.2f}; numpy {np.__version__}; "
          f"{os.cpu_count()} CPUs")
    if not arguments.memory_only:
        began = time.perf_counter()
        rows = scaling_table(arguments.budget, arguments.repeats)
        print(markdown(rows))
        print(f"\n(table took {time.perf_counter() - began:.0f} s)")
        if arguments.png:
            plot(rows, arguments.png)
            print(f"wrote {arguments.png}")
    if not arguments.no_memory:
        methods = arguments.memory_methods.split(",")
        memory = peak_memory(arguments.memory_replicates, arguments.memory_groups, 10, methods)
        verdict = "under" if memory["peak_mib"] < 2048 else "OVER"
        print(f"\npeak RSS of one fit_chunk job: {memory['peak_mib']:.0f} MiB ({verdict} 2 GiB) "
              f"for {arguments.memory_replicates} replicates x I = {arguments.memory_groups}, "
              f"J = 10, methods {methods}; {memory['seconds']:.0f} s ({memory['cpu']:.0f} s CPU), "
              f"{memory['bytes'] / 2**20:.0f} MiB of Parquet; {memory['module']}")


if __name__ == "__main__":
    main()
