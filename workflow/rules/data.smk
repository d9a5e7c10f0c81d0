# Data: load both splits of each data set once (downloading MNIST when the config asks), so
# that parallel training jobs never race on a download and a missing data root fails first.


rule data:
    output:
        res("data/{dataset}.json"),
    params:
        settings=settings("data"),
    log:
        log_path("data", "{dataset}"),
    benchmark:
        bench_path("data", "{dataset}"),
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m fisherae data --config {CONFIG} --dataset {wildcards.dataset}"
        " --out {output} > {log} 2>&1"
