"""Snakemake entry point of rule figures; the drawing is glmmshrink.figures."""

import logging
import time

import pandas as pd

from glmmshrink import figures
from glmmshrink.methods import METHODS


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    began = time.perf_counter()
    tables = {name: pd.read_parquet(path) for name, path in smk.input.items()}
    hyperparameter_methods = [m for m in tables["fit_flags"]["method"].unique()
                              if m not in METHODS or METHODS[m].estimates_hyperparameters]
    drawn = {
        "shrinkage_curves": figures.shrinkage_curves(tables["shrinkage_curve"]),
        "sigma_bias": figures.sigma_bias(tables["performance"]),
        "singular_rate": figures.singular_rate(tables["fit_flags"], hyperparameter_methods),
        "rmse_ratio": figures.rmse_ratio(tables["performance"]),
    }
    figures.save_all(drawn, smk.output, smk.output.pdfs, logging)
    logging.info("work time %.3f s", time.perf_counter() - began)


main(snakemake)  # noqa: F821 -- injected by Snakemake's script directive
