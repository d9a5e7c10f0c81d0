# Table 1's numbers: FID of prior samples against test images, per model; on MNIST also in the
# feature space of the digit classifier (classifier.smk). A normalisable polynomial prior's exact
# draws (beside its SVGD ones in the same samples file) are scored too, into fid_exact/.


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
        exact="",
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
        " --seed {wildcards.seed} {params.classifier}{params.exact} --out {output} > {log} 2>&1"


use rule fid as fid_exact with:
    output:
        res("fid_exact/{dataset}/{model}/seed{seed}.csv"),
    wildcard_constraints:
        model=one_of(NORMALISABLE_MODELS),
    params:
        classifier=classifier_option,
        settings=settings("fid"),
        exact=" --exact",
    log:
        log_path("fid_exact"),
    benchmark:
        bench_path("fid_exact")
