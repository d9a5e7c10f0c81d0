# Samples from each model's prior: N(0, I) directly; the learned polynomial prior (eq. 13) by
# SVGD as in the paper, with a report comparing SVGD to the exact sampler where one exists.


rule sample:
    input:
        model=model_pt,
    output:
        samples=res("samples/{dataset}/{model}/seed{seed}.npz"),
    wildcard_constraints:
        model=one_of(OTHER_MODELS),
    params:
        report="",
        settings=settings("sample"),
    log:
        log_path("sample"),
    benchmark:
        bench_path("sample")
    threads: THREADS
    resources:  # N(0, I) draws: CPU work, no GPU (the polynomial prior's SVGD below takes one)
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m fisherae sample --config {CONFIG} --checkpoint {input.model}"
        " --seed {wildcards.seed} --out {output.samples} {params.report} > {log} 2>&1"


use rule sample as sample_polynomial_prior with:
    output:
        samples=res("samples/{dataset}/{model}/seed{seed}.npz"),
        report=res("sampling/{dataset}/{model}/seed{seed}.csv"),
    wildcard_constraints:
        model=one_of(POLY_MODELS),
    params:
        report=lambda w, output: f"--report {output.report}",
        settings=settings("sample"),
    log:
        log_path("sample_polynomial_prior"),
    benchmark:
        bench_path("sample_polynomial_prior")
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
