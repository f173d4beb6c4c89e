"""End-to-end runs of the Snakemake study on tests/config_small.yaml, in temporary copies.

Two runs are shared by the module: A (everything) with -j 2, chunks of 25 (uneven: 25 + 15)
and two joblib workers per job; B (the summary tables) with -j 1, one chunk per cell
(chunk_size=40 given as --config), one worker, the grid listed in reverse and without the
re_dist block. Their tables must be identical cell for cell, so the re_dist block changed no
existing cell. B is then extended by one cell to show only the new cell runs.
"""

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from glmmshrink.figure_registry import FIGURES as FIGURE_REGISTRY
from tests.conftest import ROOT, SMALL, snakemake_executable, workflow_copy

CELL_COLUMNS = ["cell", "n_groups", "n_trials_min", "n_trials_max", "re_sd", "p0", "re_dist"]
SUMMARY_COLUMNS = {
    "cells": ["cell", "cell_key", *CELL_COLUMNS[1:], "balanced", "beta_true", "sigma_true",
              "replicates"],
    "performance": [*CELL_COLUMNS, "method", "estimand", "measure", "value", "mcse", "n_used"],
    "fit_flags": [*CELL_COLUMNS, "method", "flag", "count", "replicates", "rate", "rate_mcse"],
    "shrinkage_curve": [*CELL_COLUMNS, "method", "bin", "proportion_low", "proportion_high",
                        "mean_proportion", "count", "n_estimates", "mean_estimate",
                        "mean_estimate_mcse", "mean_true_p", "mean_true_p_mcse"],
    "theory": [*CELL_COLUMNS, "method", "observed_slope", "observed_slope_mcse",
               "predicted_slope", "slope_difference", "observed_rmse_ratio",
               "observed_rmse_ratio_mcse", "predicted_rmse_ratio", "predicted_rmse_raw",
               "predicted_rmse_shrunk", "n_used"],
    "beta_intervals": [*CELL_COLUMNS, "method", "replicate", "beta_true", "beta_hat", "beta_se",
                       "beta_lower", "beta_upper", "covers", "z", "z_rank"],
}
# The small config's misspecification block (re_dist) adds two cells to its five normal ones.
N_CELLS, N_NORMAL_CELLS = 7, 5
ONE_CHUNK = ["--config", "chunk_size=40"]
FIGURES = list(FIGURE_REGISTRY)
DOCS_FIGURES = FIGURE_REGISTRY.docs()


def snakemake(directory: Path, *arguments, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [snakemake_executable(), *arguments], cwd=directory, capture_output=True, text=True,
        timeout=600,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {arguments} failed:\n{done.stdout}\n{done.stderr}")
    return done


def jobs_of(rule: str, output: str) -> int:
    found = re.search(rf"^{rule}\s+(\d+)\s*$", output, flags=re.MULTILINE)
    return int(found.group(1)) if found else 0


def summary(directory: Path) -> dict[str, pd.DataFrame]:
    return {
        name: pd.read_parquet(directory / f"results/summary/{name}.parquet")
        for name in SUMMARY_COLUMNS
    }


def cell_tables(directory: Path, kind: str) -> pd.DataFrame:
    files = sorted((directory / "results/cells").glob(f"*/{kind}_*.parquet"))
    keys = ["cell", "method", "replicate"] + (["group"] if kind == "groups" else [])
    table = pd.concat(map(pd.read_parquet, files), ignore_index=True)
    return table.sort_values(keys, ignore_index=True)


def snapshot(directory: Path) -> dict:
    return {
        str(path.relative_to(directory)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in directory.rglob("*")
        if path.is_file()
    }


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    directory = workflow_copy(tmp_path_factory.mktemp("run") / "a")
    # Target "all" and the README copies (rule docs) in one run.
    snakemake(directory, "all", "docs", "-j", "2", "--configfile", SMALL, "--config", "chunk_size=25",
              "--set-threads", "fit_chunk=2")
    return directory


@pytest.fixture(scope="module")
def run_b(tmp_path_factory):
    directory = workflow_copy(tmp_path_factory.mktemp("run") / "b")
    config = yaml.safe_load((ROOT / SMALL).read_text())
    config["grid"] = [block for block in reversed(config["grid"]) if "re_dist" not in block]
    (directory / "tests/config_b.yaml").write_text(yaml.safe_dump(config))
    # Only the tables: the figures are drawn by run A and, for B, by the grid-extension test.
    tables = [f"results/summary/{name}.parquet" for name in SUMMARY_COLUMNS]
    snakemake(directory, *tables, "-j", "1", "--configfile", "tests/config_b.yaml", *ONE_CHUNK)
    return directory


def test_outputs_have_the_documented_schema_and_sensible_values(run_a):
    config = yaml.safe_load((ROOT / SMALL).read_text())
    tables = summary(run_a)
    for name, columns in SUMMARY_COLUMNS.items():
        assert list(tables[name].columns) == columns, name
    cells = tables["cells"]
    assert len(cells) == N_CELLS and (cells["replicates"] == config["replicates"]).all()
    assert sorted(cells.loc[cells["re_dist"] != "normal", "cell"]) == [
        "I12_J20_sd1_p0.5_skewed", "I12_J20_sd1_p0.5_t3"]

    performance = tables["performance"].set_index(["cell", "method", "estimand", "measure"])
    slopes = performance.xs(("p", "shrinkage_slope"), level=("estimand", "measure"))["value"]
    assert (slopes.xs("raw", level="method") == 1.0).all()
    assert (slopes.xs("laplace", level="method") < 1.0).all()
    assert (slopes.xs("agq", level="method") < 1.0).all()
    assert (slopes.xs("bayes", level="method") < 1.0).all()
    sigma_bias = performance.xs(("sigma", "bias"), level=("estimand", "measure"))
    assert sigma_bias["mcse"].gt(0).all() and sigma_bias["n_used"].le(config["replicates"]).all()
    assert "raw" not in sigma_bias.index.get_level_values("method")

    flags = tables["fit_flags"]
    assert (flags["replicates"] == config["replicates"]).all()
    common_flags = {"nonconverged", "singular", "separated", "fit_error"}
    for method, flagged in flags.groupby("method"):
        assert set(flagged["flag"]) == common_flags | ({"improper"} if method == "bayes" else set())
    curve = tables["shrinkage_curve"]
    raw_curve = curve[curve["method"] == "raw"]
    assert (raw_curve["mean_estimate"] - raw_curve["mean_proportion"]).abs().max() < 1e-12
    # Every group of every replicate lands in exactly one bin.
    counts = curve.groupby(["cell", "method"])["count"].sum()
    n_groups = cells.set_index("cell")["n_groups"]
    assert (counts == counts.index.get_level_values("cell").map(n_groups) * config["replicates"]).all()

    for figure in FIGURES:
        for extension in ("png", "pdf"):
            assert (run_a / f"results/figures/{figure}.{extension}").stat().st_size > 1000
    # The small config's seed answer asks for J = 50, which its grid lacks: a placeholder panel.
    log = (run_a / "results/logs/figures/seed_answer.log").read_text()
    assert "wrote seed_answer" in log
    assert "seed cells not in the grid, drawn as placeholders: ['I12_J50_sd1_p0.5']" in log

    replicates = cell_tables(run_a, "replicates")
    assert len(replicates) == N_CELLS * config["replicates"] * len(config["methods"])
    logs = sorted((run_a / "results/logs/fit").glob("*/*.log"))
    assert [log.stem for log in logs[:2]] == ["0-25", "25-40"]
    assert len(logs) == N_CELLS * 2
    for log in logs:
        start, stop = map(int, log.stem.split("-"))
        assert f"{stop - start}/{stop - start} replicates done" in log.read_text()


def test_bayes_has_its_measures_and_theory_is_compared_per_cell(run_a):
    config = yaml.safe_load((ROOT / SMALL).read_text())
    tables = summary(run_a)
    performance = tables["performance"]
    coverage = performance.query("measure == 'coverage_95' and estimand == 'p' and method == 'bayes'")
    assert len(coverage) == N_CELLS
    # Nominal 95 % intervals: within 4 MCSEs of 0.95 is a loose check that the columns line up.
    # At sd = 0 the truth sits on the prior's boundary and the intervals over-cover (~1).
    proper = coverage[coverage["re_sd"] > 0]
    assert len(proper) == N_CELLS - 1
    assert ((proper["value"] - 0.95).abs() < 4 * proper["mcse"] + 0.02).all()
    assert coverage.loc[coverage["re_sd"] == 0, "value"].iloc[0] > 0.95
    improper = tables["fit_flags"].query("flag == 'improper'")
    assert (improper["replicates"] == config["replicates"]).all()

    comparison = tables["theory"]
    shrinking = {"laplace", "agq", "bayes", "pql", "betabinomial"}
    assert set(comparison["method"]) == shrinking
    assert len(comparison) == N_CELLS * len(shrinking)
    assert comparison["predicted_slope"].between(0, 1).all()
    assert (comparison["slope_difference"]
            == comparison["observed_slope"] - comparison["predicted_slope"]).all()
    slopes = performance.query("measure == 'shrinkage_slope'").set_index(["cell", "method"])
    observed = comparison.set_index(["cell", "method"])["observed_slope"]
    assert (observed == slopes.loc[observed.index, "value"]).all()


# Issue 8: the interval estimands, each with its MCSE, for every method that gives them.
INTERVAL_MEASURES = {
    "beta": (("laplace", "agq", "bayes"), {"modelse", "relerror_modelse", "coverage_95", "width_95"}),
    "p": (("raw", "laplace", "agq", "bayes", "pql", "betabinomial"), {"coverage_95", "width_95"}),
    "sigma": (("laplace", "agq"), {"rejection_rate"}),
}


def test_every_interval_estimand_has_a_finite_value_and_mcse_in_every_cell(run_a):
    config = yaml.safe_load((ROOT / SMALL).read_text())
    performance = summary(run_a)["performance"]
    checked = 0
    for estimand, (methods, measures) in INTERVAL_MEASURES.items():
        for method in methods:
            rows = performance.query("estimand == @estimand and method == @method "
                                     "and measure in @measures")
            assert len(rows) == N_CELLS * len(measures), (estimand, method)
            assert np.isfinite(rows[["value", "mcse"]].to_numpy()).all(), (estimand, method)
            assert rows["n_used"].between(1, config["replicates"]).all(), (estimand, method)
            checked += len(rows)
    assert checked == N_CELLS * (3 * 4 + 6 * 2 + 2 * 1)
    # The LRT of sigma = 0 rejects less often at sd = 0 than at sd = 1.
    rejection = performance.query("measure == 'rejection_rate' and method == 'laplace'")
    by_sd = rejection.set_index("cell")["value"]
    assert by_sd["I12_J20_sd0_p0.5"] < by_sd["I12_J20_sd1_p0.5"]
    intervals = summary(run_a)["beta_intervals"]
    assert set(intervals["method"]) == {"laplace", "agq", "bayes"}
    assert intervals["z_rank"].between(0, 1).all()


def test_docs_rule_writes_small_copies_of_the_seed_figures(run_a):
    for figure in DOCS_FIGURES:
        size = (run_a / f"docs/{figure}.png").stat().st_size
        assert 1000 < size <= 150_000


def test_report_has_every_figure_with_its_caption_and_category(run_a):
    snakemake(run_a, "--configfile", SMALL, "--report", "results/report.html")
    report = (run_a / "results/report.html").read_text(errors="replace")
    for name, figure in FIGURE_REGISTRY.items():
        assert f"{name}.png" in report
        assert figure.category in report
        # The caption's first words, as docutils renders them (HTML-escaped, one line).
        caption = (ROOT / "workflow/report" / figure.caption).read_text()
        assert " ".join(caption.split()[:4]) in " ".join(report.split()), name


def test_tables_are_identical_across_jobs_chunks_workers_grid_order_and_added_axes(run_a, run_b):
    tables_a, tables_b = summary(run_a), summary(run_b)
    b_cells = set(tables_b["cells"]["cell"])
    assert len(b_cells) == N_NORMAL_CELLS and b_cells < set(tables_a["cells"]["cell"])

    def of_b_cells(table):
        return table[table["cell"].isin(b_cells)].reset_index(drop=True)

    for name in SUMMARY_COLUMNS:
        pd.testing.assert_frame_equal(of_b_cells(tables_a[name]), tables_b[name],
                                      check_exact=True, obj=name)
    for kind in ("replicates", "groups"):
        pd.testing.assert_frame_equal(
            of_b_cells(cell_tables(run_a, kind)), cell_tables(run_b, kind), check_exact=True,
            obj=kind
        )


def test_nothing_reruns_and_extending_the_grid_runs_only_the_new_cell(run_b, run_a):
    # run_a is requested so the reproducibility test sees run_b before it is extended.
    again = snakemake(run_b, "-n", "--configfile", "tests/config_b.yaml", *ONE_CHUNK)
    assert jobs_of("fit_chunk", again.stdout + again.stderr) == 0

    before = {p: stamp for p, stamp in snapshot(run_b).items() if p.startswith("results/cells/")}
    config = yaml.safe_load((run_b / "tests/config_b.yaml").read_text())
    config["grid"].append({"n_groups": 12, "n_trials": 10, "re_sd": 1.0, "p0": 0.5})
    (run_b / "tests/config_c.yaml").write_text(yaml.safe_dump(config))
    extended = snakemake(run_b, "-j", "2", "--configfile", "tests/config_c.yaml", *ONE_CHUNK)
    output = extended.stdout + extended.stderr
    assert jobs_of("fit_chunk", output) == 1
    assert "I12_J10_sd1_p0.5" in output
    after = snapshot(run_b)
    assert all(after[path] == stamp for path, stamp in before.items())
    assert (run_b / "results/cells/I12_J10_sd1_p0.5/replicates_0-40.parquet").exists()
    assert len(summary(run_b)["cells"]) == N_NORMAL_CELLS + 1
    for figure in FIGURES:
        assert (run_b / f"results/figures/{figure}.png").exists()


def _bad_grid(directory: Path, axis: str, value) -> str:
    config = yaml.safe_load((ROOT / SMALL).read_text())
    config["grid"][0][axis] = value
    (directory / "tests/bad.yaml").write_text(yaml.safe_dump(config))
    return "tests/bad.yaml"


BAD = [
    ("re_dist", "grid[0].re_dist", "normal, t<df> with df > 2 (e.g. t3), bimodal or skewed"),
    (["--config", "replicates=-5"], "replicates", "integer >= 1"),
    (["--config", "chunk_size=0"], "chunk_size", "integer >= 1"),
    (["--config", "seed=abc"], "seed", "integer >= 0"),
    (["--config", "replicates=lots"], "replicates", "integer >= 1"),
    ("re_sd", "grid[0].re_sd", "number >= 0"),
    ("p0", "grid[0].p0", "strictly between 0 and 1"),
]


@pytest.mark.parametrize("arguments, key, allowed", BAD)
def test_bad_config_is_rejected_before_any_job_and_touches_nothing(run_a, arguments, key, allowed):
    if isinstance(arguments, str):
        bad = _bad_grid(run_a, arguments, {"re_sd": -1.0, "re_dist": "t2"}.get(arguments, 1.0))
        arguments = ["--configfile", bad]
    else:
        arguments = ["--configfile", SMALL, *arguments]
    before = snapshot(run_a / "results")
    rejected = snakemake(run_a, "-j", "2", *arguments, check=False)
    assert rejected.returncode != 0
    message = rejected.stdout + rejected.stderr
    assert f"config key '{key}'" in message and allowed in message
    assert snapshot(run_a / "results") == before


def test_bad_config_creates_no_results_directory(tmp_path):
    directory = workflow_copy(tmp_path / "fresh")
    rejected = snakemake(directory, "-j", "1", "--config", "chunk_size=0", check=False)
    assert rejected.returncode != 0
    assert not (directory / "results").exists()


def test_jobs_are_ordered_fits_then_summary_then_figures(tmp_path):
    """Scheduling only: costly fit jobs first, and the summary, on which every figure but the
    seed ones waits, before any figure job that is ready at the same time."""
    from types import SimpleNamespace

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, ResourceSettings

    directory = workflow_copy(tmp_path / "workflow")
    with SnakemakeApi() as api:
        workflow = api.workflow(
            snakefile=directory / "Snakefile", workdir=directory,
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[directory / "config.yaml"]),
        )._workflow  # the parsed rules; Snakemake's API has no public accessor for them
        rules = {rule.name: rule for rule in workflow.rules}
        cells = workflow.globals["STUDY"].cells
        fits = [rules["fit_chunk"].priority(SimpleNamespace(cell=cell.name)) for cell in cells]
        figures = [rules["figure"].priority(SimpleNamespace(figure=name)) for name in FIGURE_REGISTRY]
    assert min(fits) >= rules["summarise"].priority > max(figures) > 0
