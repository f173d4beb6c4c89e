"""Faults a user can cause (issue 10), the end-to-end half: real Snakemake runs of the small study.

Each test works in its own temporary copy of the workflow (with profiles/default, which a plain
``snakemake`` reads by itself) and runs the same plain command a user would type,
``snakemake -j 2 --configfile tests/config_small.yaml``. Tables after a fault and its repair must
be identical to those of an undisturbed run.
"""

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, SMALL, snakemake_executable, workflow_copy

pytestmark = pytest.mark.pipeline

PLAIN = ["-j", "2", "--configfile", SMALL]
TABLES = ["cells", "performance", "fit_flags", "shrinkage_curve", "theory"]


def snakemake(directory: Path, *arguments, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([snakemake_executable(), *arguments], cwd=directory,
                          capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {arguments} failed:\n{done.stdout}\n{done.stderr}")
    return done


def interrupted(directory: Path, trigger, signal_number, whole_group=True, delay=0.0,
                timeout=120) -> tuple[int | None, str]:
    """Run the plain command; at the first output line where ``trigger(line)`` holds, wait
    ``delay`` s and send ``signal_number`` to its process group (as a terminal's Ctrl-C does) or
    to Snakemake alone. Return (exit code, or None if it had not exited after ``timeout`` s, and
    the output)."""
    process = subprocess.Popen([snakemake_executable(), *PLAIN], cwd=directory, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if trigger(line):
                time.sleep(delay)
                if whole_group:
                    os.killpg(process.pid, signal_number)
                else:
                    process.send_signal(signal_number)
                break
        # Keep draining the pipe so Snakemake never blocks on a full one.
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        if process.poll() is None:  # hung, or the test failed: leave no run behind
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(timeout=10)
    return code, "".join(lines)


def summary(directory: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(directory / f"results/summary/{name}.parquet") for name in TABLES}


def assert_same_tables(directory: Path, reference: Path) -> None:
    ours, theirs = summary(directory), summary(reference)
    for name in TABLES:
        pd.testing.assert_frame_equal(ours[name], theirs[name], check_exact=True, obj=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undisturbed run of the small study."""
    directory = workflow_copy(tmp_path_factory.mktemp("faults") / "reference", default_profile=True)
    snakemake(directory, *PLAIN)
    return directory


def started(rule: str, count: int = 1):
    seen = []

    def trigger(line: str) -> bool:
        if line.strip() in (f"localrule {rule}:", f"rule {rule}:"):
            seen.append(line)
        return len(seen) >= count

    return trigger


def finished(rule: str):
    """The moment Snakemake reports the first job of ``rule`` done (with -j 2 and these jobs, the
    next "Finished jobid" line after the rule's start is that job's)."""
    rule_started = started(rule)
    seen = []

    def trigger(line: str) -> bool:
        if seen or rule_started(line):
            seen.append(line)
        return len(seen) > 1 and "Finished jobid" in line

    return trigger


# Row 4: Ctrl-C at two moments, then the same plain command. As a fit job finishes while another
# runs, Snakemake 9.27.1 leaves that other job's finished outputs marked incomplete: without
# profiles/default's rerun-incomplete the rerun stopped with IncompleteFilesException in 4 of 4
# tries at or right after a job's finish on the development VM. During summarise, the half-made summary must be redone.
@pytest.mark.parametrize("moment, rule, delay", [
    (finished, "fit_chunk", 0.0),
    (started, "summarise", 0.5),
], ids=["as-a-fit-job-finishes", "during-summarise"])
def test_ctrl_c_then_the_same_command_completes_with_identical_tables(
        tmp_path, reference, moment, rule, delay):
    directory = workflow_copy(tmp_path / rule, default_profile=True)
    code, output = interrupted(directory, moment(rule), signal.SIGINT, delay=delay)
    assert code is not None and code != 0, output
    assert not (directory / "results/figures/shrinkage_curves.png").exists()  # stopped early
    again = snakemake(directory, *PLAIN)
    assert "IncompleteFilesException" not in again.stdout + again.stderr
    assert_same_tables(directory, reference)


# Row 4: after kill -9 the lock stays; the error the user sees must say what to do.
def test_after_kill_9_the_error_names_unlock_and_unlocking_completes(tmp_path, reference):
    directory = workflow_copy(tmp_path / "killed", default_profile=True)
    code, output = interrupted(directory, started("fit_chunk", 2), signal.SIGKILL, delay=1.0)
    assert code == -signal.SIGKILL, output
    again = snakemake(directory, *PLAIN, check=False)
    if again.returncode != 0:
        message = again.stdout + again.stderr
        assert "Directory cannot be locked" in message and "--unlock" in message
        snakemake(directory, "--unlock", *PLAIN)
        snakemake(directory, *PLAIN)
    assert_same_tables(directory, reference)


# Row 10: SIGTERM to Snakemake as a job finishes. Without the Snakefile's handler Snakemake
# 9.27.1 hung in 3 of 3 such tries on the development VM.
def test_sigterm_as_a_job_finishes_stops_snakemake_and_a_rerun_completes(tmp_path, reference):
    directory = workflow_copy(tmp_path / "terminated", default_profile=True)
    for attempt in range(3):
        code, output = interrupted(directory, lambda line: "Finished jobid" in line,
                                   signal.SIGTERM, whole_group=False, timeout=90)
        assert code is not None, f"snakemake hung after SIGTERM (attempt {attempt}):\n{output}"
        if (directory / "results/summary/performance.parquet").exists():
            break
    snakemake(directory, *PLAIN)
    assert_same_tables(directory, reference)


# Rows 5 and 6: a truncated chunk and a chunk copied over another's name.
def test_damaged_chunks_are_named_moved_aside_and_refitted_by_the_same_command(tmp_path, reference):
    directory = tmp_path / "damaged"
    shutil.copytree(reference, directory)
    cell = directory / "results/cells/I12_J5_sd1_p0.5"
    truncated = cell / "groups_0-20.parquet"
    truncated.write_bytes(truncated.read_bytes()[:2000])
    copied = cell / "replicates_20-40.parquet"
    copied.write_bytes((cell / "replicates_0-20.parquet").read_bytes())

    failed = snakemake(directory, *PLAIN, check=False)
    assert failed.returncode != 0
    message = failed.stdout + failed.stderr
    relative = {path: str(path.relative_to(directory)) for path in (truncated, copied)}
    # Each on one line (on stderr, and again where Snakemake prints the job's log).
    named = sorted({line for line in message.splitlines() if line.startswith("damaged chunk ")})
    assert len(named) == 2
    assert any(relative[truncated] + ": cannot be read" in line for line in named)
    assert any(relative[copied] + ": holds replicates 0-19" in line for line in named)
    log = (directory / "results/logs/summarise.log").read_text()
    assert all(line in log for line in named)
    assert (cell / "groups_0-20.parquet.damaged").exists()
    assert (cell / "replicates_20-40.parquet.damaged").exists()
    assert not (directory / "results/summary/performance.parquet").exists()  # nothing summarised

    repaired = snakemake(directory, *PLAIN)
    output = repaired.stdout + repaired.stderr
    assert re.search(r"^fit_chunk\s+2\s*$", output, flags=re.MULTILINE), output
    assert_same_tables(directory, reference)


# Rows 1 and 9: the report builds, and without the run's --configfile still describes that run.
def test_report_without_the_runs_configfile_describes_the_run(reference):
    done = snakemake(reference, "--report", "results/report.html")
    assert "Report of the study recorded in results/summary/study_config.yaml" in done.stderr
    report = (reference / "results/report.html").read_text(errors="replace")
    assert "40 replicates per" in report and "master seed 7" in report
    assert "1500 replicates per" not in report
    recorded = yaml.safe_load((reference / "results/summary/study_config.yaml").read_text())
    assert recorded["replicates"] == 40 and recorded["seed"] == 7

    again = snakemake(reference, "--configfile", SMALL, "--report", "results/report.html")
    assert "Report of the study recorded" not in again.stderr


# Rows 2, 3, 7, 8 through Snakemake itself: rejected at parse time, before results/ exists.
def _write(directory: Path, change: dict, drop: str | None = None) -> list[str]:
    config = yaml.safe_load((ROOT / SMALL).read_text())
    config.update(change)
    if drop:
        del config[drop]
    (directory / "tests/user.yaml").write_text(yaml.safe_dump(config))
    return ["--configfile", "tests/user.yaml"]


BAD = [
    ("replicates", lambda d: ["--configfile", SMALL, "--config", "replicates=1000000000000"],
     ["config key 'replicates'", "maximum of 10000000"]),
    ("agq-nAGQ", lambda d: _write(d, {"method_options": {"agq": {"nAGQ": 9}}}),
     ["method 'agq' has no option 'nAGQ'", "known keys: nagq", "did you mean 'nagq'"]),
    ("nagq-400", lambda d: _write(d, {"method_options": {"agq": {"nagq": 400}}}),
     ["config key 'method_options.agq.nagq'", "from 2 to 25"]),
    ("missing-grid", lambda d: _write(d, {}, drop="grid"),
     ["'grid' missing from", "user.yaml"]),
    ("replicate", lambda d: _write(d, {"replicate": 40}),
     ["config key 'replicate' is not allowed", "did you mean 'replicates'"]),
]


@pytest.mark.parametrize("arguments, expected", [(a, e) for _, a, e in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_configs_stop_snakemake_before_any_job(tmp_path, arguments, expected):
    directory = workflow_copy(tmp_path / "bad", default_profile=True)
    began = time.perf_counter()
    done = snakemake(directory, "-j", "1", *arguments(directory), check=False)
    elapsed = time.perf_counter() - began
    message = done.stdout + done.stderr
    assert done.returncode != 0
    for words in expected:
        assert words in message, message
    assert "Traceback" not in message
    assert not (directory / "results").exists()
    assert elapsed < 60  # Snakemake's own start-up; the config checks take milliseconds
