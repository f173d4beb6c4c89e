"""Benchmark of the whole study: `snakemake -j CORES` on a config, from a clean copy.

Reports the wall time, the number of model fits, and the share of the wall time not spent in
the jobs' own work (Python start-up, imports, Snakemake scheduling), as
1 - sum(work time logged by each job) / (cores * wall time).

    python benchmarks/bench_pipeline.py [--config config.yaml] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    arguments = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="glmmshrink-bench-"))
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, directory / name)
    for name in ("workflow", "scripts", "profiles"):
        shutil.copytree(ROOT / name, directory / name)
    config = ROOT / arguments.config
    shutil.copy(config, directory / "bench_config.yaml")
    snakemake = Path(sys.executable).parent / "snakemake"

    # The load average says how busy the machine was; Windows has none.
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    began = time.perf_counter()
    subprocess.run(
        [str(snakemake), "-j", str(arguments.cores), "--configfile", "bench_config.yaml", "-q"],
        cwd=directory, check=True, capture_output=True,
    )
    wall = time.perf_counter() - began

    work = sum(
        float(match)
        for log in (directory / "results/logs").rglob("*.log")
        for match in re.findall(r"work time ([0-9.]+) s", log.read_text())
    )
    job_seconds = sum(
        pd.read_csv(path, sep="\t")["s"].iloc[0]
        for path in (directory / "results/benchmarks").rglob("*.tsv")
    )
    n_jobs = len(list((directory / "results/benchmarks").rglob("*.tsv")))
    replicates = pd.concat(
        map(pd.read_parquet, (directory / "results/cells").glob("*/replicates_*.parquet"))
    )
    fits = replicates["method"].ne("raw").sum()
    print(f"config                 {arguments.config}")
    print(f"cores                  {arguments.cores} (load average before: {load_before:.2f})")
    print(f"wall time              {wall:.1f} s")
    print(f"jobs (with benchmark)  {n_jobs}")
    print(f"model fits             {fits} ({replicates['cell'].nunique()} cells; "
          f"{', '.join(sorted(replicates['method'].unique()))})")
    print(f"fits per second        {fits / wall:.0f} (whole pipeline)")
    print(f"sum of job wall times  {job_seconds:.1f} s; of in-job work {work:.1f} s")
    print(f"start-up overhead      {1 - work / (arguments.cores * wall):.1%} of cores x wall")
    if arguments.keep:
        print(f"kept                   {directory}")
    else:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
