# The paper's MNIST claims judged over this run's training seeds (a computed verdict per claim and
# arm, fisherae.claims), from the per-run CSVs themselves (the whole-test-set t-SNE and the
# snapshots' evaluations included): every one is an input, so that the DAG
# makes them first and a changed one reruns the claims.


rule claims:
    input:
        sweeps=runs("sweeps/{dataset}/{model}/seed{seed}.csv", datasets=["mnist"]),
        latent=runs("latent/{dataset}/{model}/seed{seed}.csv", datasets=["mnist"]),
        fid=runs("fid/{dataset}/{model}/seed{seed}.csv", datasets=["mnist"]),
        fid_exact=runs("fid_exact/{dataset}/{model}/seed{seed}.csv", datasets=["mnist"], models=NORMALISABLE_MODELS),
        diagnostics=runs("diagnostics/{dataset}/{model}/seed{seed}.csv", datasets=["mnist"]),
        latent_full=runs("latent_full/{dataset}/{model}/seed{seed}.csv", datasets=["mnist"], among=FULL_TEST_SET_SEEDS),
        snapshots=runs("snapshots/{dataset}/{model}/seed{seed}/epoch{epoch}/{name}.csv", datasets=["mnist"],
                       epoch=SNAPSHOT_EPOCHS, name=["sweep", "latent"]),
        classifier=res("classifier/mnist.json") if USES_CLASSIFIER else [],
    output:
        csv=report(
            res("tables/claims_mnist.csv"),
            caption="../report/claims.rst",
            category="Tables",
            labels={"table": "MNIST claims (csv)"},
        ),
        md=res("tables/claims_mnist.md"),
    params:
        classifier=lambda w, input: f"--classifier {input.classifier}" if input.classifier else "",
        settings=settings("claims"),
    log:
        log_path("tables", "claims_mnist"),
    benchmark:
        bench_path("tables", "claims_mnist")
    conda:
        ENV
    shell:
        "python -m fisherae claims --config {CONFIG}"
        " --inputs {input.sweeps} {input.latent} {input.fid} {input.fid_exact} {input.diagnostics} {input.latent_full}"
        " {input.snapshots} {params.classifier}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
