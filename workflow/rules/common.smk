# Config validation, cells, chunks and target lists. Runs at parse time, so a bad config stops
# Snakemake before any job starts and before anything under results/ is touched.

import os
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from glmmshrink.config import check_config, missing_from_user_files
from glmmshrink.figure_registry import FIGURES, SUMMARY_TABLES, seed_figure_parameters
from glmmshrink.grid import cell_name_pattern
from glmmshrink.methods import METHODS

# Parallelism comes from Snakemake jobs and joblib worker processes; a multithreaded BLAS in
# each of them would oversubscribe the cores.
for _blas_variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas_variable, "1")

with open(workflow.source_path("../schemas/config.schema.yaml")) as _schema_file:
    _config_schema = yaml.safe_load(_schema_file)

# Rule summarise records the resolved config of the run beside the tables it writes.
STUDY_CONFIG_RECORD = "results/summary/study_config.yaml"


def _building_report():
    # Snakemake parses the Snakefile before it decides to build a report; its command line is
    # the only sign at this point. --report-after-run runs the study first: not a report alone.
    arguments = sys.argv[1:]
    return "--report-after-run" not in arguments and any(
        arg == "--report" or arg.startswith("--report=") for arg in arguments
    )


def _use_recorded_config():
    """For --report: describe the study that made results/, not whatever config is given now."""
    with open(STUDY_CONFIG_RECORD) as record:
        recorded = yaml.safe_load(record)
    differing = sorted(k for k in set(config) | set(recorded) if config.get(k) != recorded.get(k))
    if differing:
        print(
            f"Report of the study recorded in {STUDY_CONFIG_RECORD} (the run that wrote "
            f"results/summary/); the current config (config.yaml, --configfile, --config) "
            f"differs in {', '.join(differing)} and is not used for the report.",
            file=sys.stderr,
        )
        config.clear()
        config.update(recorded)


# Snakemake loads config.yaml underneath every --configfile, so a key missing from the user's
# file would silently take the default study's value: require the study's keys from the user's
# files (and --config) themselves.
if workflow.config_settings.configfiles and not _building_report():
    _missing = missing_from_user_files(
        workflow.config_settings.overwrite_config,
        _config_schema,
        workflow.config_settings.configfiles,
    )
    if _missing:
        raise WorkflowError(_missing)

try:
    STUDY = check_config(config, _config_schema, METHODS)
    validate(config, "../schemas/config.schema.yaml", set_default=True)
    if _building_report() and os.path.exists(STUDY_CONFIG_RECORD):
        _use_recorded_config()
        STUDY = check_config(config, _config_schema, METHODS)
        validate(config, "../schemas/config.schema.yaml", set_default=True)
except ValueError as error:
    raise WorkflowError(str(error)) from None

# Captions of the registered figures, read once (rule figure passes them to the report).
FIGURE_CAPTIONS = {
    name: Path(workflow.source_path(f"../report/{figure.caption}")).read_text()
    for name, figure in FIGURES.items()
}


wildcard_constraints:
    cell=cell_name_pattern(),
    start=r"\d+",
    stop=r"\d+",
    figure=FIGURES.wildcard_pattern(),


def chunk_files(kind):
    """Every (cell, chunk) table of one kind ("replicates" or "groups") the config asks for."""
    return [
        f"results/cells/{cell.name}/{kind}_{start}-{stop}.parquet"
        for cell in STUDY.cells
        for start, stop in STUDY.chunks()
    ]


def cell_parameters(wildcards):
    # Axes at their default are left out, so a new axis does not change an existing job's params.
    return STUDY.cell(wildcards.cell).identifying_parameters()


def fit_priority(wildcards):
    # At least 1, above the other rules' default 0.
    return 1 + STUDY.fit_priority(wildcards.cell)


def resolved_method_options():
    """Options of the configured methods with defaults filled in (a rerun trigger via params)."""
    return {
        name: METHODS[name].options(STUDY.method_options.get(name)) for name in STUDY.methods
    }


def summary_tables():
    return expand("results/summary/{table}.parquet", table=SUMMARY_TABLES)


def figure_files():
    return FIGURES.files()


def figure_input_files(wildcards):
    return FIGURES[wildcards.figure].input_files(STUDY)


def figure_priority(wildcards):
    return FIGURES.priority(wildcards.figure)


def figure_category(wildcards):
    return FIGURES[wildcards.figure].category


def figure_caption(wildcards):
    return FIGURE_CAPTIONS[wildcards.figure]
