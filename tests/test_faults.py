"""Faults a user can cause (issue 10), the fast half: each ends in a clear message.

Rows of the issue are named in each test's comment. The end-to-end half (interrupted runs,
damaged chunks on disk, the report, SIGTERM) is tests/test_faults_pipeline.py.
"""

import builtins
import importlib.metadata
import re
import subprocess
import sys
import time
import tomllib
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from packaging.requirements import Requirement

from glmmshrink.chunk_check import check_chunks
from glmmshrink.cli import main
from glmmshrink.config import Cell, check_config, missing_from_user_files
from glmmshrink.config_limits import HARD_MAX_NAGQ, MAX_NAGQ
from glmmshrink.methods import METHODS
from glmmshrink.study import fit_chunk

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
SMALL = yaml.safe_load((ROOT / "tests/config_small.yaml").read_text())


def rejected(change) -> str:
    with pytest.raises(ValueError) as error:
        check_config({**SMALL, **change}, SCHEMA, METHODS)
    return str(error.value)


def declared_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {Requirement(text).name: Requirement(text) for text in project["dependencies"]}


# Row 1: the README's install (`pip install -e .`) must bring what `snakemake --report` imports.
def test_install_brings_what_snakemake_report_needs():
    snakemake = declared_requirements()["snakemake"]
    assert "reports" in snakemake.extras
    for text in importlib.metadata.requires("snakemake"):
        requirement = Requirement(text)
        if requirement.marker is not None and requirement.marker.evaluate({"extra": "reports"}) \
                and not requirement.marker.evaluate({"extra": ""}):
            importlib.metadata.version(requirement.name)  # raises if not installed
    assert snakemake.specifier.contains(importlib.metadata.version("snakemake"))


# Row 10: no Snakemake release fixes the SIGTERM hang yet; the range stops before the next major.
def test_snakemake_range_has_an_upper_bound():
    assert any(spec.operator == "<" for spec in declared_requirements()["snakemake"].specifier)


# Row 14: everything the package imports at run time is declared.
def test_jsonschema_is_declared():
    assert "jsonschema" in declared_requirements()


# Row 2.
@pytest.mark.parametrize("change, key, largest", [
    ({"replicates": 10**12}, "replicates", "10000000"),
    ({"replicates": 10**12, "chunk_size": 10**12}, "replicates", "10000000"),
    ({"replicates": 10**7, "chunk_size": 1}, "chunk_size", "chunk_size >= 700"),  # 7 cells
    ({"replicates": 10**6, "chunk_size": 10**6}, "chunk_size", "chunk_size <= 83,333"),
])
def test_huge_studies_are_rejected_at_once_naming_the_key_and_the_limit(change, key, largest):
    check_config(SMALL, SCHEMA, METHODS)  # imports and the schema validator, timed elsewhere
    began = time.perf_counter()
    message = rejected(change)
    elapsed = time.perf_counter() - began
    assert f"config key '{key}'" in message and largest in message
    assert elapsed < 1.0
    tracemalloc.start()
    rejected(change)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20  # nothing like a chunk list was built


def test_a_grid_of_too_many_cells_is_rejected_before_expanding_it():
    grid = {"n_groups": 10, "n_trials": list(range(1, 1001)), "re_sd": [0.5] * 1000, "p0": 0.5}
    began = time.perf_counter()
    message = rejected({"grid": grid})
    assert time.perf_counter() - began < 1.0
    assert "config key 'grid'" in message and "1,000,000 cells, at most 10,000" in message


def test_the_default_study_is_within_the_limits():
    check_config(yaml.safe_load((ROOT / "config.yaml").read_text()), SCHEMA, METHODS)


# Row 3.
@pytest.mark.parametrize("method, options, key, suggestion", [
    ("agq", {"nAGQ": 9}, "nAGQ", "did you mean 'nagq'"),
    ("agq", {"nodes": 5}, "nodes", "known keys: nagq"),
    ("laplace", {"nagq": 5}, "nagq", "it takes no options"),
    ("bayes", {"sigma": ["uniform", 1]}, "sigma", "known keys: beta_prior, sigma_prior"),
])
def test_unknown_method_options_name_the_method_the_key_and_the_known_keys(
        method, options, key, suggestion):
    message = rejected({"method_options": {method: options}})
    assert f"method_options.{method}.{key}" in message
    assert f"method '{method}' has no option '{key}'" in message
    assert suggestion in message


@pytest.mark.parametrize("nagq", [0, 1, MAX_NAGQ + 1, 400])
def test_agq_nodes_outside_2_to_25_are_rejected(nagq):
    message = rejected({"method_options": {"agq": {"nagq": nagq}}})
    assert "config key 'method_options.agq.nagq'" in message


def test_more_agq_nodes_need_the_explicit_allowance_which_is_not_passed_to_the_fit():
    assert "allow_large_nagq: true" in rejected({"method_options": {"agq": {"nagq": 40}}})
    study = check_config({**SMALL, "method_options": {"agq": {"nagq": 40, "allow_large_nagq": True}}},
                         SCHEMA, METHODS)
    assert study.method_options["agq"] == {"nagq": 40}
    too_many = {"agq": {"nagq": HARD_MAX_NAGQ + 1, "allow_large_nagq": True}}
    assert f"from 2 to {HARD_MAX_NAGQ}" in rejected({"method_options": too_many})


# Row 8.
def test_a_misspelled_top_level_key_lists_the_valid_keys_and_the_closest_one():
    message = rejected({"replicate": 40})
    assert "config key 'replicate' is not allowed" in message
    assert "valid top-level keys: seed, replicates, chunk_size, grid, methods" in message
    assert "did you mean 'replicates'?" in message
    assert "Monte Carlo study configuration" not in message  # the schema's title is no help


def test_a_misspelled_grid_key_names_the_block_and_its_keys():
    config = {**SMALL, "grid": [{**SMALL["grid"][0], "re_SD": 1.0}]}
    with pytest.raises(ValueError) as error:
        check_config(config, SCHEMA, METHODS)
    assert "config key 'grid[0].re_SD' is not allowed" in str(error.value)
    assert "did you mean 're_sd'?" in str(error.value)


# Row 7: the check behind the Snakefile's --configfile rule (end to end in the pipeline file).
def test_a_user_config_missing_a_study_key_is_reported_with_the_file():
    user = {key: value for key, value in SMALL.items() if key != "grid"}
    message = missing_from_user_files(user, SCHEMA, ["my.yaml"])
    assert "'grid' missing from my.yaml" in message and "config.yaml" in message
    assert missing_from_user_files(SMALL, SCHEMA, ["my.yaml"]) is None


def test_optional_keys_of_config_yaml_equal_the_built_in_defaults():
    # A --configfile study inherits these from config.yaml; harmless only while they are defaults.
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    for name, options in default["method_options"].items():
        assert options == {**METHODS[name].default_options, **options}
        assert METHODS[name].options(options) == METHODS[name].options(None), name
    assert default["shrinkage_bins"] == SCHEMA["properties"]["shrinkage_bins"]["default"]


# Rows 5 and 6: what the summarise rule checks before it reads a chunk.
CELL = Cell(n_groups=6, n_trials_min=5, n_trials_max=5, re_sd=1.0, p0=0.5)
METHODS_USED = ["raw", "laplace"]


def write_chunk(directory: Path, start: int, stop: int, cell: Cell = CELL) -> list[Path]:
    replicates, groups = fit_chunk(cell, 3, start, stop, METHODS_USED)
    paths = []
    for kind, table in (("replicates", replicates), ("groups", groups)):
        path = directory / CELL.name / f"{kind}_{start}-{stop}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        paths.append(path)
    return paths


def problems_of(paths):
    return check_chunks(paths, {CELL.name: CELL.n_groups}, METHODS_USED)


def test_intact_chunks_pass(tmp_path):
    paths = write_chunk(tmp_path, 0, 4) + write_chunk(tmp_path, 4, 7)
    assert problems_of(paths) == []


def test_a_truncated_chunk_is_named(tmp_path):
    paths = write_chunk(tmp_path, 0, 4)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])
    (problem,) = problems_of(paths)
    assert problem.path == str(paths[1]) and "cannot be read" in problem.reason


def test_a_chunk_copied_over_another_ones_name_is_named(tmp_path):
    first = write_chunk(tmp_path, 0, 4)
    second = write_chunk(tmp_path, 4, 8)
    second[0].write_bytes(first[0].read_bytes())
    (problem,) = problems_of(first + second)
    assert problem.path == str(second[0])
    assert "holds replicates 0-3" in problem.reason and "its name says 4-7" in problem.reason


def test_a_chunk_of_another_cell_is_named(tmp_path):
    other = Cell(n_groups=6, n_trials_min=5, n_trials_max=5, re_sd=2.0, p0=0.5)
    foreign = write_chunk(tmp_path / "other", 0, 4, cell=other)
    paths = write_chunk(tmp_path, 0, 4)
    paths[0].write_bytes(foreign[0].read_bytes())
    (problem,) = problems_of(paths)
    assert f"holds cell(s) ['{other.name}']" in problem.reason


def test_duplicated_rows_and_missing_columns_are_named(tmp_path):
    paths = write_chunk(tmp_path, 0, 4)
    table = pq.read_table(paths[0])
    pq.write_table(pa.concat_tables([table, table]), paths[0])
    pq.write_table(pq.read_table(paths[1]).drop_columns(["p_hat"]), paths[1])
    reasons = sorted(problem.reason for problem in problems_of(paths))
    assert reasons[0].startswith("holds duplicated rows")
    assert reasons[1] == "lacks the column(s) p_hat of a groups chunk"


def test_a_groups_chunk_missing_a_group_is_named(tmp_path):
    paths = write_chunk(tmp_path, 0, 4)
    table = pq.read_table(paths[1]).to_pandas()
    pq.write_table(pa.Table.from_pandas(table[table["group"] != 2], preserve_index=False), paths[1])
    (problem,) = problems_of(paths)
    rows = 4 * CELL.n_groups
    assert problem.reason == f"holds {rows - 4} rows for method laplace, expected {rows}"


def test_a_chunk_missing_a_method_is_named(tmp_path):
    paths = write_chunk(tmp_path, 0, 4)
    problems = check_chunks(paths, {CELL.name: CELL.n_groups}, METHODS_USED + ["agq"])
    assert len(problems) == 2 and all("config asks for" in p.reason for p in problems)


# Row 11: one line on stderr, exit 2, and no estimates printed.
@pytest.mark.parametrize("arguments, expected", [
    (["demo", "--seed", "-3"], "argument --seed: must be a whole number >= 0, got '-3'"),
    (["fit", "{data}", "--response", "y", "--trials", "n", "--group", "g", "--nagq", "400"],
     f"argument --nagq: must be an integer from 1 to {MAX_NAGQ}, got 400"),
    (["fit", "{data}", "--response", "y", "--trials", "n", "--group", "g", "--nagq", "40"],
     "up to 100 with --allow-large-nagq"),
    (["fit", "{data}", "--response", "y", "--trials", "n", "--group", "g",
      "--out", "/nonexistent/dir/x.csv"],
     "cannot write /nonexistent/dir/x.csv: No such file or directory"),
])
def test_cli_faults_give_one_line_and_no_estimates(tmp_path, capfd, arguments, expected):
    data = tmp_path / "counts.csv"
    data.write_text("g,y,n\na,3,10\nb,5,10\nc,9,10\nd,1,10\n")
    arguments = [str(data) if a == "{data}" else a for a in arguments]
    with np.errstate(all="raise"):
        assert main(arguments) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and expected in captured.err


def test_large_nagq_runs_when_allowed(tmp_path, capsys):
    data = tmp_path / "counts.csv"
    data.write_text("g,y,n\na,3,10\nb,5,10\nc,9,10\nd,1,10\n")
    assert main(["fit", str(data), "--response", "y", "--trials", "n", "--group", "g",
                 "--nagq", "40", "--allow-large-nagq"]) == 0
    assert "nAGQ = 40" in capsys.readouterr().out


# Row 12: `glmmshrink --help` loads neither pandas, scipy.stats nor the fitters.
def test_help_imports_no_pandas_scipy_stats_or_fitters():
    probe = (
        "import sys\n"
        "from glmmshrink.cli import main\n"
        "assert main(['--help']) == 0\n"
        "assert main(['fit', '--help']) == 0\n"
        "heavy = [m for m in ('pandas', 'scipy.stats', 'scipy', 'glmmshrink.bayes',"
        " 'glmmshrink.laplace', 'glmmshrink.glmer_summary') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert "HEAVY []" in done.stderr, done.stderr


# Row 14.
def test_readme_config_table_lists_every_registered_method():
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `methods` |"))
    for name in METHODS:
        assert f"`{name}`" in row, name


def test_readme_states_the_machine_of_every_measured_time():
    readme = (ROOT / "README.md").read_text()
    assert "about 80 s" not in readme and "1.5–2 min" not in readme
    for paragraph in readme.split("\n\n"):
        if re.search(r"\b(took|takes about)\b.*\d+(\.\d+)? ?(s|min)\b", paragraph):
            assert "measured on" in paragraph.lower() or "×" in paragraph, paragraph


def test_benchmarks_name_no_machine_path_and_run_without_resource(monkeypatch):
    for script in ("bench_pipeline.py", "bench_fit.py"):
        assert "/work/" not in (ROOT / "benchmarks" / script).read_text()
    real_import = builtins.__import__

    def no_resource(name, *args, **kwargs):
        if name == "resource":
            raise ImportError("no resource module (as on Windows)")
        return real_import(name, *args, **kwargs)

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "BLIS_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")  # bench_fit pins these; restored after the test
    monkeypatch.setattr(builtins, "__import__", no_resource)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.delitem(sys.modules, "bench_fit", raising=False)
    import bench_fit

    assert bench_fit.resource is None


# Row 13: the shrinkage_curves legend is whole and every row of panels has y tick labels, for
# the small test grid (2 x 2 with an empty panel) and the default grid (5 x 5 with a short row).
def curve_table(trials_by_sd, methods, designs):
    rows = []
    for sd, trials in trials_by_sd.items():
        for n_trials in trials:
            for method in methods:
                for n_groups, p0 in designs:
                    for y in range(n_trials + 1):
                        rows.append(dict(n_groups=n_groups, n_trials_min=n_trials,
                                         n_trials_max=n_trials, re_sd=sd, p0=p0, re_dist="normal",
                                         method=method,
                                         mean_proportion=y / n_trials,
                                         mean_estimate=0.5 + 0.8 * (y / n_trials - 0.5)))
    import pandas as pd

    return pd.DataFrame(rows)


ALL_METHODS = ["raw", "laplace", "agq", "bayes"]
GRIDS = {
    "small": ({0.3: [20], 1.0: [5, 20]}, [(12, 0.5)]),
    "default": ({**{sd: [5, 10, 20, 50, 100] for sd in (0.25, 0.5, 1.0, 2.0)}, 0.7: [10, 20, 50]},
                [(30, 0.5), (30, 0.7)]),
}


@pytest.mark.parametrize("grid", GRIDS)
def test_shrinkage_curves_legend_is_whole_and_every_row_has_y_labels(grid):
    from glmmshrink import figures

    trials_by_sd, designs = GRIDS[grid]
    figure = figures.shrinkage_curves(curve_table(trials_by_sd, ALL_METHODS, designs))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    labels = {text.get_text() for text in legend.get_texts()}
    from glmmshrink.methods import METHODS

    for method in ALL_METHODS:
        assert any(label.split(",")[0] == METHODS.label(method) for label in labels), method
    assert {"theory (a): exact mode map", "theory (b): linear approx."} <= labels
    inside = figure.bbox
    box = legend.get_window_extent(renderer)
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and box.y1 <= inside.y1
    rows = {}
    for axis in figure.axes:
        if axis.get_visible():
            rows.setdefault(round(axis.get_position().y0, 4), []).append(axis)
    assert len(rows) == len(trials_by_sd)
    for row in rows.values():
        first = min(row, key=lambda axis: axis.get_position().x0)
        assert any(t.get_visible() and t.get_text() for t in first.get_yticklabels())
    for axis in rows[max(rows)]:  # the top row's titles stay clear of the legend
        assert axis.title.get_window_extent(renderer).y1 <= box.y0
    import matplotlib.pyplot as plt

    plt.close(figure)
