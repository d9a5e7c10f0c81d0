"""Training one model on one data set with one seed: Fisher AE (eq. 11), VAE (eq. 2) or
WAE-GAN (Tolstikhin et al., 2018, Algorithm 1), with Adam as in the paper (Section 4).

Resumable: after every epoch ``checkpoint.pt`` (weights, optimiser states, epoch, the
metrics so far and a fingerprint of the training-relevant configuration) and
``metrics.csv`` are written atomically; rerunning the same command after a kill resumes
from the last finished epoch. All randomness of epoch e (shuffling, the draws of z, the
WAE prior draws) comes from RNGs seeded afresh from (seed, e) at the start of the epoch,
so the RNG state at any epoch boundary is a function of (seed, e): nothing needs to be
carried over, and a resumed run ends with the same weights, bit for bit on the CPU, as
an uninterrupted one. Ctrl-C (SIGINT) or SIGTERM stops a run with ``fisherae.interrupts.Interrupted``,
saying which epoch the checkpoint holds; a signal that arrives while an epoch's files are
being written is acted on once they are written.

Every epoch is reported on one line (stderr and ``train.log``): the loss terms, the held-out
loss on a fixed validation subset of the training split (``datasets.<name>.validation_size``
images, held out from training; see ``_HeldOut``), seconds and images per second.

A step draws its noise from the epoch's generator, runs the objective and Adam, and returns its
loss terms and gradient norms as one device tensor (``TrainingStep``; on a GPU replayed from
one CUDA graph, see ``fisherae.capture``); the batches are gathered on the device
(``fisherae.batches``), and the terms go into a ledger on the device that is checked every
CHECK_EVERY batches, so no step waits for the host."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fisherae.checkpoint import (CHECKPOINT_FILE, CHECKPOINT_FORMAT, MODEL_FILE, SNAPSHOT_DIR, atomic_torch_save,
                                 atomic_write_text, save_model, torch_load)
from fisherae.config import model_setting
from fisherae.config_keys import ADDED, TRAINED, changed_values, resolve
from fisherae.errors import ConfigError, TrainingDiverged, UserError
from fisherae.capture import GraphedStep
from fisherae.batches import TensorBatches
from fisherae.data import VALIDATION_SEED, hold_out, load_split
from fisherae.devices import float32_products, use_configured_compute
from fisherae.interrupts import Interrupted, uninterrupted
from fisherae.host_memory import keep_freed_memory
from fisherae.losses import fisher_ae_loss, vae_loss, wae_adversary_loss, wae_autoencoder_loss, wae_encode
from fisherae.group_norm import double_backward_mode
from fisherae.models import AutoEncoder, ModelSpec
from fisherae.priors import build_prior

METRICS_FILE, LOG_FILE = "metrics.csv", "train.log"
_SECTIONS = {"datasets": "data", "models": "model", "training": "training"}  # of relevant_config, by config section
CHECK_EVERY = 50  # batches between the host syncs that check for a non-finite term or gradient
_GRAD = "grad "  # prefix of the gradient-norm entries of a step's output
# Training settings added after files with a stored training configuration were first written, with
# the value those files were trained with: a file without validation_size was trained on the whole
# split, one without the WAE-GAN cost_scale on the unscaled cost, one without tf32 with PyTorch's
# default (TF32 convolutions on a GPU; its matrix products were IEEE, a negligible share of the
# nets' arithmetic; a CPU computes the same either way).
_ADDED = {"data": {"validation_size": 0}, "training": {"wae_gan": {"cost_scale": 1.0}, "tf32": ADDED["training.tf32"]}}
HELD_OUT = "heldout_"  # prefix of the held-out loss terms in metrics.csv


def train(config: dict, dataset: str, model: str, seed: int, outdir: str | Path, device: torch.device | str,
          progress: bool = True) -> Path:
    """Train ``config["models"][model]`` on ``dataset`` with ``seed`` into ``outdir``
    (``model.pt``, ``checkpoint.pt``, ``metrics.csv``), resuming from ``checkpoint.pt``
    if present; returns the path of ``model.pt``."""
    spec = model_spec(config, dataset, model)
    settings = config["training"]
    use_configured_compute(config, settings["tf32"])
    keep_freed_memory()
    device = torch.device(device)
    outdir = Path(outdir)
    run = _Run(config, dataset, model, seed, outdir, device, spec)
    start = run.resume()
    if start > settings["epochs"] + 1:
        raise ConfigError(f"{outdir / CHECKPOINT_FILE} is already at epoch {start - 1}, beyond training.epochs = "
                          f"{settings['epochs']}; raise training.epochs or use another --outdir")
    run.prepare_snapshots(start)
    data, held_out = training_batches(config, dataset, device)
    validation = None if held_out is None else _HeldOut(run.step, held_out)
    _say(run.start_line(start, data.n_items, 0 if held_out is None else held_out.n_items))
    try:
        for epoch in range(start, settings["epochs"] + 1):
            run.train_epoch(data, validation, epoch, progress)
    except KeyboardInterrupt as stop:
        raise run.interrupted(stop) from None
    return save_model(outdir / MODEL_FILE, run.model, run.model_metadata(settings["epochs"]))


def _say(line: str) -> None:
    """A progress line on stderr (the job's log under Snakemake), flushed at once."""
    print(line, file=sys.stderr, flush=True)


def training_batches(config: dict, dataset: str, device: torch.device) -> tuple[TensorBatches, TensorBatches | None]:
    """The batches of ``dataset``'s training split that training visits, and those of the
    validation subset held out from them (None where ``validation_size`` is 0)."""
    cfg, batch_size = config["datasets"][dataset], config["training"]["batch_size"]
    split, held_out = hold_out(load_split(dataset, cfg, "train"), cfg["validation_size"],
                               f"datasets.{dataset}.validation_size")
    return (TensorBatches(split, batch_size, device),
            None if held_out is None else TensorBatches(held_out, batch_size, device))


def model_spec(config: dict, dataset: str, model: str) -> ModelSpec:
    """The ModelSpec of ``config["models"][model]`` on ``dataset``; ConfigError names a bad key."""
    for section, key in (("datasets", dataset), ("models", model)):
        if key not in config[section]:
            raise ConfigError(f"{section}: no entry {key!r} in the configuration; "
                              f"choose one of {', '.join(sorted(config[section]))}")
    data, entry, settings = config["datasets"][dataset], config["models"][model], config["training"]
    method = entry["method"]
    extra = {"wae_gan": {"wae_lambda": data.get("wae_lambda", settings["wae_gan"]["lambda"]),
                         "stochastic_encoder": settings["wae_gan"]["stochastic_encoder"],
                         "cost_scale": settings["wae_gan"]["cost_scale"]},
             "vae": {"n_samples": settings["n_samples"], "decoder_var": settings["decoder_var"]},
             "fisher_ae": {"n_samples": settings["n_samples"], "decoder_var": settings["decoder_var"],
                           "fisher_variant": entry["fisher_variant"]}}[method]
    try:
        spec = ModelSpec(method, dataset, entry["prior"], data.get("latent_dim"), data["width"],
                         model_setting(config, model, "poly_order"), model_setting(config, model, "poly_normalisable"),
                         extra)
        build_prior(spec.prior, spec.latent, spec.poly_order, spec.poly_normalisable)  # e.g. odd normalisable order
    except ValueError as err:
        raise ConfigError(f"models.{model} on datasets.{dataset}: {err}") from err
    return spec


def relevant_config(config: dict, dataset: str, model: str, seed: int) -> dict:
    """The part of the configuration that determines the trained weights (fisherae.config_keys.TRAINED),
    by section: {"dataset", "data": {key: value}, "model": {...}, "training": {...}, "seed"}."""
    relevant = {"dataset": dataset, "data": {}, "model": {}, "training": {}, "seed": seed}
    for key in TRAINED:
        for path, value in resolve(config, key, {"dataset": dataset, "model": model}).items():
            section, *_, name = path.split(".")
            relevant[_SECTIONS[section]][name] = value
    return relevant


def trained_differences(config: dict, metadata: dict, dataset: str, model: str, seed: int | None = None) -> list[str]:
    """The training settings (dotted keys, "model's value -> config's value") in which the model
    whose file ``metadata`` this is differs from what ``config`` trains as ``model`` on
    ``dataset`` with ``seed`` (None: the model's own seed); the epochs count too. A model file
    saved without training settings (built by hand, not by ``train``) is not checked."""
    stored = metadata.get("training_config")
    if not isinstance(stored, dict):
        return []
    expected = relevant_config(config, dataset, model, stored.get("seed") if seed is None else seed)
    changed = _differences(_with_added(stored), expected)
    if metadata.get("epochs") != config["training"]["epochs"]:
        changed.append(f"training.epochs ({metadata.get('epochs')!r} -> {config['training']['epochs']!r})")
    return changed


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
    """One training run's model, optimisers, step, metrics and files."""

    def __init__(self, config: dict, dataset: str, model: str, seed: int, outdir: Path, device: torch.device,
                 spec: ModelSpec):
        self.config, self.dataset, self.name, self.seed, self.outdir, self.device = (
            config, dataset, model, seed, outdir, device)
        self.relevant = relevant_config(config, dataset, model, seed)
        self.fingerprint = hashlib.sha256(json.dumps(self.relevant, sort_keys=True).encode()).hexdigest()
        seed_everything(seed)
        self.step = TrainingStep(spec, config["training"], device)
        self.model, self.optimisers = self.step.model, self.step.optimisers
        self.metrics: list[dict] = []
        self.saved = 0  # the epoch that checkpoint.pt holds
        self.prefix = f"{dataset}/{model} seed {seed}"

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
        missing = sorted({"epoch", "training_config", "model", "optimisers", "metrics"} - state.keys())
        if missing:
            raise UserError(f"training checkpoint {path} lacks {', '.join(missing)}; delete it and {remedy}")
        changed = _differences(_with_added(state["training_config"]), self.relevant)
        if changed:
            raise ConfigError(f"training checkpoint {path} was written with a different configuration "
                              f"(changed: {', '.join(changed)}); restore those settings to resume it, "
                              f"or delete it and {remedy}")
        self.model.load_state_dict(state["model"])
        for name, optimiser in self.optimisers.items():
            _load_optimiser(optimiser, state["optimisers"][name], self.device.type == "cuda")
        self.metrics = list(state["metrics"])
        self._write_metrics()  # drops any row written after the checkpoint
        self.saved = state["epoch"]
        return state["epoch"] + 1

    def start_line(self, start: int, n_train: int, n_held_out: int) -> str:
        """What the run is about to do: from scratch, resume, or only write the model file."""
        epochs, path = self.config["training"]["epochs"], self.outdir / CHECKPOINT_FILE
        what = (f"training epochs 1-{epochs} from scratch" if start == 1 else
                f"resuming from epoch {start} of {epochs} ({path} holds epoch {start - 1})" if start <= epochs else
                f"{path} holds all {epochs} epochs; writing {self.outdir / MODEL_FILE}")
        held = f", {n_held_out} held out for the validation loss" if n_held_out else ""
        return f"{self.prefix}: {what}; {n_train} training images{held}"

    def model_metadata(self, epoch: int) -> dict:
        """The metadata of the model file of ``epoch``: model.pt (epoch == epochs) or a snapshot."""
        return {"dataset": self.dataset, "model": self.name, "seed": self.seed, "epoch": epoch,
                "epochs": self.config["training"]["epochs"], "metrics": self.metrics[epoch - 1],
                "training_config": self.relevant, "fingerprint": self.fingerprint, "torch": str(torch.__version__)}

    def snapshot_path(self, epoch: int) -> Path:
        return self.outdir / SNAPSHOT_DIR / f"epoch{epoch}.pt"

    def prepare_snapshots(self, start: int) -> None:
        """ConfigError for a snapshot epoch at or past ``epochs``, or one trained past before the
        checkpoint's epoch whose file is missing (snapshot_epochs added after the checkpoint was
        written); a missing snapshot of the checkpoint's own epoch is written from the resumed model,
        which is that epoch's model (a finished run extended to more epochs keeps its last model)."""
        epochs = self.config["training"]["epochs"]
        for epoch in self.config["training"]["snapshot_epochs"]:
            if epoch >= epochs:
                raise ConfigError(f"training.snapshot_epochs: {epoch} is not below training.epochs = {epochs} "
                                  "(model.pt is the model of the last epoch); list earlier epochs only")
            if epoch < start - 1 and not self.snapshot_path(epoch).exists():
                raise ConfigError(f"{self.snapshot_path(epoch)} is missing but {self.outdir / CHECKPOINT_FILE} "
                                  f"is already past epoch {epoch}; delete the checkpoint to train again with "
                                  "this snapshot, or drop the epoch from training.snapshot_epochs")
        if start - 1 in self.config["training"]["snapshot_epochs"] and not self.snapshot_path(start - 1).exists():
            save_model(self.snapshot_path(start - 1), self.model, self.model_metadata(start - 1))

    def interrupted(self, stop: KeyboardInterrupt) -> Interrupted:
        """The Interrupted to raise for ``stop`` (Ctrl-C or SIGTERM), saying what is kept."""
        path, epochs = self.outdir / CHECKPOINT_FILE, self.config["training"]["epochs"]
        kept = (f"{path} holds epoch {self.saved} of {epochs}; rerun the same command to resume from epoch "
                f"{self.saved + 1}" if self.saved else "no epoch had finished; rerun the same command to start over")
        return Interrupted(getattr(stop, "signum", signal.SIGINT), f"{self.prefix}: {kept}")

    def train_epoch(self, data: TensorBatches, validation: _HeldOut | None, epoch: int, progress: bool) -> None:
        """One pass over ``data``, the held-out loss on ``validation``; then the checkpoint,
        metrics.csv and the epoch's line for ``epoch``, none of them cut short by a signal."""
        settings = self.config["training"]
        rng_seed, order_seed = epoch_seeds(self.seed, epoch)
        seed_everything(rng_seed)
        self.step.generator.manual_seed(rng_seed)
        self.model.train()
        ledger = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        started = time.perf_counter()
        with tqdm(total=len(data), desc=f"{self.prefix} epoch {epoch}/{settings['epochs']}",
                  file=sys.stderr, disable=not progress, leave=False) as bar:
            for batch, (x, _) in enumerate(data.epoch(order_seed), start=1):
                self.step.position = (epoch, batch)
                row = self.step(x)
                ledger = ledger or _Ledger(self, len(data), row.numel())
                ledger.record(batch, len(x), row)
                if batch % CHECK_EVERY == 0:
                    bar.set_postfix(loss=f"{ledger.check(batch)['loss']:.4g}")
                bar.update()
            means = ledger.means()
        seconds = time.perf_counter() - started
        held = validation() if validation else {}
        self.metrics.append({"epoch": epoch, **means, **held, "seconds": round(seconds, 3)})
        line = self._epoch_line(epoch, means, held, seconds, data.n_items)
        with uninterrupted():
            if epoch in settings["snapshot_epochs"]:  # before the checkpoint: a checkpoint past it implies it
                save_model(self.snapshot_path(epoch), self.model, self.model_metadata(epoch))
            atomic_torch_save({"format": CHECKPOINT_FORMAT, "epoch": epoch, "fingerprint": self.fingerprint,
                               "training_config": self.relevant, "model": self.model.state_dict(),
                               "optimisers": {k: o.state_dict() for k, o in self.optimisers.items()},
                               "metrics": self.metrics}, self.outdir / CHECKPOINT_FILE)
            self.saved = epoch
            self._write_metrics()
            log = self.outdir / LOG_FILE  # appended by a whole rewrite: never a half-written line
            atomic_write_text(log, (log.read_text() if log.is_file() else "") + line + "\n")
            _say(line)

    def _epoch_line(self, epoch: int, means: dict, held: dict, seconds: float, n_items: int) -> str:
        terms = ", ".join(f"{k} {v:.5g}" for k, v in means.items())
        if held:
            terms += "; held-out " + ", ".join(f"{k[len(HELD_OUT):]} {v:.5g}" for k, v in held.items())
        memory = (f", float32 products: {float32_products()}, peak GPU memory "
                  f"{torch.cuda.max_memory_allocated(self.device) / 2**20:.0f} MiB" if self.device.type == "cuda" else "")
        norm = (f", group norm double backward: {double_backward_mode()}"
                if self.device.type == "cpu" and self.model.spec.method == "fisher_ae" else "")
        return (f"{self.prefix} epoch {epoch}/{self.config['training']['epochs']}: "
                f"{terms}; {seconds:.1f} s, {n_items / seconds:.0f} images/s, step: {self.step.graph.mode}{norm}{memory}")

    def _write_metrics(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(self.metrics[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.metrics)
        atomic_write_text(self.outdir / METRICS_FILE, text.getvalue())


class _HeldOut:
    """The method's loss terms (``heldout_<term>``) on the validation subset that
    ``fisherae.data.hold_out`` keeps out of training, comparable from epoch to epoch: the model
    in eval mode, the same noise draws every epoch (drawn once, on the CPU, from VALIDATION_SEED:
    the same for every training seed), no optimiser step and no draw from the training RNGs."""

    def __init__(self, step: TrainingStep, data: TensorBatches):
        self.model, self.data = step.model, data
        generator, spec = torch.Generator().manual_seed(VALIDATION_SEED), step.model.spec
        self.noise = [tuple(torch.randn(shape, generator=generator).to(step.device)
                            for shape in _NOISE[spec.method](spec, len(x)))
                      for x, _ in data.epoch(0, shuffle=False)]

    def __call__(self) -> dict[str, float]:
        self.model.eval()
        total = 0
        for (x, _), noise in zip(self.data.epoch(0, shuffle=False), self.noise):
            terms = _OBJECTIVES[self.model.spec.method](self, x, *noise)
            total = total + torch.stack([t.detach().double() for t in terms.values()]) * len(x)
        self.model.train()
        return {HELD_OUT + name: value / self.data.n_items for name, value in zip(terms, total.tolist())}

    def update(self, name: str, loss: torch.Tensor) -> None:
        """What an objective calls to step an optimiser: nothing here, the held-out loss only reads."""


class TrainingStep:
    """A model, its Adam optimisers and one training step of its method: ``step(x)`` draws the
    step's noise from ``generator`` (outside any CUDA graph), runs the objective and the
    optimiser steps, eager or replayed from a CUDA graph (``graph.mode``), and returns the
    step's terms and each parameter's gradient norm (named by ``names``) as one device tensor,
    without a host sync."""

    def __init__(self, spec: ModelSpec, settings: dict, device: torch.device):
        self.device = device
        self.model = AutoEncoder(spec).to(device)
        self.graph = GraphedStep(self._step, device, settings["step_mode"])
        self.optimisers = _optimisers(self.model, settings, capturable=device.type == "cuda")
        self.generator = torch.Generator(device)
        self.param_names = {p: _GRAD + n for n, p in self.model.named_parameters()}
        self.names: list[str] = []  # its output: the terms, then a gradient norm per parameter
        self.position = (0, 0)  # (epoch, batch) of the step being run

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x, *self._draw(len(x)))

    def _draw(self, batch: int) -> tuple[torch.Tensor, ...]:
        """The step's standard-normal draws (outside any CUDA graph, from the epoch's generator)."""
        shapes = _NOISE[self.model.spec.method](self.model.spec, batch)
        return tuple(torch.randn(shape, generator=self.generator, device=self.device) for shape in shapes)

    def _step(self, x: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        """One step of the method's objective: its terms, then each parameter's gradient norm."""
        self._norms, self._norm_names = [], []
        terms = _OBJECTIVES[self.model.spec.method](self, x, *noise)
        self.names = list(terms) + self._norm_names
        return torch.cat([torch.stack([t.detach().float() for t in terms.values()]), *self._norms])

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` and step the optimiser ``name``; records the gradient norms."""
        optimiser = self.optimisers[name]
        optimiser.zero_grad(set_to_none=True)
        params = [p for group in optimiser.param_groups for p in group["params"] if p.requires_grad]
        loss.backward(inputs=params)  # no gradient of the data or of another optimiser's parameters
        params = [p for p in params if p.grad is not None]
        if params:
            self._norms.append(torch.stack(torch._foreach_norm([p.grad for p in params])).float())
            self._norm_names += [self.param_names[p] for p in params]
        optimiser.step()


class _Ledger:
    """The step outputs of one epoch, kept on the device and checked every CHECK_EVERY batches
    (one host sync each), so that a non-finite loss term or gradient stops training with a
    clear error naming its batch before anything of the epoch is saved."""

    def __init__(self, run: _Run, n_batches: int, width: int):
        self.run = run
        self.rows = torch.full((n_batches, width), math.nan, device=run.device)
        self.sizes: list[int] = []
        self.checked = 0

    def record(self, batch: int, size: int, row: torch.Tensor) -> None:
        self.rows[batch - 1].copy_(row)
        self.sizes.append(size)

    def check(self, upto: int) -> dict[str, float]:
        """Fail at the first non-finite row up to batch ``upto``; the last row's terms."""
        rows = self.rows[self.checked:upto].cpu()
        bad = (~rows.isfinite()).any(1).nonzero()
        if len(bad):
            self._fail(self.checked + int(bad[0]) + 1, rows[int(bad[0])].tolist())
        self.checked = upto
        return dict(zip(self.run.step.names, rows[-1].tolist())) if len(rows) else {}

    def means(self) -> dict[str, float]:
        """Each term's mean over the epoch's items (after checking every row)."""
        self.check(len(self.sizes))
        rows = self.rows[:len(self.sizes)].double().cpu().tolist()
        names = [name for name in self.run.step.names if not name.startswith(_GRAD)]
        return {name: sum(row[k] * size for row, size in zip(rows, self.sizes)) / sum(self.sizes)
                for k, name in enumerate(names)}

    def _fail(self, batch: int, row: list[float]) -> None:
        run, lr = self.run, self.run.config["training"]["lr"]
        values = dict(zip(run.step.names, row))
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        terms = [name for name in bad if not name.startswith(_GRAD)]
        culprits = [name for name in terms if name != "loss"] or terms
        what = (" and ".join(f"the {name} term is {values[name]}" for name in culprits) if culprits
                else f"the gradient of {bad[0][len(_GRAD):]} is non-finite")
        epoch = run.step.position[0]
        raise TrainingDiverged(
            f"training {run.dataset}/{run.name} seed {run.seed} diverged at epoch {epoch}, batch {batch}: "
            f"{what}. Nothing of this epoch was saved ({run.outdir / MODEL_FILE} not written; "
            f"{run.outdir / CHECKPOINT_FILE} still holds the last finished epoch, if any). Lower training.lr "
            f"(now {lr}) and delete {run.outdir} to start over; for the polynomial prior also consider "
            "training.poly_normalisable: true with an even poly_order")


def _optimisers(model: AutoEncoder, settings: dict, capturable: bool) -> dict[str, torch.optim.Optimizer]:
    """Adam (lr, betas) over encoder, decoder and prior; WAE-GAN's adversary gets its own Adam.
    ``capturable`` (on a GPU, whatever the step mode) keeps Adam's step counts on the device, as
    a CUDA graph needs; eager and graph steps then do the same arithmetic (capturable and
    non-capturable Adam round differently). On the CPU, Adam's fused kernel (0.23 against 0.77 ms
    a step on the MNIST nets at width 16, one thread: BENCHMARKS.md)."""
    betas = tuple(settings["betas"])
    autoencoder = itertools.chain(model.encoder.parameters(), model.decoder.parameters(), model.prior.parameters())
    optimisers = {"autoencoder": torch.optim.Adam(autoencoder, lr=settings["lr"], betas=betas,
                                                  **_adam_kernel(capturable))}
    if model.adversary is not None:
        optimisers["adversary"] = torch.optim.Adam(model.adversary.parameters(), lr=settings["wae_gan"]["adversary_lr"],
                                                   betas=betas, **_adam_kernel(capturable))
    return optimisers


def _adam_kernel(capturable: bool) -> dict:
    """Adam's settings of how it runs: capturable on a GPU, the fused kernel on the CPU."""
    return {"capturable": capturable, "fused": None if capturable else True}


def _load_optimiser(optimiser: torch.optim.Optimizer, state: dict, capturable: bool) -> None:
    """Load a saved Adam state into ``optimiser``, keeping its own ``capturable`` and ``fused``
    settings (a checkpoint written on the CPU resumes on a GPU, and the other way round)."""
    optimiser.load_state_dict(state)
    for group in optimiser.param_groups:
        group.update(_adam_kernel(capturable))
        for p in group["params"]:
            saved = optimiser.state.get(p, {})
            if "step" in saved:
                saved["step"] = saved["step"].to(p.device if capturable else "cpu", torch.float32)


def _fisher_ae_step(run: TrainingStep, x: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """One Adam step on the Fisher AE loss, eq. 11."""
    model, extra = run.model, run.model.spec.extra
    terms = fisher_ae_loss(model.encoder, model.decoder, model.prior, x, eps=eps,
                           decoder_var=extra["decoder_var"], variant=extra["fisher_variant"])
    run.update("autoencoder", terms.loss)
    return {"loss": terms.loss, "posterior": terms.posterior.mean(), "reconstruction": terms.reconstruction.mean(),
            "stability": terms.stability.mean()}


def _vae_step(run: TrainingStep, x: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """One Adam step on the negative ELBO, eq. 2."""
    model, extra = run.model, run.model.spec.extra
    terms = vae_loss(model.encoder, model.decoder, model.prior, x, eps=eps, decoder_var=extra["decoder_var"])
    run.update("autoencoder", terms.loss)
    return {"loss": terms.loss, "reconstruction": terms.reconstruction.mean(), "kl": terms.kl.mean()}


def _wae_gan_step(run: TrainingStep, x: torch.Tensor, z_prior: torch.Tensor, *eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """WAE-GAN (Tolstikhin et al., 2018, Algorithm 1): an adversary step on prior draws
    z ~ N(0, I) against the codes, then an encoder/decoder step on
    ||x - f(z)||^2 + lambda * GAN penalty with the updated adversary."""
    model, extra = run.model, run.model.spec.extra
    z = wae_encode(model.encoder, x, extra["stochastic_encoder"], eps=eps[0] if eps else None)
    adversary_loss = wae_adversary_loss(model.adversary, z_prior, z)
    run.update("adversary", adversary_loss)
    terms = wae_autoencoder_loss(model.decoder, model.adversary, x, z, extra["wae_lambda"], extra.get("cost_scale", 1.0))
    run.update("autoencoder", terms.loss)
    return {"loss": terms.loss, "reconstruction": terms.reconstruction.mean(), "penalty": terms.penalty.mean(),
            "adversary": adversary_loss}


# Each objective reads ``run.model`` and steps through ``run.update``: a TrainingStep, or a _HeldOut,
# whose update steps nothing.
_OBJECTIVES: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "fisher_ae": _fisher_ae_step, "vae": _vae_step, "wae_gan": _wae_gan_step}

# The standard-normal draws each method's step takes, by shape: eps [L, B, d] of z = mu + sigma eps;
# WAE-GAN: the prior draws [B, d] for its adversary, and eps [1, B, d] if its encoder is stochastic.
_NOISE: dict[str, Callable[[ModelSpec, int], list[tuple[int, ...]]]] = {
    "fisher_ae": lambda spec, b: [(spec.extra["n_samples"], b, spec.latent)],
    "vae": lambda spec, b: [(spec.extra["n_samples"], b, spec.latent)],
    "wae_gan": lambda spec, b: [(b, spec.latent)] + ([(1, b, spec.latent)] if spec.extra["stochastic_encoder"] else []),
}


def _with_added(stored: dict, added: dict = _ADDED) -> dict:
    """A stored training configuration with the settings added since (``_ADDED``) filled in where
    the stored one has their section (a WAE-GAN cost scale only where WAE-GAN settings are stored)."""
    filled = dict(stored)
    for key, value in added.items():
        if isinstance(value, dict) and isinstance(stored.get(key), dict):
            filled[key] = _with_added(stored[key], value)
        elif key not in stored and not isinstance(value, dict):
            filled[key] = value
    return filled


def _differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two nested dicts, with both values."""
    return [f"{key} ({a!r} -> {b!r})" for key, a, b in changed_values(old, new)]
