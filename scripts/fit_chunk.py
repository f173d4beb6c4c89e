"""Snakemake entry point of rule fit_chunk; the work is glmmshrink.study.write_chunk."""

import importlib.abc
import logging
import math
import sys
import time


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """Refuses ``import pandas`` while installed on ``sys.meta_path``."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas":
            raise ModuleNotFoundError("a fit job needs no pandas", name=name)
        return None


def _arrow_without_pandas() -> None:
    """Tell pyarrow that pandas is absent, before it imports it (~0.25 s CPU per job).

    pyarrow imports pandas at its first array conversion only to recognise pandas objects, and
    remembers the outcome; a fit job builds its tables from numpy and has no pandas objects.
    The finder is removed at once, so a later ``import pandas`` still works.
    """
    if "pandas" in sys.modules:
        return
    finder = _WithoutPandas()
    sys.meta_path.insert(0, finder)
    try:
        import pyarrow

        pyarrow.array([0])
    finally:
        sys.meta_path.remove(finder)


_arrow_without_pandas()

from glmmshrink.config import Cell  # noqa: E402
from glmmshrink.study import write_chunk  # noqa: E402


def main(smk) -> None:
    logging.basicConfig(
        filename=smk.log[0], level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    log = logging.getLogger("fit_chunk")
    cell = Cell(**smk.params.cell)
    start, stop = int(smk.wildcards.start), int(smk.wildcards.stop)
    n_jobs = smk.threads
    # A few batches per worker keeps both workers busy and the progress log moving; the numbers
    # do not depend on the batch size.
    batch_size = max(1, min(250, math.ceil((stop - start) / (4 * n_jobs))))
    log.info("cell %s (key %d): replicates %d-%d, methods %s, %d worker(s), batches of %d",
             cell.name, cell.key, start, stop - 1, list(smk.params.methods), n_jobs, batch_size)
    began = time.perf_counter()
    # Streams batch by batch to the two Parquet files, which appear only when complete.
    failures = write_chunk(
        cell,
        smk.params.seed,
        start,
        stop,
        smk.params.methods,
        smk.output.replicates,
        smk.output.groups,
        smk.params.method_options,
        n_jobs=n_jobs,
        batch_size=batch_size,
        progress=lambda done, total: log.info("%d/%d replicates done", done, total),
    )
    if failures:
        log.warning("%d replicate fit(s) raised; kept with fit_error set", failures)
    log.info("work time %.3f s", time.perf_counter() - began)


main(snakemake)  # noqa: F821 -- injected by Snakemake's script directive
