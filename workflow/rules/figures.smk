# The paper's figures, each from the per-run results it summarises (docs/cli.md, `figure`).
# Figures of a data set are built only when that data set is in the config.


rule figure:
    input:
        figure_inputs,
    output:
        png=report(
            res("figures/{stem}.png"),
            caption="../report/figures.rst",
            category="Figures",
            labels={"figure": "{stem}"},
        ),
        csv=res("figures/{stem}.csv"),
    wildcard_constraints:
        stem=one_of(MY_FIGURES),
    params:
        name=lambda w: FIGURE_BY_STEM[w.stem].name,
        settings=settings("figure", dataset=lambda w: FIGURE_BY_STEM[w.stem].dataset),
    log:
        log_path("figures", "{stem}"),
    benchmark:
        bench_path("figures", "{stem}"),
    conda:
        ENV
    shell:
        "python -m fisherae figure --config {CONFIG} --name {params.name}"
        " --inputs {input} --out {output.png} --out-csv {output.csv} > {log} 2>&1"
