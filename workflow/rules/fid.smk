# Table 1's numbers: FID of prior samples against test images, per model; on MNIST also in the
# feature space of the digit classifier (classifier.smk).


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
        "python -m fisherae fid --config {CONFIG} --dataset {wildcards.dataset}"
        " --checkpoint {input.model} --samples {input.samples} --model {wildcards.model}"
        " --seed {wildcards.seed} {params.classifier} --out {output} > {log} 2>&1"
