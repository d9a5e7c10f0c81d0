# Latent robustness on MNIST (Figures 3 and 4): t-SNE of the codes of noisy test digits and the
# NMI of their clusters against the digit labels. CPU work (the encoder pass included), so it
# holds no GPU and runs beside training. With evaluation.latent.full_test_set_seeds, also on the
# whole test split for the runs of those seeds (the NMI on all test points beside the n_points one); and
# on the model file of each epoch of training.snapshot_epochs (the trajectory of training).


rule latent:
    input:
        model=model_pt,
    output:
        embedding=res("latent/{dataset}/{model}/seed{seed}.npz"),
        nmi=res("latent/{dataset}/{model}/seed{seed}.csv"),
    wildcard_constraints:
        dataset="mnist",
    params:
        checkpoint=input_model,
        options=lambda w, output: f"--out-embedding {output.embedding}",
        settings=settings("latent"),
    log:
        log_path("latent"),
    benchmark:
        bench_path("latent")
    threads: THREADS
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        ENV
    shell:
        "python -m fisherae latent --config {CONFIG} --dataset {wildcards.dataset}"
        " --checkpoint {params.checkpoint} --model {wildcards.model} --seed {wildcards.seed}"
        " {params.options} --out-nmi {output.nmi} > {log} 2>&1"


use rule latent as latent_full_test_set with:
    output:
        nmi=res("latent_full/{dataset}/{model}/seed{seed}.csv"),
    params:
        checkpoint=input_model,
        options="--all-test-points",
        settings=settings("latent"),
    log:
        log_path("latent_full_test_set"),
    benchmark:
        bench_path("latent_full_test_set")


use rule latent as snapshot_latent with:
    output:
        nmi=res("snapshots/{dataset}/{model}/seed{seed}/epoch{epoch}/latent.csv"),
    params:
        checkpoint=snapshot_pt,
        options="",
        settings=settings("latent"),
    log:
        log_path("snapshot_latent", "{dataset}/{model}/seed{seed}/epoch{epoch}"),
    benchmark:
        bench_path("snapshot_latent", "{dataset}/{model}/seed{seed}/epoch{epoch}")
