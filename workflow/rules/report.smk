# Table 1 (FID per model and data set) and what `snakemake --report report.html` shows.


rule table1:
    input:
        runs("fid/{dataset}/{model}/seed{seed}.csv"),
    output:
        csv=report(
            res("tables/table1_fid.csv"),
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1 (csv)"},
        ),
        md=res("tables/table1_fid.md"),
    params:
        settings=settings("table1"),
    log:
        log_path("tables", "table1_fid"),
    benchmark:
        bench_path("tables", "table1_fid"),
    conda:
        ENV
    shell:
        fisherae("table1") + " --inputs {input}"
        " --out-csv {output.csv} --out-md {output.md} > {log} 2>&1"
