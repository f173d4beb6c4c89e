"""Snakemake entry point of rule summarise; the work is glmmshrink.summary.

Every chunk file is checked (glmmshrink.chunk_check), each cell's by the worker that then
summarises the cell, and no table is written unless every file passed. A damaged or foreign file
is moved aside to ``<file>.damaged`` and named on one line, and the job fails; the same
``snakemake`` command then refits exactly those chunks. Messages and any traceback go to the
job's log. After the tables, the run's resolved config is recorded beside them
(``results/summary/study_config.yaml``), so the report can say which study the tables describe.
"""

import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

from glmmshrink.chunk_check import check_chunks, quarantine
from glmmshrink.config import Cell
from glmmshrink.study import write_parquet_atomic
from glmmshrink.summary import combine, summarise_cell

STUDY_CONFIG_NAME = "study_config.yaml"


class DamagedChunks(Exception):
    """Chunk files that do not hold what their names say; already moved aside."""


def _files_by_cell(paths):
    by_cell = defaultdict(list)
    for path in paths:
        by_cell[Path(path).parent.name].append(path)
    return by_cell


def _quarantine(problems) -> None:
    """Move the damaged chunk files aside and stop the job, naming each on one line."""
    lines = []
    for problem in problems:
        moved = quarantine(problem)
        lines.append(f"damaged chunk {problem}; moved to {moved}")
    lines.append(
        f"{len(problems)} chunk file(s) moved aside: run the same snakemake command again to refit "
        "them (nothing was summarised)"
    )
    raise DamagedChunks("\n".join(lines))


def _record_config(smk) -> None:
    """Write the resolved config of this run next to the summary tables (atomically)."""
    target = Path(smk.output[0]).parent / STUDY_CONFIG_NAME
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(
        "# The resolved config of the run that wrote these tables (written by rule summarise).\n"
        + yaml.safe_dump(dict(smk.config), sort_keys=False)
    )
    temporary.replace(target)


def _summarise_one(parameters, replicate_paths, group_paths, shrinkage_bins, methods):
    """One task of the job's pool: check one cell's chunk files, then summarise them.

    Returns ``(problems, tables)``: the problems of its files and no tables if any is damaged,
    else no problems and all summary tables of the cell.
    """
    cell = Cell(**parameters)
    problems = check_chunks([*replicate_paths, *group_paths], {cell.name: cell.n_groups}, methods)
    if problems:
        return problems, None
    replicates = pd.concat(map(pd.read_parquet, replicate_paths), ignore_index=True)
    groups = pd.concat(map(pd.read_parquet, group_paths), ignore_index=True)
    return [], summarise_cell(cell, replicates, groups, shrinkage_bins)


def main(smk) -> None:
    began = time.perf_counter()
    replicate_files = _files_by_cell(smk.input.replicates)
    group_files = _files_by_cell(smk.input.groups)
    methods = list(smk.config["methods"])
    # A chunk file outside every configured cell's directory is foreign: check it here.
    foreign = [path for path in [*smk.input.replicates, *smk.input.groups]
               if Path(path).parent.name not in smk.params.cells]
    problems = check_chunks(foreign, {}, methods)
    tasks = [(parameters, replicate_files[name], group_files[name], smk.params.shrinkage_bins,
              methods) for name, parameters in smk.params.cells.items()]
    # Cells are independent and combine() orders rows by cell, so the tables are the same for
    # any number of workers; forked workers share the parent's imports.
    if smk.threads > 1 and len(tasks) > 1:
        from joblib import Parallel, delayed

        per_cell = Parallel(n_jobs=smk.threads, backend="multiprocessing")(
            delayed(_summarise_one)(*task) for task in tasks)
    else:
        per_cell = [_summarise_one(*task) for task in tasks]
    problems += [problem for cell_problems, _ in per_cell for problem in cell_problems]
    if problems:
        _quarantine(problems)
    logging.info("checked %d chunk files",
                 len(smk.input.replicates) + len(smk.input.groups))
    for name in smk.params.cells:
        logging.info("summarised %s", name)
    for table_name, table in combine([tables for _, tables in per_cell]).items():
        write_parquet_atomic(table, smk.output[table_name])
    _record_config(smk)
    logging.info("work time %.3f s with %d worker(s)", time.perf_counter() - began, smk.threads)


logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821 -- injected by Snakemake's script directive
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(message)s",
)
try:
    main(snakemake)  # noqa: F821
except DamagedChunks as error:
    for line in str(error).splitlines():
        logging.error("%s", line)
    print(error, file=sys.stderr)
    sys.exit(1)
except Exception:
    logging.exception("summarise failed")  # the traceback into the job's log, not only stderr
    raise
