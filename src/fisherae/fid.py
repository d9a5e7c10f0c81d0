"""The FID of decoded prior samples against the test images (the paper's Table 1): the feature
spaces a config asks for, and the rows of one model's FID CSV (one per feature space and draw of
samples, then their mean and sd)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fisherae.classifier import load_classifier
from fisherae.data import make_loader
from fisherae.metrics import (CLASSIFIER_FEATURES, INCEPTION_FEATURES, ActivationStatistics, FeaturesUnavailable,
                              frechet_distance, inception_features, inception_model)

FID_COLUMNS = ["dataset", "model", "seed", "features", "draw", "n_samples", "n_real", "sampler", "fid", "fid_sd",
               "status", "reason"]


def wants_classifier(settings: dict, dataset: str) -> bool:
    """Whether ``evaluation.fid`` (``settings``) asks for the domain classifier's features on ``dataset``."""
    return settings["features"] in ("classifier", "both") and dataset == "mnist"


def feature_extractors(settings: dict, dataset: str, classifier_path: str | None, device):
    """({features name: (extract fn, dim)}, {features name: why unavailable}) for the feature
    spaces ``evaluation.fid`` (``settings``) asks for; the classifier's where ``wants_classifier``."""
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
        else:
            net = load_classifier(classifier_path)[0].to(device)
            extractors[CLASSIFIER_FEATURES] = (net.features, net.feature_dim)
    return extractors, unavailable


def fid_rows(model, z: np.ndarray, real, extractors: dict, batch_size: int, device) -> list[dict]:
    """Per feature space: one row per draw of decoded samples and a mean +- sd row."""
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


def unavailable_rows(unavailable: dict[str, str], n_samples: int, n_real: int) -> list[dict]:
    """One row per feature space whose FID could not be computed, saying why."""
    return [{"features": features, "draw": "", "n_samples": n_samples, "n_real": n_real, "fid": np.nan,
             "fid_sd": np.nan, "status": "unavailable", "reason": reason} for features, reason in unavailable.items()]


def fid_table(rows: list[dict], dataset: str, model: str, seed: int, sampler: str) -> pd.DataFrame:
    """The FID CSV of one model: ``rows`` (``fid_rows`` + ``unavailable_rows``) labelled with the run."""
    table = pd.DataFrame(rows)
    table.insert(0, "seed", seed)
    table.insert(0, "model", model)
    table.insert(0, "dataset", dataset)
    table["sampler"] = sampler
    return table.reindex(columns=FID_COLUMNS)
