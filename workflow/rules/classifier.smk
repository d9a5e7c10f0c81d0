# The small MNIST classifier whose penultimate layer gives the domain FID features (Table 1 on
# MNIST, where Inception features fit 28x28 digits poorly).


rule train_classifier:
    input:
        res("data/{dataset}.json"),
    output:
        model=res("classifier/{dataset}.pt"),
        metrics=res("classifier/{dataset}.json"),
    wildcard_constraints:
        dataset="mnist",
    params:
        settings=settings("train-classifier"),
    log:
        log_path("train_classifier", "{dataset}"),
    benchmark:
        bench_path("train_classifier", "{dataset}")
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m fisherae train-classifier --config {CONFIG} --dataset {wildcards.dataset}"
        " --out {output.model} --out-metrics {output.metrics} > {log} 2>&1"
