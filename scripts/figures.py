"""Snakemake entry point of rule figure: draws one registered figure (glmmshrink.figure_registry)."""

import logging
import time

import pandas as pd

from glmmshrink.figure_registry import (
    FIGURES, FigureInputs, read_seed_groups, seed_figures_from_parameters,
)
from glmmshrink.figures import save


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    began = time.perf_counter()
    figure = FIGURES[smk.wildcards.figure]
    seed_figures = seed_figures_from_parameters(smk.params.seed_figures)
    groups = None
    if figure.group_tables:
        groups = read_seed_groups(smk.input.groups, seed_figures.replicates_pooled)
        shown = set() if groups is None else set(groups["cell"])
        absent = [cell.name for cell in (seed_figures.question, *seed_figures.answer)
                  if cell.name not in shown]
        if absent:
            logging.warning("seed cells not in the grid, drawn as placeholders: %s", absent)
    inputs = FigureInputs(
        tables={table: pd.read_parquet(smk.input[table]) for table in figure.tables},
        groups=groups,
        method_options=smk.params.method_options,
        seed_figures=seed_figures,
    )
    save(figure.draw(inputs), smk.output.png, smk.output.pdf)
    logging.info("wrote %s; work time %.3f s", figure.name, time.perf_counter() - began)


main(snakemake)  # noqa: F821 -- injected by Snakemake's script directive
