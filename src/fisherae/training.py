"""Training one model on one data set with one seed: Fisher AE (eq. 11), VAE (eq. 2) or
WAE-GAN (Tolstikhin et al., 2018, Algorithm 2), with Adam as in the paper (Section 4).

Resumable: after every epoch ``checkpoint.pt`` (weights, optimiser states, epoch, the
metrics so far and a fingerprint of the training-relevant configuration) and
``metrics.csv`` are written atomically; rerunning the same command after a kill resumes
from the last finished epoch. All randomness of epoch e (shuffling, the draws of z, the
WAE prior draws) comes from RNGs seeded afresh from (seed, e) at the start of the epoch,
so the RNG state at any epoch boundary is a function of (seed, e): nothing needs to be
carried over, and a resumed run ends with the same weights, bit for bit on the CPU, as
an uninterrupted one."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fisherae.checkpoint import atomic_torch_save, atomic_write_text, save_model, torch_load
from fisherae.cli import UserError
from fisherae.config import ConfigError
from fisherae.data import load_split, make_loader
from fisherae.losses import fisher_ae_loss, vae_loss, wae_adversary_loss, wae_autoencoder_loss, wae_encode
from fisherae.models import AutoEncoder, ModelSpec
from fisherae.priors import build_prior

CHECKPOINT_FORMAT = "fisherae-checkpoint-v1"
MODEL_FILE, CHECKPOINT_FILE, METRICS_FILE = "model.pt", "checkpoint.pt", "metrics.csv"
# Keys that do not change what is trained: where the data lives, how long, how fast.
_IRRELEVANT = {"datasets": ("root", "download"), "models": ("label",), "training": ("epochs", "num_workers", "threads")}


class TrainingDiverged(UserError):
    """A non-finite loss term or gradient during training."""


def train(config: dict, dataset: str, model: str, seed: int, outdir: str | Path, device: torch.device | str,
          progress: bool = True) -> Path:
    """Train ``config["models"][model]`` on ``dataset`` with ``seed`` into ``outdir``
    (``model.pt``, ``checkpoint.pt``, ``metrics.csv``), resuming from ``checkpoint.pt``
    if present; returns the path of ``model.pt``."""
    spec = model_spec(config, dataset, model)
    settings = config["training"]
    torch.set_num_threads(settings["threads"])
    device = torch.device(device)
    outdir = Path(outdir)
    run = _Run(config, dataset, model, seed, outdir, device, spec)
    start = run.resume()
    if start > settings["epochs"] + 1:
        raise ConfigError(f"{outdir / CHECKPOINT_FILE} is already at epoch {start - 1}, beyond training.epochs = "
                          f"{settings['epochs']}; raise training.epochs or use another --outdir")
    data = load_split(dataset, config["datasets"][dataset], "train")
    for epoch in range(start, settings["epochs"] + 1):
        run.train_epoch(data, epoch, progress)
    metadata = {"dataset": dataset, "model": model, "label": config["models"][model].get("label", model),
                "seed": seed, "epochs": settings["epochs"], "metrics": run.metrics[-1],
                "training_config": run.relevant, "fingerprint": run.fingerprint, "torch": str(torch.__version__)}
    return save_model(outdir / MODEL_FILE, run.model, metadata)


def model_spec(config: dict, dataset: str, model: str) -> ModelSpec:
    """The ModelSpec of ``config["models"][model]`` on ``dataset``; ConfigError names a bad key."""
    for section, key in (("datasets", dataset), ("models", model)):
        if key not in config[section]:
            raise ConfigError(f"{section}: no entry {key!r} in the configuration; "
                              f"choose one of {', '.join(sorted(config[section]))}")
    data, entry, settings = config["datasets"][dataset], config["models"][model], config["training"]
    method = entry["method"]
    extra = {"wae_gan": {"wae_lambda": data.get("wae_lambda", settings["wae_gan"]["lambda"]),
                         "stochastic_encoder": settings["wae_gan"]["stochastic_encoder"]},
             "vae": {"n_samples": settings["n_samples"], "decoder_var": settings["decoder_var"]},
             "fisher_ae": {"n_samples": settings["n_samples"], "decoder_var": settings["decoder_var"],
                           "fisher_variant": entry["fisher_variant"]}}[method]
    try:
        spec = ModelSpec(method, dataset, entry["prior"], data.get("latent_dim"), data["width"],
                         settings["poly_order"], settings["poly_normalisable"], extra)
        build_prior(spec.prior, spec.latent, spec.poly_order, spec.poly_normalisable)  # e.g. odd normalisable order
    except ValueError as err:
        raise ConfigError(f"models.{model} on datasets.{dataset}: {err}") from err
    return spec


def relevant_config(config: dict, dataset: str, model: str, seed: int) -> dict:
    """The part of the configuration that determines the trained weights."""
    def keep(section: str, entry: dict) -> dict:
        return {k: v for k, v in entry.items() if k not in _IRRELEVANT[section]}
    return {"dataset": dataset, "data": keep("datasets", config["datasets"][dataset]),
            "model": keep("models", config["models"][model]), "training": keep("training", config["training"]),
            "seed": seed}


def epoch_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Independent seeds of the global RNGs and of the data order in ``epoch`` (1-based)
    of a run with ``seed``."""
    rng_seed, order_seed = np.random.SeedSequence([seed, epoch]).generate_state(2)
    return int(rng_seed), int(order_seed)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy and Python's random."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


class _Run:
    """One training run's model, optimisers, metrics and files."""

    def __init__(self, config: dict, dataset: str, model: str, seed: int, outdir: Path, device: torch.device,
                 spec: ModelSpec):
        self.config, self.dataset, self.name, self.seed, self.outdir, self.device = (
            config, dataset, model, seed, outdir, device)
        self.relevant = relevant_config(config, dataset, model, seed)
        self.fingerprint = hashlib.sha256(json.dumps(self.relevant, sort_keys=True).encode()).hexdigest()
        seed_everything(seed)
        self.model = AutoEncoder(spec).to(device)
        self.optimisers = _optimisers(self.model, config["training"])
        self.step = _OBJECTIVES[spec.method]
        self.metrics: list[dict] = []

    def resume(self) -> int:
        """Load ``checkpoint.pt`` if there is one; the first epoch still to train."""
        path = self.outdir / CHECKPOINT_FILE
        if not path.exists():
            return 1
        remedy = "train from scratch (or use another --outdir)"
        state = torch_load(path, "training checkpoint", remedy, self.device)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"training checkpoint {path} has format {state.get('format')!r}, expected "
                            f"{CHECKPOINT_FORMAT!r}; delete it and {remedy}")
        if state["fingerprint"] != self.fingerprint:
            changed = _differences(state["training_config"], self.relevant)
            raise ConfigError(f"training checkpoint {path} was written with a different configuration "
                              f"(changed: {', '.join(changed)}); restore those settings to resume it, "
                              f"or delete it and {remedy}")
        self.model.load_state_dict(state["model"])
        for name, optimiser in self.optimisers.items():
            optimiser.load_state_dict(state["optimisers"][name])
        self.metrics = list(state["metrics"])
        self._write_metrics()  # drops any row written after the checkpoint
        return state["epoch"] + 1

    def train_epoch(self, data, epoch: int, progress: bool) -> None:
        """One pass over ``data``; then the checkpoint and metrics.csv for ``epoch``."""
        settings = self.config["training"]
        rng_seed, order_seed = epoch_seeds(self.seed, epoch)
        seed_everything(rng_seed)
        loader = make_loader(data, settings["batch_size"], True, order_seed, settings["num_workers"])
        self.model.train()
        sums: dict[str, float] = {}
        started = time.perf_counter()
        with tqdm(loader, desc=f"{self.dataset}/{self.name} seed {self.seed} epoch {epoch}/{settings['epochs']}",
                  file=sys.stderr, disable=not progress, leave=False) as bar:
            for batch, (x, _) in enumerate(bar, start=1):
                values = self.step(self, x.to(self.device), _Checker(self, epoch, batch))
                for key, value in values.items():
                    sums[key] = sums.get(key, 0.0) + value * len(x)
                bar.set_postfix(loss=f"{values['loss']:.4g}")
        row = {"epoch": epoch, **{k: v / len(data) for k, v in sums.items()},
               "seconds": round(time.perf_counter() - started, 3)}
        self.metrics.append(row)
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "epoch": epoch, "fingerprint": self.fingerprint,
                           "training_config": self.relevant, "model": self.model.state_dict(),
                           "optimisers": {k: o.state_dict() for k, o in self.optimisers.items()},
                           "metrics": self.metrics}, self.outdir / CHECKPOINT_FILE)
        self._write_metrics()

    def _write_metrics(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(self.metrics[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.metrics)
        atomic_write_text(self.outdir / METRICS_FILE, text.getvalue())


class _Checker:
    """Stops training with a clear error at the first non-finite loss term or gradient."""

    def __init__(self, run: _Run, epoch: int, batch: int):
        self.run, self.epoch, self.batch = run, epoch, batch

    def values(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """The terms as floats, after checking each is finite."""
        values = dict(zip(terms, torch.stack([v.detach() for v in terms.values()]).tolist()))
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        culprits = [name for name in bad if name != "loss"] or bad  # the term rather than the total
        if culprits:
            self._fail(" and ".join(f"the {name} term is {values[name]}" for name in culprits))
        return values

    def step(self, optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` and step ``optimiser`` unless a gradient is non-finite."""
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in optimiser.param_groups for p in group["params"] if p.grad is not None]
        if params and not torch.stack([p.grad.isfinite().all() for p in params]).all():
            bad = next(p for p in params if not p.grad.isfinite().all())
            name = next(n for n, p in self.run.model.named_parameters() if p is bad)
            self._fail(f"the gradient of {name} is non-finite")
        optimiser.step()

    def _fail(self, what: str) -> None:
        run, lr = self.run, self.run.config["training"]["lr"]
        raise TrainingDiverged(
            f"training {run.dataset}/{run.name} seed {run.seed} diverged at epoch {self.epoch}, batch {self.batch}: "
            f"{what}. Nothing of this epoch was saved ({run.outdir / MODEL_FILE} not written; "
            f"{run.outdir / CHECKPOINT_FILE} still holds the last finished epoch, if any). Lower training.lr "
            f"(now {lr}) and delete {run.outdir} to start over; for the polynomial prior also consider "
            "training.poly_normalisable: true with an even poly_order")


def _optimisers(model: AutoEncoder, settings: dict) -> dict[str, torch.optim.Optimizer]:
    """Adam (lr, betas) over encoder, decoder and prior; WAE-GAN's adversary gets its own Adam."""
    betas = tuple(settings["betas"])
    autoencoder = itertools.chain(model.encoder.parameters(), model.decoder.parameters(), model.prior.parameters())
    optimisers = {"autoencoder": torch.optim.Adam(autoencoder, lr=settings["lr"], betas=betas)}
    if model.adversary is not None:
        optimisers["adversary"] = torch.optim.Adam(model.adversary.parameters(),
                                                   lr=settings["wae_gan"]["adversary_lr"], betas=betas)
    return optimisers


def _fisher_ae_step(run: _Run, x: torch.Tensor, check: _Checker) -> dict[str, float]:
    """One Adam step on the Fisher AE loss, eq. 11."""
    model, extra = run.model, run.model.spec.extra
    terms = fisher_ae_loss(model.encoder, model.decoder, model.prior, x, n_samples=extra["n_samples"],
                           decoder_var=extra["decoder_var"], variant=extra["fisher_variant"])
    values = check.values({"loss": terms.loss, "posterior": terms.posterior.mean(),
                           "reconstruction": terms.reconstruction.mean(), "stability": terms.stability.mean()})
    check.step(run.optimisers["autoencoder"], terms.loss)
    return values


def _vae_step(run: _Run, x: torch.Tensor, check: _Checker) -> dict[str, float]:
    """One Adam step on the negative ELBO, eq. 2."""
    model, extra = run.model, run.model.spec.extra
    terms = vae_loss(model.encoder, model.decoder, model.prior, x, n_samples=extra["n_samples"],
                     decoder_var=extra["decoder_var"])
    values = check.values({"loss": terms.loss, "reconstruction": terms.reconstruction.mean(), "kl": terms.kl.mean()})
    check.step(run.optimisers["autoencoder"], terms.loss)
    return values


def _wae_gan_step(run: _Run, x: torch.Tensor, check: _Checker) -> dict[str, float]:
    """WAE-GAN (Tolstikhin et al., 2018, Algorithm 2): an adversary step on prior draws
    z ~ N(0, I) against the codes, then an encoder/decoder step on
    ||x - f(z)||^2 + lambda * GAN penalty with the updated adversary."""
    model, extra = run.model, run.model.spec.extra
    z = wae_encode(model.encoder, x, extra["stochastic_encoder"])
    adversary_loss = wae_adversary_loss(model.adversary, torch.randn_like(z), z)
    adversary_value = check.values({"adversary": adversary_loss})
    check.step(run.optimisers["adversary"], adversary_loss)
    terms = wae_autoencoder_loss(model.decoder, model.adversary, x, z, extra["wae_lambda"])
    values = check.values({"loss": terms.loss, "reconstruction": terms.reconstruction.mean(),
                           "penalty": terms.penalty.mean()})
    check.step(run.optimisers["autoencoder"], terms.loss)
    return {**values, **adversary_value}


_OBJECTIVES: dict[str, Callable[[_Run, torch.Tensor, _Checker], dict[str, float]]] = {
    "fisher_ae": _fisher_ae_step, "vae": _vae_step, "wae_gan": _wae_gan_step}


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    keys = sorted(set(old) | set(new))
    changed = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key} ({a!r} -> {b!r})")
    return changed
