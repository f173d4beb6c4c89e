# Per-cell x method performance measures with Monte Carlo SEs, gathered into results/summary/.


rule summarise:
    input:
        replicates=chunk_files("replicates"),
        groups=chunk_files("groups"),
    output:
        **{table: f"results/summary/{table}.parquet" for table in SUMMARY_TABLES},
    params:
        cells={cell.name: cell.identifying_parameters() for cell in STUDY.cells},
        shrinkage_bins=STUDY.shrinkage_bins,
    log:
        "results/logs/summarise.log",
    benchmark:
        "results/benchmarks/summarise.tsv"
    # Every figure but the seed ones waits for this job: it goes before any figure job
    # (whose priorities are below 1) that is ready at the same time.
    priority: 1
    # Cells are summarised side by side (the tables do not depend on the thread count).
    threads: 2
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/glmmshrink.yaml"
    script:
        "../../scripts/summarise.py"
