"""The study on a real SLURM cluster gives the same Parquet tables as a local run.

Runs ``tests/config_small.yaml`` twice, each in its own temporary copy of the repository:
once locally with ``profiles/default`` and once through Snakemake's SLURM
executor with ``workflow/profiles/slurm``, then compares every Parquet table under
``results/``. It also checks that the SLURM run really went through SLURM and that the
replicate chunks were bundled into fewer SLURM jobs than there are chunks.

It needs a running SLURM cluster whose compute node shares this filesystem; on one machine
``sudo bash tests/slurm/start_local_slurm.sh`` starts a one-node cluster on localhost.
Without one the test is skipped, except under CI (``CI=true``), where a missing cluster is a
failure: .ci/run starts the cluster, so not reaching it means something broke.

Deselect it with ``pytest -m "not slurm"``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = Path("tests") / "config_small.yaml"
START_SCRIPT = "tests/slurm/start_local_slurm.sh"
# The rule whose jobs the SLURM profile bundles, and the group it puts them in.
CHUNK_RULE = "fit_chunk"
CHUNK_GROUP = "replicate_chunks"
# Generous: the small study takes well under a minute locally; on SLURM most of the
# time is Snakemake start-up inside each job plus status polling.
RUN_TIMEOUT_SECONDS = 900

pytestmark = pytest.mark.slurm


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _slurm_unavailable_reason() -> str | None:
    """Why no usable SLURM cluster answers from here, or None when one does."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "the SLURM client commands (sinfo, sbatch) are not installed"
    try:
        states = subprocess.run(
            ["sinfo", "--noheader", "--format=%T"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s (is slurmctld running?)"
    if states.returncode != 0:
        return f"sinfo failed: {states.stderr.strip()}"
    usable = {"idle", "mixed", "allocated", "completing"}
    if not usable & {state.strip().rstrip("*~#") for state in states.stdout.split()}:
        return f"no SLURM node is up (node states: {states.stdout.split() or 'none'})"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    reason = _slurm_unavailable_reason()
    if reason is None:
        return
    message = f"No usable SLURM cluster: {reason}. Start one with `sudo bash {START_SCRIPT}`."
    if _running_in_ci():
        pytest.fail(f"SLURM TEST CLUSTER NOT RUNNING IN CI. {message}", pytrace=False)
    pytest.skip(message)


def _snakemake_executable() -> str:
    beside_python = Path(sys.executable).with_name("snakemake")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("snakemake")
    if found is None:
        pytest.fail("snakemake is not installed next to this Python nor on PATH")
    return found


def _copy_repository(destination: Path) -> Path:
    """A copy of the repository without results, Snakemake state or git history."""
    ignore = shutil.ignore_patterns(
        ".git", "results", ".snakemake", "__pycache__", ".pytest_cache", "*.egg-info"
    )
    shutil.copytree(REPO, destination, ignore=ignore)
    return destination


def _run_snakemake(workdir: Path, *args: str) -> str:
    """Run Snakemake in `workdir`, fail the test with its output if it fails."""
    command = [_snakemake_executable(), "--configfile", str(SMALL_CONFIG), *args]
    # The copy's own package comes first, so both runs (and every SLURM job, which
    # inherits this environment through sbatch --export=ALL) import the same code.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(workdir), os.environ.get("PYTHONPATH")])
    ))
    process = subprocess.Popen(
        command, cwd=workdir, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGINT lets the SLURM executor scancel what it submitted before exiting.
        os.killpg(process.pid, signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        pytest.fail(
            f"`{' '.join(command)}` did not finish in {RUN_TIMEOUT_SECONDS} s:\n"
            f"{output[-6000:]}{_slurm_job_logs(workdir)}"
        )
    if process.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` exited with {process.returncode}:\n"
            f"{output[-6000:]}{_slurm_job_logs(workdir)}"
        )
    return output


def _slurm_job_logs(workdir: Path) -> str:
    """The tails of the SLURM job logs Snakemake kept (it keeps those of failed jobs)."""
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    return "".join(
        f"\n---- {log.relative_to(workdir)} ----\n{log.read_text(errors='replace')[-2000:]}"
        for log in logs[-5:]
    )


def _parquet_tables(workdir: Path) -> dict[str, pd.DataFrame]:
    results = workdir / "results"
    return {
        str(path.relative_to(results)): pd.read_parquet(path)
        for path in sorted(results.rglob("*.parquet"))
    }


def test_slurm_run_matches_local_run(slurm_cluster, tmp_path):
    if not (REPO / SMALL_CONFIG).exists():
        pytest.fail(f"{SMALL_CONFIG} is missing: the pipeline's small test study is needed")
    local = _copy_repository(tmp_path / "local")
    on_slurm = _copy_repository(tmp_path / "slurm")

    _run_snakemake(local, "--workflow-profile", "profiles/default", "--cores", "2")
    slurm_output = _run_snakemake(
        on_slurm,
        "--workflow-profile", "workflow/profiles/slurm",
        # Poll SLURM every few seconds instead of the profile's 20 s: the jobs are tiny.
        "--slurm-init-seconds-before-status-checks", "3",
    )

    submissions = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_output)
    assert submissions, f"nothing was submitted to SLURM:\n{slurm_output[-4000:]}"
    chunk_jobs = len(re.findall(rf"^\s*(?:local)?rule {CHUNK_RULE}:", slurm_output, re.M))
    bundles = len(re.findall(rf"Group job {CHUNK_GROUP}\b", slurm_output))
    assert chunk_jobs > 1, f"expected several `{CHUNK_RULE}` jobs, saw {chunk_jobs}"
    assert 0 < bundles < chunk_jobs, (
        f"{chunk_jobs} `{CHUNK_RULE}` jobs went out in {bundles} `{CHUNK_GROUP}` bundles: "
        "the SLURM profile's `groups:` no longer matches the workflow's rule name"
    )

    local_tables = _parquet_tables(local)
    slurm_tables = _parquet_tables(on_slurm)
    assert local_tables, "the local run wrote no Parquet tables under results/"
    assert sorted(slurm_tables) == sorted(local_tables)
    for name, expected in local_tables.items():
        pd.testing.assert_frame_equal(
            slurm_tables[name], expected, check_exact=True, obj=f"results/{name}"
        )
