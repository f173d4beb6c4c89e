"""Snakemake entry point of rule docs: small PNG copies of the seed figures for the README."""

import logging
import time

from glmmshrink.figures import downscale_png


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    began = time.perf_counter()
    for source, target in zip(smk.input, smk.output):
        size = downscale_png(source, target, smk.params.max_width, smk.params.max_bytes)
        logging.info("wrote %s (%d bytes)", target, size)
    logging.info("work time %.3f s", time.perf_counter() - began)


main(snakemake)  # noqa: F821 -- injected by Snakemake's script directive
