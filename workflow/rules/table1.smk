# Table 1: our FIDs per model and data set beside the paper's (fisherae.paper.TABLE1), saying which
# are comparable; the CSV goes into `snakemake --report report.html`.


rule table1:
    input:
        runs("fid/{dataset}/{model}/seed{seed}.csv"),
    output:
        csv=report(
            res(f"tables/{TABLE1.stem}.csv"),
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1 (csv)"},
        ),
        md=res(f"tables/{TABLE1.stem}.md"),
    params:
        settings=settings("table1"),
    log:
        log_path("tables", TABLE1.stem),
    benchmark:
        bench_path("tables", TABLE1.stem),
    conda:
        ENV
    shell:
        "python -m fisherae table1 --config {CONFIG} --inputs {input}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
