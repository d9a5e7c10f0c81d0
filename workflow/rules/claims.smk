# Beside Figure 1, how informative each MNIST encoder is; then the paper's MNIST claims tested on
# this run's figures and Table 1 (a computed verdict per claim).


rule diagnostics:
    input:
        model=model_pt,
    output:
        res("diagnostics/{dataset}/{model}/seed{seed}.csv"),
    wildcard_constraints:
        dataset="mnist",
    params:
        settings=settings("diagnose"),
    log:
        log_path("diagnostics"),
    benchmark:
        bench_path("diagnostics")
    threads: THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        fisherae("diagnose") + " --dataset {wildcards.dataset}"
        " --checkpoint {input.model} --model {wildcards.model} --seed {wildcards.seed}"
        " --out {output} > {log} 2>&1"


rule claims:
    input:
        figure1=res("figures/figure1_mnist_bce.csv"),
        figure3=res("figures/figure3_mnist_nmi.csv"),
        table1=res("tables/table1_fid.csv"),
        classifier=res("classifier/mnist.json") if USES_CLASSIFIER else [],
        diagnostics=runs("diagnostics/{dataset}/{model}/seed{seed}.csv", datasets=["mnist"]),
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
        fisherae("claims") + " --figure1 {input.figure1} --figure3 {input.figure3}"
        " --table1 {input.table1} {params.classifier} --diagnostics {input.diagnostics}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
