# Table 1: FID of prior samples against test images, per model; on MNIST also in the feature
# space of a small digit classifier trained here.


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
        fisherae("train-classifier") + " --dataset {wildcards.dataset}"
        " --out {output.model} --out-metrics {output.metrics} > {log} 2>&1"


rule fid:
    input:
        unpack(classifier_input),
        model=model_pt,
        samples=res("samples/{dataset}/{model}/seed{seed}.npz"),
    output:
        res("fid/{dataset}/{model}/seed{seed}.csv"),
    params:
        classifier=classifier_option,
        settings=settings("fid"),
    log:
        log_path("fid"),
    benchmark:
        bench_path("fid")
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    conda:
        ENV
    shell:
        fisherae("fid") + " --dataset {wildcards.dataset}"
        " --checkpoint {input.model} --samples {input.samples} --model {wildcards.model}"
        " --seed {wildcards.seed} {params.classifier} --out {output} > {log} 2>&1"
