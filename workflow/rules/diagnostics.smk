# Beside Figure 1, how informative each MNIST encoder is (command `diagnose`; its outputs, logs
# and benchmarks under diagnostics/).


rule diagnose:
    input:
        model=model_pt,
    output:
        res("diagnostics/{dataset}/{model}/seed{seed}.csv"),
    wildcard_constraints:
        dataset="mnist",
    params:
        settings=settings("diagnose"),
    log:
        log_path("diagnostics"),
    benchmark:
        bench_path("diagnostics")
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m fisherae diagnose --config {CONFIG} --dataset {wildcards.dataset}"
        " --checkpoint {input.model} --model {wildcards.model} --seed {wildcards.seed}"
        " --out {output} > {log} 2>&1"
