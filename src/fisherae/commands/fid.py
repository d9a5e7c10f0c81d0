"""``train-classifier``, ``fid`` and ``table1``: the FID of prior samples (the paper's Table 1)
in Inception pool3 features and, on MNIST, in a digit classifier's features (docs/cli.md)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from fisherae.commands.common import (add_model_arguments, load_config_and_model, load_test_split, markdown_table,
                                      write_csv)
from fisherae.commands.registry import command
from fisherae.errors import ConfigError, UserError

FID_COLUMNS = ["dataset", "model", "seed", "features", "draw", "n_samples", "n_real", "sampler", "fid", "fid_sd",
               "status", "reason"]
# Table 1 of the paper: CelebA 64x64, FID in Inception pool3 features (mean +- sd).
PAPER_TABLE1 = {"VAE": (89.1, 1.1), "Fisher AE (Gaussian prior)": (89.1, 0.9),
                "Fisher AE (Exp. prior)": (84.7, 0.8), "WAE-GAN": (75.2, 1.0)}
PAPER_MIN_SAMPLES = 10000
TABLE1_COLUMNS = ["algorithm", "dataset", "model", "features", "status", "fid_mean", "fid_sd", "n_seeds", "n_draws",
                  "n_samples", "paper_fid", "paper_sd", "comparable", "note"]


# --------------------------------------------------------------------------- train-classifier

@command("train-classifier", "train the small MNIST CNN whose penultimate layer gives the domain FID features")
def setup_train_classifier(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--dataset", required=True, help="mnist (the only data set with a domain classifier)")
    parser.add_argument("--out", required=True, help="classifier .pt (weights and test accuracy)")
    parser.add_argument("--out-metrics", required=True, help="JSON: test accuracy, losses, sizes")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    return run_train_classifier


def run_train_classifier(args) -> None:
    from fisherae.checkpoint import atomic_write_text
    from fisherae.classifier import save_classifier, train_classifier
    from fisherae.commands.common import read_config
    from fisherae.data import load_split
    from fisherae.devices import job_device, use_configured_threads

    config = read_config(args, dataset=args.dataset)
    if args.dataset != "mnist":
        raise UserError(f"train-classifier: --dataset {args.dataset}: the domain classifier exists for MNIST only "
                        "(CelebA's FID uses Inception features)")
    if "mnist" not in config["datasets"]:
        raise ConfigError(f"{args.config}: datasets.mnist is not configured")
    use_configured_threads(config)
    data_cfg = config["datasets"][args.dataset]
    train, test = load_split("mnist", data_cfg, "train"), load_split("mnist", data_cfg, "test")
    with job_device(config) as device:
        model, metrics = train_classifier(train, test, epochs=config["evaluation"]["fid"]["classifier_epochs"],
                                          batch_size=config["training"]["batch_size"], seed=args.seed, device=device)
    metrics["seed"] = args.seed
    save_classifier(args.out, model, metrics)
    atomic_write_text(args.out_metrics, json.dumps(metrics, indent=2) + "\n")
    print(f"fisherae train-classifier: test accuracy {metrics['test_accuracy']:.4f} -> {args.out}")


# --------------------------------------------------------------------------- fid

@command("fid", "FID of decoded prior samples against the test images (Table 1), per feature space and draw")
def setup_fid(parser):
    add_model_arguments(parser)
    parser.add_argument("--samples", required=True, help="NPZ written by `sample`")
    parser.add_argument("--classifier", help="classifier .pt from `train-classifier` (MNIST domain features)")
    parser.add_argument("--out", required=True, help="CSV: " + ", ".join(FID_COLUMNS))
    return run_fid


def run_fid(args) -> None:
    from fisherae.devices import job_device
    from fisherae.sampling import read_samples

    config, model = load_config_and_model(args)
    z, sampler = read_samples(args.samples, model.spec.latent)
    settings = config["evaluation"]["fid"]
    with job_device(config) as device:
        extractors, unavailable = _extractors(settings, args.dataset, args.classifier, device)
        real = load_test_split(config, args.dataset)
        rows = fid_rows(model.to(device), z, real, extractors, settings["batch_size"], device)
    for features, reason in unavailable.items():
        print(f"fisherae fid: warning: {features} FID unavailable: {reason}", file=sys.stderr)
        rows.append({"features": features, "draw": "", "n_samples": z.shape[1], "n_real": len(real),
                     "fid": np.nan, "fid_sd": np.nan, "status": "unavailable", "reason": reason})
    table = pd.DataFrame(rows)
    table.insert(0, "seed", args.seed)
    table.insert(0, "model", args.model)
    table.insert(0, "dataset", args.dataset)
    table["sampler"] = sampler
    write_csv(table.reindex(columns=FID_COLUMNS), args.out)


def _extractors(settings: dict, dataset: str, classifier_path: str | None, device):
    """({features name: (extract fn, dim)}, {features name: why unavailable}) for the config's features."""
    from fisherae.metrics import CLASSIFIER_FEATURES, INCEPTION_FEATURES, FeaturesUnavailable, inception_features, \
        inception_model

    wanted = settings["features"]
    extractors, unavailable = {}, {}
    if wanted in ("inception", "both"):
        try:
            extractors[INCEPTION_FEATURES] = (inception_features(inception_model(settings["inception_weights"])
                                                                 .to(device)), 2048)
        except FeaturesUnavailable as err:
            unavailable[INCEPTION_FEATURES] = str(err)
    if wanted in ("classifier", "both"):
        if dataset != "mnist":
            unavailable[CLASSIFIER_FEATURES] = f"the domain classifier exists for MNIST only, not {dataset}"
        elif classifier_path is None:
            raise UserError("evaluation.fid.features asks for classifier features on mnist but no --classifier "
                            "was given; train one with `python -m fisherae train-classifier` and pass it")
        else:
            from fisherae.classifier import load_classifier
            net = load_classifier(classifier_path)[0].to(device)
            extractors[CLASSIFIER_FEATURES] = (net.features, net.feature_dim)
    return extractors, unavailable


def fid_rows(model, z: np.ndarray, real, extractors: dict, batch_size: int, device) -> list[dict]:
    """Per feature space: one row per draw of decoded samples and a mean +- sd row."""
    import torch

    from fisherae.data import make_loader
    from fisherae.metrics import ActivationStatistics, frechet_distance

    if not extractors:
        return []
    real_stats = {name: ActivationStatistics(dim) for name, (_, dim) in extractors.items()}
    with torch.no_grad():
        for x, _ in make_loader(real, batch_size, shuffle=False, seed=0):
            x = x.to(device)
            for name, (extract, _) in extractors.items():
                real_stats[name].update(extract(x))
        real_moments = {name: s.mean_cov() for name, s in real_stats.items()}
        rows = []
        for draw in range(z.shape[0]):
            fake = {name: ActivationStatistics(dim) for name, (_, dim) in extractors.items()}
            for lo in range(0, z.shape[1], batch_size):
                images = model.decoder(torch.from_numpy(z[draw, lo:lo + batch_size]).float().to(device))
                images = (images * 255).round() / 255  # 8-bit, like the real JPEGs and saved samples
                for name, (extract, _) in extractors.items():
                    fake[name].update(extract(images))
            for name in extractors:
                rows.append({"features": name, "draw": str(draw), "n_samples": z.shape[1], "n_real": len(real),
                             "fid": frechet_distance(*real_moments[name], *fake[name].mean_cov()), "status": "ok",
                             "reason": ""})
    for name in extractors:
        values = np.array([r["fid"] for r in rows if r["features"] == name and r["draw"] != "mean"])
        rows.append({"features": name, "draw": "mean", "n_samples": z.shape[1], "n_real": len(real),
                     "fid": values.mean(), "fid_sd": values.std(ddof=1) if values.size > 1 else np.nan,
                     "status": "ok", "reason": f"mean and sd over {values.size} draws"})
    return rows


# --------------------------------------------------------------------------- table1

@command("table1", "Table 1: our FIDs beside the paper's, saying which are comparable")
def setup_table1(parser):
    parser.add_argument("--config", required=True, help="YAML config (see config/*.yaml)")
    parser.add_argument("--inputs", nargs="+", required=True, help="CSVs written by `fid`")
    parser.add_argument("--out-csv", required=True, help="tables/table1_fid.csv")
    parser.add_argument("--out-md", required=True, help="tables/table1_fid.md")
    return run_table1


def run_table1(args) -> None:
    from fisherae.checkpoint import atomic_write_text
    from fisherae.commands.common import read_config

    config = read_config(args)
    frames = []
    for path in args.inputs:
        try:
            frame = pd.read_csv(path, dtype={"draw": str}, keep_default_na=False, na_values=[""])
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise UserError(f"table1: cannot read {path} ({err}); rerun `python -m fisherae fid` for it") from err
        missing = set(FID_COLUMNS) - set(frame.columns)
        if missing:
            raise UserError(f"table1: {path} lacks column(s) {sorted(missing)}; it is not a `fid` CSV — rerun `fid`")
        frames.append(frame)
    table = table1(pd.concat(frames, ignore_index=True), config)
    write_csv(table, args.out_csv)
    atomic_write_text(args.out_md, table1_markdown(table))


def paper_algorithm(entry: dict) -> str | None:
    """The paper's Table 1 row a configured model reproduces (None for ablations)."""
    method, prior = entry["method"], entry.get("prior", "gaussian")
    if method == "fisher_ae" and entry.get("fisher_variant", "exact") != "exact":
        return None
    return {"vae": "VAE", "wae_gan": "WAE-GAN"}.get(method) or \
        {"gaussian": "Fisher AE (Gaussian prior)", "polynomial": "Fisher AE (Exp. prior)"}[prior]


# The paper's training setting for Table 1 (Section 4): data set keys, then training keys.
PAPER_CELEBA = {"source": "torchvision", "n_train": None, "n_test": None, "latent_dim": 64, "width": 128}
PAPER_TRAINING = {"epochs": 100, "batch_size": 128, "lr": 2e-4, "betas": [0.5, 0.999]}


def paper_setting_gaps(config: dict, model: str) -> list[str]:
    """How the configured CelebA run of ``model`` differs from the setting behind the paper's Table 1."""
    data, training = config["datasets"].get("celeba", {}), config["training"]
    settings = {key: data.get(key) for key in PAPER_CELEBA} | {"latent_dim": data.get("latent_dim") or 64}
    gaps = [f"datasets.celeba.{key} = {settings[key]} (paper: {value})"
            for key, value in PAPER_CELEBA.items() if settings[key] != value]
    gaps += [f"training.{key} = {training[key]} (paper: {value})"
             for key, value in PAPER_TRAINING.items() if training[key] != value]
    if config["models"].get(model, {}).get("prior") == "polynomial" and \
            (training["poly_order"], training["poly_normalisable"]) != (5, False):
        gaps.append(f"polynomial prior K = {training['poly_order']}, normalisable form = "
                    f"{training['poly_normalisable']} (paper: K = 5, unconstrained)")
    return gaps


def table1(fids: pd.DataFrame, config: dict) -> pd.DataFrame:
    """One row per (dataset, model, features): mean +- sd of the per-draw FIDs over seeds and
    draws, the paper's value (CelebA, Inception) and whether ours is comparable to it: only
    CelebA, Inception features, >= 10 000 samples, trained in the paper's setting."""
    from fisherae.metrics import INCEPTION_FEATURES

    models = config["models"]
    rows = []
    for (dataset, model, features), group in fids.groupby(["dataset", "model", "features"], sort=True):
        entry = models.get(model, {"method": "unknown"})
        algorithm = paper_algorithm(entry) if model in models else None
        draws = group[(group["status"] == "ok") & (group["draw"] != "mean")]
        paper = PAPER_TABLE1.get(algorithm) if (dataset, features) == ("celeba", INCEPTION_FEATURES) else None
        n_samples = int(group["n_samples"].min())
        reasons = []
        if dataset != "celeba":
            reasons.append(f"{dataset} (the paper reports CelebA only)")
        if features != INCEPTION_FEATURES:
            reasons.append(f"{features} features (the paper uses Inception pool3)")
        if draws.empty:
            why = {str(r).split(". ")[0] for r in group["reason"].dropna()}  # first sentences; full text in the fid CSV
            reasons.append("no FID: " + "; ".join(sorted(why)))
        if n_samples < PAPER_MIN_SAMPLES:
            reasons.append(f"{n_samples} samples (< {PAPER_MIN_SAMPLES})")
        if algorithm is None:
            reasons.append("no counterpart in the paper's Table 1")
        if dataset == "celeba":
            reasons += paper_setting_gaps(config, model)
        rows.append({
            "algorithm": entry.get("label") or algorithm or model, "dataset": dataset, "model": model,
            "features": features, "status": "ok" if not draws.empty else "unavailable",
            "fid_mean": draws["fid"].mean() if not draws.empty else np.nan,
            "fid_sd": draws["fid"].std(ddof=1) if len(draws) > 1 else np.nan,
            "n_seeds": draws["seed"].nunique(), "n_draws": len(draws), "n_samples": n_samples,
            "paper_fid": paper[0] if paper else np.nan, "paper_sd": paper[1] if paper else np.nan,
            "comparable": "yes" if not reasons else "no", "note": "; ".join(reasons),
        })
    ours = {paper_algorithm(models[r["model"]]) for r in rows
            if (r["dataset"], r["features"]) == ("celeba", INCEPTION_FEATURES) and r["model"] in models}
    for algorithm, (value, sd) in PAPER_TABLE1.items():
        if algorithm not in ours:
            rows.append({"algorithm": algorithm, "dataset": "celeba", "model": "", "features": INCEPTION_FEATURES,
                         "status": "not run", "fid_mean": np.nan, "fid_sd": np.nan, "n_seeds": 0, "n_draws": 0,
                         "n_samples": 0, "paper_fid": value, "paper_sd": sd, "comparable": "no",
                         "note": "paper value only: not run in this configuration"})
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)


def table1_markdown(table: pd.DataFrame) -> str:
    def pm(mean, sd):
        if pd.isna(mean):
            return "—"
        decimals = max(1, 2 - int(np.floor(np.log10(max(abs(mean), 1e-12)))))  # 89.1, 7.45, 0.756
        return f"{mean:.{decimals}f} ± {sd:.{decimals}f}" if not pd.isna(sd) else f"{mean:.{decimals}f}"

    rows = [[r.algorithm, r.dataset, r.features, pm(r.fid_mean, r.fid_sd) if r.status == "ok" else r.status,
             f"{r.n_seeds} × {r.n_draws // max(r.n_seeds, 1)}", r.n_samples, pm(r.paper_fid, r.paper_sd),
             f"{r.comparable}{': ' + r.note if r.note else ''}"] for r in table.itertuples()]
    columns = ["Algorithm", "Data set", "Features", "Ours (mean ± sd)", "Seeds × draws", "Samples",
               "Paper (CelebA, Inception)", "Comparable"]
    lines = ["# Table 1: FID of prior samples (smaller is better)", "",
             markdown_table(pd.DataFrame(rows, columns=columns))]
    lines += ["", "The paper's numbers are FIDs on CelebA 64×64 with Inception pool3 (2048-d) features "
              "(Elkhalil et al., 2021, Table 1). Ours are comparable only for CelebA with "
              "`inception-pool3-2048` features and at least "
              f"{PAPER_MIN_SAMPLES} samples; `mnist-classifier-penultimate` is the Fréchet distance in the "
              "penultimate layer of a small MNIST classifier trained here (Inception features fit 28×28 "
              "digits poorly) and has no counterpart in the paper. Mean ± sd over all seeds × draws.", ""]
    return "\n".join(lines)
