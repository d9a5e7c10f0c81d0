# Reconstruction error of noisy test images against sigma^2 (Figures 1 and 5), also of the model
# file of each epoch of training.snapshot_epochs (the trajectory of training), and the clean /
# noisy / reconstructed / sampled image grids (Figures 2 and 6).


rule noise_sweep:
    input:
        model=model_pt,
    output:
        res("sweeps/{dataset}/{model}/seed{seed}.csv"),
    params:
        checkpoint=input_model,
        settings=settings("noise-sweep"),
    log:
        log_path("noise_sweep"),
    benchmark:
        bench_path("noise_sweep")
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "python -m fisherae noise-sweep --config {CONFIG} --dataset {wildcards.dataset}"
        " --checkpoint {params.checkpoint} --model {wildcards.model} --seed {wildcards.seed}"
        " --out {output} > {log} 2>&1"


use rule noise_sweep as snapshot_noise_sweep with:
    output:
        res("snapshots/{dataset}/{model}/seed{seed}/epoch{epoch}/sweep.csv"),
    params:
        checkpoint=snapshot_pt,
        settings=settings("noise-sweep"),
    log:
        log_path("snapshot_noise_sweep", "{dataset}/{model}/seed{seed}/epoch{epoch}"),
    benchmark:
        bench_path("snapshot_noise_sweep", "{dataset}/{model}/seed{seed}/epoch{epoch}")


rule grids:
    input:
        model=model_pt,
        samples=res("samples/{dataset}/{model}/seed{seed}.npz"),
    output:
        res("grids/{dataset}/{model}/seed{seed}.png"),
    params:
        settings=settings("grids"),
    log:
        log_path("grids"),
    benchmark:
        bench_path("grids")
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=30,
    conda:
        ENV
    shell:
        "python -m fisherae grids --config {CONFIG} --dataset {wildcards.dataset}"
        " --checkpoint {input.model} --samples {input.samples} --model {wildcards.model}"
        " --seed {wildcards.seed} --out {output} > {log} 2>&1"
