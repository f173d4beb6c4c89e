# glmmshrink Monte Carlo study: config grid -> replicate fits -> Parquet -> summaries -> figures.
# Run `snakemake -j 2` here; `snakemake --report results/report.html` afterwards builds the report;
# `snakemake -j 2 docs` refreshes the README's figure copies under docs/.
# Snakemake reads profiles/default/config.yaml by itself (rerun-incomplete, keep-going, ...).

import signal

from snakemake.utils import min_version

min_version("8.10")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/summarise.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/docs.smk"


# Snakemake <= 9.27.1 takes its scheduler lock inside its SIGTERM handler; a SIGTERM that lands
# while the scheduler already holds that lock (as a job finishes) hangs Snakemake forever. Make
# SIGTERM act like Ctrl-C instead: running jobs are stopped, and the next run redoes them
# (profiles/default sets rerun-incomplete). onstart runs after Snakemake installed its handler.
onstart:
    signal.signal(signal.SIGTERM, signal.default_int_handler)


rule all:
    input:
        summary_tables(),
        figure_files(),
    default_target: True
