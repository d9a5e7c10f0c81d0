# Training (paper Section 4): every data set x model x seed of the config (a model's own `seeds`
# narrow its seeds).
# checkpoint.pt (the resumable state) is deliberately not a declared output: Snakemake deletes
# the outputs of a failed or preempted job, and `train` resumes from that file. Nor are the
# snapshots/epoch{E}.pt of training.snapshot_epochs: a resumed run past epoch E does not write
# them again; the rules that evaluate them (evaluation.smk, latent.smk) wait for model.pt, which
# `train` writes after every snapshot.


rule train:
    input:
        res("data/{dataset}.json"),
    output:
        model=res("runs/{dataset}/{model}/seed{seed}/model.pt"),
        metrics=res("runs/{dataset}/{model}/seed{seed}/metrics.csv"),
    params:
        outdir=lambda w, output: os.path.dirname(output.model),
        settings=settings("train"),
    log:
        log_path("train"),
    benchmark:
        bench_path("train")
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=720,
    conda:
        ENV
    shell:
        "python -m fisherae train --config {CONFIG} --dataset {wildcards.dataset}"
        " --model {wildcards.model} --seed {wildcards.seed} --outdir {params.outdir}"
        " --no-progress > {log} 2>&1"
