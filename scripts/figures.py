"""Snakemake entry point of rule figures; the drawing is glmmshrink.figures."""

import logging
import time

import pandas as pd

from glmmshrink import figures


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    began = time.perf_counter()
    tables = {name: pd.read_parquet(path) for name, path in smk.input.items()}
    options = smk.params.method_options
    drawn = {
        "shrinkage_curves": figures.shrinkage_curves(tables["shrinkage_curve"],
                                                     method_options=options),
        "sigma_bias": figures.sigma_bias(tables["performance"], method_options=options),
        "singular_rate": figures.singular_rate(tables["fit_flags"], method_options=options),
        "rmse_ratio": figures.rmse_ratio(tables["performance"], method_options=options),
    }
    figures.save_all(drawn, smk.output, smk.output.pdfs, logging)
    logging.info("work time %.3f s", time.perf_counter() - began)


main(snakemake)  # noqa: F821 -- injected by Snakemake's script directive
