"""Benchmark of the whole study against its compute floor, with a per-stage breakdown.

Run from the repository root (with the package importable, e.g. ``PYTHONPATH=.``):

    python benchmarks/bench_pipeline.py [--config config.yaml] [--cores 2] [--keep] [--rounds 3]
    python benchmarks/bench_pipeline.py --floor-only      # the floor alone, no Snakemake run
    python benchmarks/bench_pipeline.py --analyse DIR     # breakdown of a kept run directory
    python benchmarks/bench_pipeline.py --contention      # one core alone vs both cores busy

Two figures, and their ratio (issue 11, deliverable 2):

- **wall**: ``snakemake -j CORES`` on the config, from a clean copy of the workflow;
- **floor**: the same fits (every model-fitting method of the config's ``methods``, i.e. all
  but ``raw``, over the config's cells and replicates) done through the method registry in one
  process, BLAS/OpenMP threads pinned to 1, divided by CORES.

The breakdown reads each job's Snakemake benchmark (``results/benchmarks/**.tsv``: job wall
time ``s`` and ``cpu_time``) and the ``work time`` its script logs, and places the jobs on a
timeline (a benchmark file is written when its job ends, so start = mtime - s): Snakemake's
start-up before the first job, the fitting phase, and the serial tail after the last fit job
(summarise, figures). The machine is shared: the load average is printed with the numbers, and
only ratios measured in the same run are comparable. On it the same code measured 1.29, 1.44 and
1.68 in three runs within 15 minutes, so ``--rounds N`` alternates N Snakemake runs with N
floors and divides the fastest run by the lowest floor (noise only adds time), printing every
round's ratio too.

The last lines ask whether this target can hold together with issue 11's Bayes target
(``targets_together``): the CPU the run spends beyond the fits does not depend on the fitters,
so the bound wall / floor >= pipeline CPU / floor CPU is recomputed with Bayes at 4x Laplace.

``--contention`` measures what running two jobs at once costs each of them: the fits of the
config's first cells timed in one process alone, then in two processes at once (each the same
work). The floor is measured alone, the workflow's fit jobs run two at a time, so this slowdown
is part of the wall / floor ratio that no change to the workflow can remove.
"""

from __future__ import annotations

import os

# Pinned before numpy loads: the floor is per core, and the Snakemake jobs pin the same way.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK_TIME = re.compile(r"work time ([0-9.]+) s")


def fit_method(name, y, n, config_options):
    """One registered method on counts (R, G): the only place the registry API is called."""
    from glmmshrink.methods import METHODS

    method = METHODS[name]
    return method.fit(y, n, method.options(config_options))


def study_of(config_path: Path):
    """The validated study (cells, methods, replicates) of a config file, as Snakemake sees it."""
    from glmmshrink.config import check_config
    from glmmshrink.methods import METHODS

    config = yaml.safe_load(config_path.read_text())
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    return check_config(config, schema, METHODS)


def compute_floor(config_path: Path, batch_size: int | None = None, cells: int | None = None) -> dict:
    """Seconds of one core to simulate and fit the config's study (its first ``cells`` cells
    when given), by method.

    Replicates go through each method in the batches the ``fit_chunk`` jobs use (at most 250,
    as scripts/fit_chunk.py chooses for one worker) unless ``batch_size`` is given.
    """
    from glmmshrink.simulate import simulate_replicates

    study = study_of(config_path)
    fitted = [name for name in study.methods if name != "raw"]
    wall, cpu = defaultdict(float), defaultdict(float)

    def timed(key, work, *args):
        began, cpu_began = time.perf_counter(), time.process_time()
        result = work(*args)
        wall[key] += time.perf_counter() - began
        cpu[key] += time.process_time() - cpu_began
        return result

    fits = 0
    for cell in study.cells[:cells]:
        for start, stop in study.chunks():
            data = timed("(simulate)", simulate_replicates, cell, study.seed, start, stop)
            size = batch_size or max(1, min(250, math.ceil((stop - start) / 4)))
            for lo in range(0, stop - start, size):
                y, n = data.y[lo : lo + size], data.n[lo : lo + size]
                for name in fitted:
                    timed(name, fit_method, name, y, n, study.method_options.get(name))
                    fits += len(y)
    return {
        "wall": dict(wall),
        "cpu": dict(cpu),
        "fit_seconds": sum(v for k, v in wall.items() if k != "(simulate)"),
        "fit_cpu_seconds": sum(v for k, v in cpu.items() if k != "(simulate)"),
        "fits": fits,
        "cells": len(study.cells),
        "replicates": study.replicates,
    }


def _warm_worker(config_path: Path) -> None:
    """Imports and lazily built tables, before any timing, in every worker process."""
    from glmmshrink.simulate import simulate_replicates

    study = study_of(config_path)
    data = simulate_replicates(study.cells[0], 0, 0, 8)
    for name in study.methods:
        fit_method(name, data.y, data.n, study.method_options.get(name))


def contention(config_path: Path, cells: int = 3) -> tuple[float, list[float]]:
    """CPU seconds of the same work alone, and in each of two processes running at once."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=2, initializer=_warm_worker,
                             initargs=(config_path,)) as pool:
        def work():
            return pool.submit(compute_floor, config_path, cells=cells)

        alone = work().result()["fit_cpu_seconds"]
        together = [future.result()["fit_cpu_seconds"] for future in [work(), work()]]
    return alone, together


def targets_together(pipeline_cpu: float, floor_cpu: dict, drawing_cpu: float,
                     bayes_over_laplace: float = 4.0, target: float = 1.3) -> list[str]:
    """Lines on whether the wall / floor target can hold once Bayes meets its own target.

    On an idle machine the wall time is at least the run's CPU time over the cores, so
    wall / floor >= pipeline CPU / floor CPU = 1 + beyond / floor CPU, where ``beyond`` is the
    CPU the run spends outside the fits (Snakemake, job start-up, simulation, Parquet, the
    summaries and the figures). None of it depends on how fast the fitters are, so the bound is
    recomputed with Bayes's floor at ``bayes_over_laplace`` times Laplace's. ``drawing_cpu`` is
    the figure jobs' logged work (reading tables, drawing, saving PNG and PDF), which any run
    that makes the figures has to spend.
    """
    fits = {name: seconds for name, seconds in floor_cpu.items() if name != "(simulate)"}
    floor = sum(fits.values())
    beyond = pipeline_cpu - floor
    faster = floor - fits["bayes"] + bayes_over_laplace * fits["laplace"]
    return [
        f"CPU beyond the floor   {beyond:.1f} s (wall / floor >= {1 + beyond / floor:.2f} at "
        f"today's Bayes)",
        f"Bayes at {bayes_over_laplace:g}x Laplace   floor CPU {faster:.1f} s instead of "
        f"{floor:.1f} s: wall / floor >= {1 + beyond / faster:.2f}; {target:g} would leave "
        f"{(target - 1) * faster:.1f} s of CPU beyond the fits, against {drawing_cpu:.1f} s of the "
        f"figure jobs' own work (reading, drawing, saving) alone",
    ]


def _load() -> float:
    """The 1-minute load average: how busy the shared machine was (NaN where there is none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for descendant so far (Unix only)."""
    try:
        import resource
    except ImportError:  # pragma: no cover
        return float("nan")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_snakemake(config_path: Path, cores: int) -> tuple[Path, float, float, float]:
    """Run the workflow on a clean copy; (directory, start epoch, wall s, CPU s of the tree)."""
    directory = Path(tempfile.mkdtemp(prefix="glmmshrink-bench-"))
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, directory / name)
    for name in ("workflow", "scripts", "profiles"):
        shutil.copytree(ROOT / name, directory / name)
    shutil.copy(config_path, directory / "bench_config.yaml")
    snakemake = Path(sys.executable).parent / "snakemake"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cpu_before = _children_cpu()
    started = time.time()
    began = time.perf_counter()
    subprocess.run(
        [str(snakemake), "-j", str(cores), "--configfile", "bench_config.yaml", "-q"],
        cwd=directory, check=True, capture_output=True, env=environment,
    )
    wall = time.perf_counter() - began
    cpu = _children_cpu() - cpu_before
    (directory / "bench_timing.yaml").write_text(
        yaml.safe_dump({"started": started, "wall": wall, "cores": cores, "cpu": cpu}))
    return directory, started, wall, cpu


def snakemake_start_up() -> float:
    """Wall seconds of ``snakemake --version``: the start-up every Snakemake call pays.

    It depends on the installation, not on the workflow: Snakemake imports every installed
    plugin first, and the SLURM executor plugin runs ``scontrol show config``, which waits about
    9 s on a machine with SLURM's tools but no reachable controller.
    """
    snakemake = Path(sys.executable).parent / "snakemake"
    began = time.perf_counter()
    subprocess.run([str(snakemake), "--version"], check=True, capture_output=True)
    return time.perf_counter() - began


def _job_records(directory: Path) -> list[dict]:
    """One record per job with a benchmark: rule, start, end, wall, cpu and logged work time."""
    records = []
    benchmarks = directory / "results/benchmarks"
    for path in sorted(benchmarks.rglob("*.tsv")):
        header, values = path.read_text().splitlines()[:2]
        row = dict(zip(header.split("\t"), values.split("\t")))
        relative = path.relative_to(benchmarks).with_suffix("")
        rule = relative.parts[0] if len(relative.parts) > 1 else relative.name
        log = directory / "results/logs" / relative.with_suffix(".log")
        found = WORK_TIME.findall(log.read_text()) if log.exists() else []
        end = path.stat().st_mtime
        wall = float(row["s"])
        records.append({
            "rule": rule, "start": end - wall, "end": end, "wall": wall,
            "cpu": float(row.get("cpu_time") or "nan"),
            "rss_mb": float(row.get("max_rss") or "nan"),
            "work": float(found[-1]) if found else float("nan"),
        })
    return records


def breakdown(records: list[dict], started: float, wall: float) -> list[str]:
    """Lines of the per-rule and timeline breakdown of a finished run's ``_job_records``."""
    ended = started + wall
    lines = ["", "per rule      jobs  job wall s  work s  start-up+io s  cpu s  max RSS MB"]
    by_rule = defaultdict(list)
    for record in records:
        by_rule[record["rule"]].append(record)
    for rule, jobs in by_rule.items():
        job_wall = sum(r["wall"] for r in jobs)
        work = sum(r["work"] for r in jobs)
        cpu = sum(r["cpu"] for r in jobs)
        peak = max(r["rss_mb"] for r in jobs)
        lines.append(f"{rule:<12} {len(jobs):>5} {job_wall:>11.1f} {work:>7.1f} "
                     f"{job_wall - work:>14.1f} {cpu:>6.1f} {peak:>11.0f}")
    fit_jobs = by_rule.get("fit", [])
    first = min(r["start"] for r in records)
    last_fit = max(r["end"] for r in fit_jobs) if fit_jobs else first
    last = max(r["end"] for r in records)
    lines += [
        "",
        "timeline (s from the snakemake call)",
        f"  snakemake start-up, parse and DAG      {first - started:6.1f}",
        f"  fitting phase (first job .. last fit)  {last_fit - first:6.1f}",
        f"  tail after the last fit job            {ended - last_fit:6.1f}",
    ]
    for record in sorted(records, key=lambda r: r["start"]):
        if record["end"] > last_fit:
            lines.append(f"    {record['rule']:<14} {record['start'] - started:6.1f} .. "
                         f"{record['end'] - started:6.1f} (work {record['work']:.1f}, "
                         f"cpu {record['cpu']:.1f})")
    lines.append(f"  snakemake after the last job           {ended - last:6.1f}")
    if fit_jobs:
        per_job = [r["wall"] - r["work"] for r in fit_jobs]
        lines.append(f"  fit job start-up + writing, per job    "
                     f"{sum(per_job) / len(per_job):6.2f} (min {min(per_job):.2f})")
    return lines


class Round(NamedTuple):
    """One Snakemake run and the floor measured right after it."""

    wall: float
    cpu: float
    started: float
    directory: Path
    floor_per_core: float
    floor: dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--floor-only", action="store_true", help="skip the Snakemake run")
    parser.add_argument("--analyse", type=Path, help="only the breakdown of a kept directory")
    parser.add_argument("--batch-size", type=int, help="floor batch size (default: the jobs')")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate this many Snakemake runs and floors; the best of each counts")
    parser.add_argument("--contention", action="store_true",
                        help="only the cost of running two fit processes at once")
    arguments = parser.parse_args()
    config_path = (ROOT / arguments.config).resolve()

    if arguments.analyse:
        timing = yaml.safe_load((arguments.analyse / "bench_timing.yaml").read_text())
        print("\n".join(breakdown(_job_records(arguments.analyse), timing["started"], timing["wall"])))
        return

    if arguments.contention:
        alone, together = contention(config_path)
        print(f"same fits, CPU s: alone {alone:.2f}; two at once {together[0]:.2f} and "
              f"{together[1]:.2f}; slowdown {sum(together) / 2 / alone:.3f} "
              f"(load average {_load():.2f})")
        return

    print(f"config                 {arguments.config}")
    print(f"cores                  {arguments.cores}")
    if arguments.floor_only:
        print_floor(config_path, arguments.cores, arguments.batch_size)
        return
    rounds = []
    for number in range(1, arguments.rounds + 1):
        if arguments.rounds > 1:
            print(f"\nround {number} of {arguments.rounds}")
        load = _load()
        directory, started, wall, cpu = run_snakemake(config_path, arguments.cores)
        print(f"wall time              {wall:.1f} s (load average before/after: "
              f"{load:.2f}/{_load():.2f})")
        print(f"CPU time, all of it    {cpu:.1f} s (snakemake and every job: user + system)")
        print(f"snakemake --version    {snakemake_start_up():.1f} s (the installation's start-up, "
              f"part of the wall time)")
        floor = print_floor(config_path, arguments.cores, arguments.batch_size)
        per_core = floor["fit_seconds"] / arguments.cores
        print(f"ratio wall / floor     {wall / per_core:.2f}")
        print(f"ratio of CPU times     {cpu / floor['fit_cpu_seconds']:.2f} (pipeline / floor; about "
              f"a lower bound of the wall ratio on an idle machine)")
        rounds.append(Round(wall, cpu, started, directory, per_core, floor))
    # Noise only ever adds time, so the least of each is the best estimate of its cost.
    fastest = min(rounds, key=lambda run: run.wall)
    lowest = min(rounds, key=lambda run: run.floor_per_core)
    if arguments.rounds > 1:
        print(f"\nbest of {arguments.rounds} rounds: wall {fastest.wall:.1f} s, floor "
              f"{lowest.floor_per_core:.1f} s, ratio {fastest.wall / lowest.floor_per_core:.2f} "
              "(each round's: " + ", ".join(f"{run.wall / run.floor_per_core:.2f}" for run in rounds)
              + ")")
        print("breakdown of the fastest Snakemake run:")
    records = _job_records(fastest.directory)
    print("\n".join(breakdown(records, fastest.started, fastest.wall)))
    drawing = sum(r["work"] for r in records if r["rule"] == "figures")
    print("\n".join(targets_together(fastest.cpu, lowest.floor["cpu"], drawing)))
    for run in rounds:
        if arguments.keep:
            print(f"kept                   {run.directory}")
        else:
            shutil.rmtree(run.directory)


def print_floor(config_path: Path, cores: int, batch_size: int | None) -> dict:
    """Measure the compute floor, print it by method and return ``compute_floor``'s record."""
    load = _load()
    floor = compute_floor(config_path, batch_size)
    print(f"floor                  {floor['fit_seconds'] / cores:.1f} s = {floor['fit_seconds']:.1f} s "
          f"of one core / {cores} (load average before/after: {load:.2f}/{_load():.2f})")
    print(f"  its CPU time         {floor['fit_cpu_seconds']:.1f} s (the wall time less waiting "
          f"for a shared core)")
    print(f"  fits                 {floor['fits']} ({floor['cells']} cells x "
          f"{floor['replicates']} replicates x methods)")
    print("  by method            wall s    CPU s")
    for name, seconds in floor["wall"].items():
        print(f"    {name:<18} {seconds:7.1f}  {floor['cpu'][name]:7.1f}")
    return floor


if __name__ == "__main__":
    main()
