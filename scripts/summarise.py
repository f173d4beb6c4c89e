"""Snakemake entry point of rule summarise; the work is glmmshrink.summary."""

import logging
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from glmmshrink.config import Cell
from glmmshrink.study import write_parquet_atomic
from glmmshrink.summary import combine, summarise_cell


def _files_by_cell(paths):
    by_cell = defaultdict(list)
    for path in paths:
        by_cell[Path(path).parent.name].append(path)
    return by_cell


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    began = time.perf_counter()
    replicate_files = _files_by_cell(smk.input.replicates)
    group_files = _files_by_cell(smk.input.groups)
    per_cell = []
    for name, parameters in smk.params.cells.items():
        cell = Cell(**parameters)
        replicates = pd.concat(map(pd.read_parquet, replicate_files[name]), ignore_index=True)
        groups = pd.concat(map(pd.read_parquet, group_files[name]), ignore_index=True)
        per_cell.append(summarise_cell(cell, replicates, groups, smk.params.shrinkage_bins))
        logging.info("summarised %s: %d replicate rows", name, len(replicates))
    for table_name, table in combine(per_cell).items():
        write_parquet_atomic(table, smk.output[table_name])
    logging.info("work time %.3f s", time.perf_counter() - began)


main(snakemake)  # noqa: F821 -- injected by Snakemake's script directive
