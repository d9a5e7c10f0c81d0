# The paper's MNIST claims tested on this run's figures, Table 1 and encoder diagnostics (a
# computed verdict per claim).


rule claims:
    input:
        figure1=res(f"figures/{FIGURE_BY_NAME['figure1'].stem}.csv"),
        figure3=res(f"figures/{FIGURE_BY_NAME['figure3'].stem}.csv"),
        table1=res(f"tables/{TABLE1.stem}.csv"),
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
        "python -m fisherae claims --config {CONFIG} --figure1 {input.figure1} --figure3 {input.figure3}"
        " --table1 {input.table1} {params.classifier} --diagnostics {input.diagnostics}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
