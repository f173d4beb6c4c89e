# Small PNG copies of the seed figures for the README, under docs/ (committed):
#   snakemake -j 2 docs
# Not part of the default target: docs/ is refreshed only when asked. Which figures are copied
# is the figure registry's `docs` flag.

DOCS_FIGURES = FIGURES.docs()


rule docs:
    input:
        expand("results/figures/{figure}.png", figure=DOCS_FIGURES),
    output:
        expand("docs/{figure}.png", figure=DOCS_FIGURES),
    params:
        max_width=1000,
        max_bytes=150_000,
    log:
        "results/logs/docs.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/glmmshrink.yaml"
    script:
        "../../scripts/export_docs.py"
