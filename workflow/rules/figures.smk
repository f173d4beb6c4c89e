# Figures of the summaries, PNG for the report and PDF for print.


rule figures:
    input:
        **{table: f"results/summary/{table}.parquet" for table in SUMMARY_TABLES},
    output:
        shrinkage_curves=report(
            "results/figures/shrinkage_curves.png",
            caption="../report/shrinkage_curves.rst",
            category="Shrinkage",
        ),
        sigma_bias=report(
            "results/figures/sigma_bias.png",
            caption="../report/sigma_bias.rst",
            category="Hyperparameters",
        ),
        singular_rate=report(
            "results/figures/singular_rate.png",
            caption="../report/singular_rate.rst",
            category="Hyperparameters",
        ),
        rmse_ratio=report(
            "results/figures/rmse_ratio.png",
            caption="../report/rmse_ratio.rst",
            category="Shrinkage",
        ),
        pdfs=expand("results/figures/{figure}.pdf", figure=FIGURES),
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/glmmshrink.yaml"
    script:
        "../../scripts/figures.py"
