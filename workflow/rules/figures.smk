# Figures, PNG for the report and PDF for print: one job per figure of the figure registry
# (glmmshrink/figure_registry.py), which names the tables each reads and its report category.
# The caption is workflow/report/<figure>.rst, passed in as a param and rendered by figure.rst.


rule figure:
    input:
        unpack(figure_input_files),
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category=figure_category,
        ),
        pdf="results/figures/{figure}.pdf",
    params:
        caption=figure_caption,
        method_options=resolved_method_options(),
        seed_figures=seed_figure_parameters(STUDY.seed_figures),
    # Slowest figures first (the registry's draw_seconds), all below the fit jobs.
    priority: figure_priority
    log:
        "results/logs/figures/{figure}.log",
    benchmark:
        "results/benchmarks/figures/{figure}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/glmmshrink.yaml"
    script:
        "../../scripts/figures.py"
