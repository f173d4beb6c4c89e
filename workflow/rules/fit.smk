# One job per (cell, chunk of replicates). Output names depend only on the cell's parameter
# values and the replicate range, so extending the grid or the replicate count reuses every
# existing chunk, and the params below hold nothing but what the chunk's numbers depend on.


rule fit_chunk:
    output:
        replicates="results/cells/{cell}/replicates_{start}-{stop}.parquet",
        groups="results/cells/{cell}/groups_{start}-{stop}.parquet",
    params:
        cell=cell_parameters,
        seed=STUDY.seed,
        methods=list(STUDY.methods),
        method_options=resolved_method_options(),
    log:
        "results/logs/fit/{cell}/{start}-{stop}.log",
    benchmark:
        "results/benchmarks/fit/{cell}/{start}-{stop}.tsv"
    # Costly cells first (longest-first scheduling; see StudyConfig.fit_priority). Every fit
    # job outranks the figure and summary jobs, so the seed figures fill the cores that the
    # last fit jobs leave idle instead of delaying a fit.
    priority: fit_priority
    # joblib workers inside the job; raise with --set-threads fit_chunk=N for large chunks.
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    conda:
        "../envs/glmmshrink.yaml"
    script:
        "../../scripts/fit_chunk.py"
