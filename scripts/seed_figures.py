"""Snakemake entry point of rule seed_figures; the drawing is glmmshrink.figures_seed."""

import logging
import time

import pandas as pd

from glmmshrink import figures, figures_seed
from glmmshrink.config import Cell

COLUMNS = ["cell", "replicate", "group", "method", "n_trials", "successes", "p_raw", "p_hat"]


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    began = time.perf_counter()
    pooled = smk.params.seed_figures["replicates_pooled"]
    parts = [pd.read_parquet(path, columns=COLUMNS, filters=[("replicate", "<", pooled)])
             for path in smk.input.groups]
    groups = pd.concat(parts, ignore_index=True) if parts else None
    missing = {role: names for role, names in smk.params.cells_present.items() if not names}
    if missing:
        logging.warning("seed cells not in the grid, drawn as placeholders: %s", sorted(missing))
    question = Cell(**smk.params.seed_figures["question"])
    answer = [Cell(**parameters) for parameters in smk.params.seed_figures["answer"]]
    options = smk.params.method_options
    drawn = {
        "seed_question": figures_seed.seed_question(groups, question),
        "seed_answer": figures_seed.seed_answer(groups, answer, pooled, method_options=options),
        "shrinkage_methods": figures_seed.shrinkage_methods(
            pd.read_parquet(smk.input.shrinkage_curve), question, method_options=options),
        "why_shrink": figures_seed.why_shrink(pd.read_parquet(smk.input.performance),
                                              method_options=options),
    }
    figures.save_all(drawn, smk.output, smk.output.pdfs, logging)
    logging.info("work time %.3f s", time.perf_counter() - began)


main(snakemake)  # noqa: F821 -- injected by Snakemake's script directive
