# Shorthands for the validated config, output paths under its `results:` root, the config file
# every `python -m fisherae` call of this DAG reads, and each rule's rerun triggers.
import os
import re

from fisherae.config import freeze_config, model_setting
from fisherae.config_keys import rerun_settings
from fisherae.paper import FIGURE_BY_NAME, FIGURE_BY_STEM, FIGURES, TABLE1

RESULTS = config["results"].rstrip("/")
DATASETS = list(config["datasets"])
MODELS = list(config["models"])
RUN_MODELS = config.get("run_models", MODELS)  # this invocation's part of MODELS (the others have no runs)
SEEDS = [str(seed) for seed in config["seeds"]]
POLY_MODELS = [m for m, spec in config["models"].items() if spec["prior"] == "polynomial"]
OTHER_MODELS = [m for m in MODELS if m not in POLY_MODELS]
# polynomial priors with an exact sampler (their samples file also holds exact draws)
NORMALISABLE_MODELS = [m for m in POLY_MODELS if model_setting(config, m, "poly_normalisable")]
THREADS = config["training"]["threads"]
SNAPSHOT_EPOCHS = [str(epoch) for epoch in config["training"]["snapshot_epochs"]]
FULL_TEST_SET_SEEDS = [str(seed) for seed in config["evaluation"]["latent"]["full_test_set_seeds"]]
USES_CLASSIFIER = config["evaluation"]["fid"]["features"] in ("classifier", "both")
ENV = "../envs/fisherae.yaml"
# The config as Snakemake sees it (all --configfile/--config merged, defaults filled), written
# once to <results>/configs/<hash>.yaml and never rewritten: the jobs of this DAG read that file
# (the rules' shell commands name it as {CONFIG}, which is no rerun trigger), so that another
# invocation with another config, even a dry run, changes nothing they read. Each job's log
# begins with the path of the config it read.
CONFIG = str(freeze_config(config, RESULTS))



def one_of(names):
    """A regex matching exactly one of ``names`` (never matching when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


wildcard_constraints:
    dataset=one_of(DATASETS),
    model=one_of(MODELS),
    seed=r"\d+",
    epoch=r"\d+",


def settings(command, **derived):
    """Params: the values of the config keys that determine ``command``'s outputs (declared in
    fisherae.config_keys.READS), so that editing one reruns the rule; ``derived``: wildcards the
    declaration names that the job's own imply (a figure's data set, from its stem)."""
    return lambda wildcards: rerun_settings(
        command, config, {**dict(wildcards.items()), **{name: f(wildcards) for name, f in derived.items()}})


def res(path):
    """``path`` under the config's results root."""
    return f"{RESULTS}/{path}"


def model_seeds(model):
    """The seeds ``model`` trains with: those of the config's seeds that its entry's ``seeds`` lists
    (all of them where it lists none), in the config's order; none unless run_models has it."""
    if model not in RUN_MODELS:
        return []
    mine = {str(seed) for seed in config["models"][model].get("seeds", SEEDS)}
    return [seed for seed in SEEDS if seed in mine]


def runs(template, datasets=DATASETS, models=MODELS, first=False, among=None, **wildcards):
    """``template`` (relative to the results root) for every dataset x model x seed of that model
    (``first``: its first seed only; ``among``: only its seeds in that list; a model without seeds
    has no runs), with ``wildcards`` (lists of values) expanded as well."""
    return [
        path
        for dataset in datasets
        for model in models
        for seed in model_seeds(model)[: 1 if first else None]
        if among is None or seed in among
        for path in expand(res(template), dataset=dataset, model=model, seed=seed, **wildcards)
    ]


def model_pt(w):
    return res(f"runs/{w.dataset}/{w.model}/seed{w.seed}/model.pt")


def snapshot_pt(w):
    """The model file of epoch {epoch}, which `train` writes before model.pt (not a declared output:
    training.smk says why)."""
    return res(f"runs/{w.dataset}/{w.model}/seed{w.seed}/snapshots/epoch{w.epoch}.pt")


def input_model(w, input):
    return input.model


def log_path(stage, pattern="{dataset}/{model}/seed{seed}"):
    return res(f"logs/{stage}/{pattern}.log")


def bench_path(stage, pattern="{dataset}/{model}/seed{seed}"):
    return res(f"benchmarks/{stage}/{pattern}.tsv")


# The paper's figures this config makes (fisherae.paper.FIGURES: stem, `figure --name`, data set,
# inputs, whether all seeds are plotted): those of its data sets.
MY_FIGURES = [figure.stem for figure in FIGURES if figure.dataset in DATASETS]


def figure_inputs(w):
    figure = FIGURE_BY_STEM[w.stem]
    return runs(figure.inputs, datasets=[figure.dataset], first=not figure.all_seeds)


def classifier_input(w):
    """The MNIST classifier, where the config's FID features use it."""
    return {"classifier": res("classifier/mnist.pt")} if USES_CLASSIFIER and w.dataset == "mnist" else {}


def classifier_option(w, input):
    return f"--classifier {input.classifier}" if "classifier" in input.keys() else ""


def final_targets():
    """Every file the DAG makes, so that a deleted intermediate is made again (with everything
    downstream of it): Snakemake itself ignores a missing intermediate whose consumers are up to
    date (snakemake/snakemake#1978)."""
    mnist = [d for d in DATASETS if d == "mnist"]
    return (
        expand(res("data/{dataset}.json"), dataset=DATASETS)
        + runs("runs/{dataset}/{model}/seed{seed}/model.pt")
        + runs("runs/{dataset}/{model}/seed{seed}/metrics.csv")
        + runs("sweeps/{dataset}/{model}/seed{seed}.csv")
        + runs("samples/{dataset}/{model}/seed{seed}.npz")
        + runs("sampling/{dataset}/{model}/seed{seed}.csv", models=POLY_MODELS)
        + runs("grids/{dataset}/{model}/seed{seed}.png", first=True)
        + runs("latent/{dataset}/{model}/seed{seed}.npz", datasets=mnist)
        + runs("latent/{dataset}/{model}/seed{seed}.csv", datasets=mnist)
        + runs("latent_full/{dataset}/{model}/seed{seed}.csv", datasets=mnist, among=FULL_TEST_SET_SEEDS)
        + runs("snapshots/{dataset}/{model}/seed{seed}/epoch{epoch}/sweep.csv", epoch=SNAPSHOT_EPOCHS)
        + runs("snapshots/{dataset}/{model}/seed{seed}/epoch{epoch}/latent.csv", datasets=mnist, epoch=SNAPSHOT_EPOCHS)
        + expand(res("classifier/{dataset}.{ext}"), dataset=mnist if USES_CLASSIFIER else [], ext=["pt", "json"])
        + runs("fid/{dataset}/{model}/seed{seed}.csv")
        + runs("fid_exact/{dataset}/{model}/seed{seed}.csv", models=NORMALISABLE_MODELS)
        + expand(res("figures/{stem}.{ext}"), stem=MY_FIGURES, ext=["png", "csv"])
        + expand(res("tables/{stem}.{ext}"), stem=TABLE1.stem, ext=["csv", "md"])
        + runs("diagnostics/{dataset}/{model}/seed{seed}.csv", datasets=mnist)
        + expand(res("tables/claims_mnist.{ext}"), ext=["csv", "md"] if mnist else [])
    )
