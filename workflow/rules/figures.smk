# Figures, PNG for the report and PDF for print.


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
        pdfs=expand("results/figures/{figure}.pdf", figure=SUMMARY_FIGURES),
    params:
        method_options=resolved_method_options(),
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


# The seed thread's figures: the question's dataset and the answer's facets come from the first
# few replicates' group tables, the other two from the summaries. A job of its own, so it runs
# beside rule figures.
rule seed_figures:
    input:
        groups=seed_group_files,
        shrinkage_curve="results/summary/shrinkage_curve.parquet",
        performance="results/summary/performance.parquet",
    output:
        seed_question=report(
            "results/figures/seed_question.png",
            caption="../report/seed_question.rst",
            category="Seed thread",
        ),
        seed_answer=report(
            "results/figures/seed_answer.png",
            caption="../report/seed_answer.rst",
            category="Seed thread",
        ),
        shrinkage_methods=report(
            "results/figures/shrinkage_methods.png",
            caption="../report/shrinkage_methods.rst",
            category="Seed thread",
        ),
        why_shrink=report(
            "results/figures/why_shrink.png",
            caption="../report/why_shrink.rst",
            category="Seed thread",
        ),
        pdfs=expand("results/figures/{figure}.pdf", figure=SEED_FIGURES),
    params:
        seed_figures=seed_figure_parameters(),
        cells_present=seed_figure_cells(),
        method_options=resolved_method_options(),
    log:
        "results/logs/seed_figures.log",
    benchmark:
        "results/benchmarks/seed_figures.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/glmmshrink.yaml"
    script:
        "../../scripts/seed_figures.py"
