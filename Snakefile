# glmmshrink Monte Carlo study: config grid -> replicate fits -> Parquet -> summaries -> figures.
# Run `snakemake -j 2` here; `snakemake --report results/report.html` afterwards builds the report;
# `snakemake -j 2 docs` refreshes the README's figure copies under docs/.

from snakemake.utils import min_version

min_version("8.10")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/summarise.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/docs.smk"


rule all:
    input:
        summary_tables(),
        figure_files(),
    default_target: True
