# Latent robustness on MNIST (Figures 3 and 4): t-SNE of the codes of noisy test digits and the
# NMI of their clusters against the digit labels. CPU work (the encoder pass included), so it
# holds no GPU and runs beside training.


rule latent:
    input:
        model=model_pt,
    output:
        embedding=res("latent/{dataset}/{model}/seed{seed}.npz"),
        nmi=res("latent/{dataset}/{model}/seed{seed}.csv"),
    wildcard_constraints:
        dataset="mnist",
    params:
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
        " --checkpoint {input.model} --model {wildcards.model} --seed {wildcards.seed}"
        " --out-embedding {output.embedding} --out-nmi {output.nmi} > {log} 2>&1"
