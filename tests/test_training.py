"""Training, checkpoints and the ``train`` command: every method trains and saves, a killed
run resumes to bit-identical weights, and bad input (config, checkpoint, NaN) fails clearly
without losing or half-writing anything."""

from __future__ import annotations

import copy
import csv
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from fisherae import training
from fisherae.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    atomic_write,
    atomic_write_text,
    load_model,
    load_model_payload,
    save_model,
)
from fisherae.config import ConfigError, validate_config
from fisherae.data import DataError, split_tensors, to_float
from fisherae.errors import UserError
from fisherae.group_norm import MIN_ELEMENTS
from fisherae.interrupts import Interrupted
from fisherae.losses import FisherAETerms
from fisherae.models import AutoEncoder, ModelSpec
from fisherae.training import TrainingDiverged, model_spec, train

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TERMS = {"fisher_ae": ["posterior", "reconstruction", "stability"], "vae": ["reconstruction", "kl"],
         "wae_gan": ["reconstruction", "penalty", "adversary"]}


def make_config(epochs: int = 1, n_train: int = 96, validation_size: int = 0, **training_overrides) -> dict:
    """A tiny, validated configuration on the embedded data (narrow nets, one thread); MNIST
    holds ``validation_size`` training images out for the held-out loss."""
    raw = {
        "seeds": [0], "device": "cpu",
        "datasets": {"mnist": {"source": "embedded", "n_train": n_train, "width": 8, "latent_dim": 4,
                               "validation_size": validation_size},
                     "celeba": {"source": "embedded", "n_train": 16, "width": 8, "latent_dim": 8}},
        "models": {"fisher_ae_poly": {"method": "fisher_ae", "prior": "polynomial"},
                   "fisher_ae_gauss": {"method": "fisher_ae"}, "vae": {"method": "vae"},
                   "wae_gan": {"method": "wae_gan"}},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 1e-3, "threads": 1, **training_overrides},
    }
    return validate_config(raw)


def read_metrics(outdir: Path) -> list[dict]:
    with open(outdir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), f"{key} differs"


# --- training -------------------------------------------------------------------------------

def test_fisher_ae_with_polynomial_prior_learns_real_mnist(tmp_path):
    config = make_config(epochs=3, batch_size=64)
    config["datasets"]["mnist"] = {**config["datasets"]["mnist"], "source": "torchvision", "root": str(SHARED_DATA),
                                   "n_train": 2000, "latent_dim": 8}
    path = train(config, "mnist", "fisher_ae_poly", seed=0, outdir=tmp_path, device="cpu", progress=False)
    losses = [float(row["loss"]) for row in read_metrics(tmp_path)]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2] and losses[2] < 0.8 * losses[0], losses
    model = load_model(path)
    assert model.spec.prior == "polynomial" and model.spec.extra["fisher_variant"] == "exact"
    assert not torch.equal(model.prior.natural_parameters(), AutoEncoder(model.spec).prior.natural_parameters())


@pytest.mark.parametrize("dataset", ["mnist", "celeba"])
@pytest.mark.parametrize("model", ["fisher_ae_gauss", "vae", "wae_gan"])
def test_each_method_trains_and_saves(tmp_path, dataset, model):
    config = make_config()
    path = train(config, dataset, model, seed=1, outdir=tmp_path, device="cpu", progress=False)
    assert path == tmp_path / "model.pt" and (tmp_path / "checkpoint.pt").is_file()
    method = config["models"][model]["method"]
    rows = read_metrics(tmp_path)
    assert list(rows[0]) == ["epoch", "loss", *TERMS[method], "seconds"] and len(rows) == 1
    assert all(float(v) == float(v) for v in rows[0].values())  # finite numbers, no blanks
    loaded = load_model(path)
    assert not loaded.training and loaded.spec == model_spec(config, dataset, model)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert_identical(state(loaded), checkpoint["model"])
    assert (loaded.adversary is not None) == (method == "wae_gan")
    metadata = load_model_payload(path)["metadata"]
    assert (metadata["dataset"], metadata["model"], metadata["seed"], metadata["epochs"]) == (dataset, model, 1, 1)
    x = torch.rand(2, *((1, 28, 28) if dataset == "mnist" else (3, 64, 64)))
    assert loaded.reconstruct(x).shape == x.shape


@pytest.mark.parametrize("model", ["fisher_ae_poly", "vae", "wae_gan"])
def test_the_train_loop_syncs_with_the_device_only_at_its_checks(tmp_path, model, host_syncs_counted):
    """Per batch, the loop runs the step (no sync: tests/test_capture.py), gathers the next batch
    and records the step's row on the device: an epoch of 12 batches (below CHECK_EVERY, so one
    check at its end) makes exactly the host syncs of an epoch of 2, the same ones in the same order
    (after a first run has filled the process's caches)."""
    assert 12 < training.CHECK_EVERY
    syncs = {}
    for batches in (1, 2, 12):
        with host_syncs_counted() as syncs[batches]:
            train(make_config(n_train=32 * batches), "mnist", model, seed=0, outdir=tmp_path / str(batches),
                  device="cpu", progress=False)
    assert syncs[12] == syncs[2], syncs
    assert syncs[2].count("ran aten.nonzero.default") == 1  # the ledger's check, at the epoch's end


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    config = make_config(n_train=64)
    runs = [state(load_model(train(config, "mnist", "vae", seed, tmp_path / f"{i}", "cpu", progress=False)))
            for i, seed in enumerate((5, 5, 6))]
    assert_identical(runs[0], runs[1])
    assert not torch.equal(runs[0]["encoder.head.weight"], runs[2]["encoder.head.weight"])


class Killed(Exception):
    """Stands in for SIGKILL / a pre-empted job."""


def without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.mark.parametrize("stop", [Killed, KeyboardInterrupt])
@pytest.mark.parametrize("model", ["fisher_ae_poly", "wae_gan"])
def test_killed_run_resumes_to_identical_weights(tmp_path, monkeypatch, capsys, model, stop):
    """Killed (SIGKILL, pre-emption) or stopped by Ctrl-C in epoch 2, a run resumes from the
    checkpoint of epoch 1; stopped again by Ctrl-C before it saves an epoch of its own, the resumed
    run names the epoch its checkpoint holds (the one it resumed from); resumed once more, it ends at
    the weights and metrics of an uninterrupted run, bit for bit."""
    config = make_config(epochs=3, validation_size=16)
    method = config["models"][model]["method"]
    reference = state(load_model(train(config, "mnist", model, 0, tmp_path / "whole", "cpu", progress=False)))
    reference_losses = [row["loss"] for row in read_metrics(tmp_path / "whole")]
    reference_rows = without_seconds(read_metrics(tmp_path / "whole"))

    real_step, seen = training._OBJECTIVES[method], []

    def step(run, x, *noise):
        if isinstance(run, training.TrainingStep):  # not the held-out loss
            epoch, batch = run.position
            seen.append(epoch)
            if (epoch, batch) == stop_at[0]:
                raise stop_at[1]
        return real_step(run, x, *noise)

    monkeypatch.setitem(training._OBJECTIVES, method, step)
    stop_at, outdir = ((2, 2), stop), tmp_path / "killed"
    with pytest.raises(Killed if stop is Killed else Interrupted) as stopped:
        train(config, "mnist", model, 0, outdir, "cpu", progress=False)
    if stop is KeyboardInterrupt:
        assert stopped.value.signum == signal.SIGINT and str(stopped.value) == (
            f"mnist/{model} seed 0: {outdir / 'checkpoint.pt'} holds epoch 1 of 3; rerun the same command to "
            "resume from epoch 2")
    assert not (outdir / "model.pt").exists()
    assert torch.load(outdir / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert [row["epoch"] for row in read_metrics(outdir)] == ["1"]
    with open(outdir / "metrics.csv", "a") as f:  # a row written after the checkpoint, then the kill
        f.write("2,999,1,1,1,0.1\n")

    stop_at, seen[:] = ((2, 1), KeyboardInterrupt), []
    capsys.readouterr()
    with pytest.raises(Interrupted) as stopped:
        train(config, "mnist", model, 0, outdir, "cpu", progress=False)
    assert capsys.readouterr().err.splitlines()[0] == (
        f"mnist/{model} seed 0: resuming from epoch 2 of 3 ({outdir / 'checkpoint.pt'} holds epoch 1); "
        "80 training images, 16 held out for the validation loss")
    assert seen == [2], "the resumed run must start at epoch 2, not retrain epoch 1"
    assert str(stopped.value) == (f"mnist/{model} seed 0: {outdir / 'checkpoint.pt'} holds epoch 1 of 3; rerun "
                                  "the same command to resume from epoch 2")

    stop_at, seen[:] = (None, None), []
    resumed = state(load_model(train(config, "mnist", model, 0, outdir, "cpu", progress=False)))
    assert set(seen) == {2, 3}
    assert_identical(resumed, reference)
    assert [row["loss"] for row in read_metrics(outdir)] == reference_losses
    assert [row["epoch"] for row in read_metrics(outdir)] == ["1", "2", "3"]
    assert without_seconds(read_metrics(outdir)) == reference_rows  # the held-out losses too, bit for bit


def test_adam_runs_fused_on_the_cpu_and_capturable_on_a_gpu_whichever_wrote_the_checkpoint():
    """On the CPU Adam is its fused kernel; a state written there loads on a GPU as capturable and
    not fused, and one written on a GPU loads on the CPU as fused (no GPU needed: settings only)."""
    model = AutoEncoder(ModelSpec("wae_gan", "mnist", "gaussian", width=2))
    settings = make_config()["training"]
    cpu = training._optimisers(model, settings, capturable=False)
    gpu = training._optimisers(model, settings, capturable=True)
    assert set(cpu) == {"autoencoder", "adversary"}
    for name in cpu:
        groups = cpu[name].param_groups
        assert all(g["fused"] and not g["capturable"] for g in groups)
        assert all(not g["fused"] and g["capturable"] for g in gpu[name].param_groups)
        written_on_cpu, written_on_gpu = cpu[name].state_dict(), gpu[name].state_dict()
        training._load_optimiser(gpu[name], written_on_cpu, capturable=True)
        training._load_optimiser(cpu[name], written_on_gpu, capturable=False)
        assert all(not g["fused"] and g["capturable"] for g in gpu[name].param_groups)
        assert all(g["fused"] and not g["capturable"] for g in cpu[name].param_groups)


def test_a_signal_while_an_epoch_is_saved_waits_until_its_files_are_written(tmp_path, monkeypatch):
    real_save = training.atomic_torch_save

    def save_then_ctrl_c(obj, path):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C as the checkpoint is being written
        return real_save(obj, path)

    monkeypatch.setattr(training, "atomic_torch_save", save_then_ctrl_c)
    with pytest.raises(Interrupted, match="holds epoch 1 of 2; rerun the same command to resume from epoch 2"):
        train(make_config(epochs=2, validation_size=16), "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert [row["epoch"] for row in read_metrics(tmp_path)] == ["1"]
    assert len((tmp_path / "train.log").read_text().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.csv", "train.log"]


def test_the_validation_subset_is_held_out_of_training_and_the_same_for_every_seed(tmp_path, monkeypatch):
    """Every epoch and every seed evaluates the same held-out images with the same noise, and
    training never sees them: the training batches and the held-out batches partition n_train."""
    real_step, batches = training._OBJECTIVES["fisher_ae"], {}

    def step(run, x, *noise):
        batches.setdefault((seed, type(run).__name__), []).append((x.clone(), [n.clone() for n in noise]))
        return real_step(run, x, *noise)

    monkeypatch.setitem(training._OBJECTIVES, "fisher_ae", step)
    config = make_config(epochs=2, validation_size=16, batch_size=8)
    for seed in (0, 1):
        train(config, "mnist", "fisher_ae_gauss", seed, tmp_path / f"{seed}", "cpu", progress=False)
    held = batches[0, "_HeldOut"] + batches[1, "_HeldOut"]
    assert len(held) == 2 * 2 * 2, "per seed and epoch, one pass over the 16 held-out images in 2 batches"
    for k, (x, noise) in enumerate(held):  # every pass: the first pass's images and draws
        assert torch.equal(x, held[k % 2][0]) and all(map(torch.equal, noise, held[k % 2][1]))

    def rows(x: torch.Tensor) -> list[tuple]:
        return [tuple(row.flatten().tolist()) for row in x]

    split = split_tensors(training.load_split("mnist", config["datasets"]["mnist"], "train"))[0]
    held_rows = set(rows(torch.cat([x for x, _ in held[:2]])))
    for seed in (0, 1):
        trained = rows(torch.cat([x for x, _ in batches[seed, "TrainingStep"]]))
        assert len(trained) == 2 * 80 and len(held_rows) == 16 and not held_rows & set(trained)
        assert set(trained) | held_rows == set(rows(to_float(split)))
    with pytest.raises(DataError, match=r"datasets\.mnist\.validation_size = 96, but the training split has only 96"):
        train(make_config(validation_size=96), "mnist", "vae", 0, tmp_path / "all", "cpu", progress=False)


def test_the_held_out_loss_is_a_finite_column_that_leaves_training_alone(tmp_path, monkeypatch):
    config = make_config(epochs=2, validation_size=16)
    path = train(config, "mnist", "wae_gan", 0, tmp_path / "a", "cpu", progress=False)
    rows = read_metrics(tmp_path / "a")
    terms = ["loss", *TERMS["wae_gan"]]
    assert list(rows[0]) == ["epoch", *terms, *(f"heldout_{t}" for t in terms), "seconds"]
    assert all(math.isfinite(float(row[f"heldout_{t}"])) for row in rows for t in terms)
    assert rows[0]["heldout_loss"] != rows[1]["heldout_loss"]
    # Recomputed from the saved weights with fresh noise from VALIDATION_SEED: the same numbers.
    step = training.TrainingStep(model_spec(config, "mnist", "wae_gan"), config["training"], torch.device("cpu"))
    step.model.load_state_dict(load_model(path).state_dict())
    again = training._HeldOut(step, training.training_batches(config, "mnist", "cpu")[1])()
    assert {k: float(v) for k, v in rows[-1].items() if k.startswith("heldout_")} == again
    # Evaluating it moves no weight, optimiser state or training draw: skipping it trains the same.
    monkeypatch.setattr(training._HeldOut, "__call__", lambda self: {})
    skipped = load_model(train(config, "mnist", "wae_gan", 0, tmp_path / "b", "cpu", progress=False))
    assert_identical(state(skipped), state(load_model(path)))


def test_files_written_before_validation_size_existed_count_as_the_whole_split(tmp_path):
    config = make_config(epochs=1)
    path = train(config, "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    for name in ("model.pt", "checkpoint.pt"):  # as written before datasets.*.validation_size existed
        saved = torch.load(tmp_path / name, weights_only=True)
        stored = saved["metadata"]["training_config"] if name == "model.pt" else saved["training_config"]
        del stored["data"]["validation_size"]
        torch.save(saved, tmp_path / name)
    metadata = load_model_payload(path)["metadata"]
    assert training.trained_differences(config, metadata, "mnist", "vae") == []
    assert training.trained_differences(make_config(validation_size=16), metadata, "mnist", "vae") == [
        "data.validation_size (0 -> 16)"]
    train(make_config(epochs=2), "mnist", "vae", 0, tmp_path, "cpu", progress=False)  # resumes the old checkpoint
    assert [row["epoch"] for row in read_metrics(tmp_path)] == ["1", "2"]
    with pytest.raises(ConfigError, match=r"changed: data\.validation_size \(0 -> 16\)"):
        train(make_config(epochs=3, validation_size=16), "mnist", "vae", 0, tmp_path, "cpu", progress=False)


def test_raising_epochs_continues_a_finished_run_identically(tmp_path):
    whole = state(load_model(train(make_config(epochs=2), "mnist", "vae", 0, tmp_path / "a", "cpu", progress=False)))
    train(make_config(epochs=1), "mnist", "vae", 0, tmp_path / "b", "cpu", progress=False)
    continued = state(load_model(train(make_config(epochs=2), "mnist", "vae", 0, tmp_path / "b", "cpu",
                                       progress=False)))
    assert_identical(continued, whole)
    with pytest.raises(ConfigError, match="already at epoch 2, beyond training.epochs = 1"):
        train(make_config(epochs=1), "mnist", "vae", 0, tmp_path / "b", "cpu", progress=False)


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    train(make_config(), "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"different configuration \(changed: training\.lr \(0\.001 -> 0\.01\)\)"):
        train(make_config(epochs=2, lr=1e-2), "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    with pytest.raises(ConfigError, match=r"changed: seed \(0 -> 1\)"):
        train(make_config(epochs=2), "mnist", "vae", 1, tmp_path, "cpu", progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other format", "keys missing"])
def test_corrupt_training_checkpoint_is_a_clear_error(tmp_path, damage):
    train(make_config(), "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    path = tmp_path / "checkpoint.pt"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint" * 10)
    elif damage == "other format":
        torch.save({"format": "something-else"}, path)
    else:  # edited by hand
        torch.save({k: v for k, v in torch.load(path, weights_only=True).items() if k != "training_config"}, path)
    pattern = f"training checkpoint {re.escape(str(path))}.*delete it and train from scratch"
    with pytest.raises(UserError, match=pattern):
        train(make_config(epochs=2), "mnist", "vae", 0, tmp_path, "cpu", progress=False)


def test_non_finite_loss_term_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = make_config(epochs=3)
    train(make_config(epochs=1), "mnist", "fisher_ae_gauss", 0, tmp_path, "cpu", progress=False)
    checkpoint, metrics = (tmp_path / "checkpoint.pt").read_bytes(), (tmp_path / "metrics.csv").read_bytes()
    (tmp_path / "model.pt").unlink()
    real_loss, calls = training.fisher_ae_loss, []

    def poisoned(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # epoch 2 (resumed), batch 2
            stability = terms.stability * float("nan")
            return FisherAETerms(terms.posterior, terms.reconstruction, stability,
                                 (terms.posterior + terms.reconstruction + stability).mean())
        return terms

    monkeypatch.setattr(training, "fisher_ae_loss", poisoned)
    with pytest.raises(TrainingDiverged) as err:
        train(config, "mnist", "fisher_ae_gauss", 0, tmp_path, "cpu", progress=False)
    message = str(err.value)
    assert "epoch 2, batch 2" in message and "the stability term is nan" in message and "training.lr" in message
    assert not (tmp_path / "model.pt").exists()
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint
    assert (tmp_path / "metrics.csv").read_bytes() == metrics


def test_non_finite_gradient_stops_with_a_clear_error(tmp_path, monkeypatch):
    real_loss = training.vae_loss

    def finite_value_nan_gradient(encoder, decoder, prior, x, **kwargs):
        terms = real_loss(encoder, decoder, prior, x, **kwargs)
        s = encoder.head.bias.sum()
        terms.loss = terms.loss + torch.sqrt(s - s)  # value 0, gradient inf - inf = nan
        return terms

    monkeypatch.setattr(training, "vae_loss", finite_value_nan_gradient)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 1: the gradient of encoder\.head\.bias is non-finite"):
        train(make_config(), "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "checkpoint.pt").exists()


def test_a_non_finite_term_between_checks_is_named_by_its_batch(tmp_path, monkeypatch):
    """The ledger is read every CHECK_EVERY batches: a NaN at batch 5 found at the check after
    batch 6 (or at the epoch's end) still names batch 5, and nothing is saved."""
    monkeypatch.setattr(training, "CHECK_EVERY", 3)
    real_loss, calls = training.vae_loss, []

    def poisoned(*args, **kwargs):
        terms = real_loss(*args, **kwargs)
        calls.append(1)
        if len(calls) == 5:
            terms.kl = terms.kl * float("nan")
            terms.loss = (terms.reconstruction + terms.kl).mean()
        return terms

    monkeypatch.setattr(training, "vae_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 5: the kl term is nan"):
        train(make_config(n_train=8 * 32), "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    assert len(calls) == 6, "training should stop at the first check after the bad batch"
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "model.pt").exists()


def test_config_errors_name_the_key():
    config = make_config()
    with pytest.raises(ConfigError, match=r"models: no entry 'fisher' .*fisher_ae_gauss, fisher_ae_poly, vae, wae_gan"):
        model_spec(config, "mnist", "fisher")
    with pytest.raises(ConfigError, match=r"datasets: no entry 'cifar' .*celeba, mnist"):
        model_spec(config, "cifar", "vae")
    bad = copy.deepcopy(config)
    bad["models"]["vae"]["prior"] = "polynomial"
    with pytest.raises(ConfigError, match=r"models\.vae on datasets\.mnist: vae uses the Gaussian prior"):
        model_spec(bad, "mnist", "vae")
    odd = make_config(poly_order=5, poly_normalisable=True)
    with pytest.raises(ConfigError, match="normalisable=True needs an even order"):
        model_spec(odd, "mnist", "fisher_ae_poly")
    with pytest.raises(ConfigError, match="training: unknown key.*'learning_rate'"):
        make_config(learning_rate=0.1)


# --- model files and atomic writes ------------------------------------------------------------

def test_save_and_load_model_round_trip(tmp_path):
    model = AutoEncoder(ModelSpec("fisher_ae", "mnist", "polynomial", latent_dim=3, width=8, extra={"a": 1}))
    save_model(tmp_path / "m.pt", model, {"seed": 4})
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.spec == model.spec and not loaded.training
    assert_identical(state(loaded), state(model))
    assert load_model_payload(tmp_path / "m.pt")["metadata"] == {"seed": 4}


def test_bad_model_files_are_clear_errors(tmp_path):
    model = AutoEncoder(ModelSpec("vae", "mnist", width=8))
    good = save_model(tmp_path / "good.pt", model, {})
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:2000])
    (tmp_path / "junk.pt").write_bytes(b"junk")  # not even a zip: torch.load raises struct.error
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    payload = torch.load(good, weights_only=True)
    torch.save({**payload, "metadata": ["mnist"]}, tmp_path / "list.pt")  # edited by hand
    cases = {"missing.pt": "does not exist", "cut.pt": "is truncated or corrupt",
             "junk.pt": "is truncated or corrupt", "foreign.pt": "is not a fisherae model",
             "list.pt": r"is not a fisherae model \(its spec, state_dict and metadata must be dicts\)"}
    for name, problem in cases.items():
        pattern = f"model file {re.escape(str(tmp_path / name))} {problem}.*python -m fisherae train"
        with pytest.raises(CheckpointError, match=pattern):
            load_model(tmp_path / name)


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "out.csv"
    atomic_write(path, lambda tmp: tmp.write_text("old"))

    def half_write(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_write)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    atomic_torch_save({"x": 1}, tmp_path / "sub" / "o.pt")
    assert torch.load(tmp_path / "sub" / "o.pt", weights_only=True) == {"x": 1}


def test_a_text_output_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """atomic_write_text (metrics.csv, train.log, CSV and Markdown outputs): a write that fails
    half-way leaves the previous file as it was, and no temporary file."""
    path = tmp_path / "metrics.csv"
    atomic_write_text(path, "epoch,loss\n1,0.5\n")
    write_text = Path.write_text

    def half_written(self, text, *args, **kwargs):
        write_text(self, text[:7])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", half_written)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "epoch,loss\n1,0.5\n2,0.4\n")
    assert path.read_text() == "epoch,loss\n1,0.5\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


# --- the command line ---------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fisherae", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)


def _write_config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


TINY = {"seeds": [0], "device": "cpu", "datasets": {"celeba": {"source": "embedded", "n_train": 8, "width": 8}},
        "models": {"fisher": {"method": "fisher_ae", "prior": "polynomial"}},
        "training": {"epochs": 1, "batch_size": 8, "threads": 1}}


NUMBER = r"-?[0-9.e+-]+"


def epoch_line(epoch: int, epochs: int, terms: list[str]) -> str:
    """The pattern of the line training writes for ``epoch``: loss terms, held-out ones, speed, the
    step's mode and (a Fisher AE on the CPU) how group norm's second derivative ran (these maps are too
    small for the compiled form)."""
    values = ", ".join(f"{term} {NUMBER}" for term in ["loss", *terms])
    return (f"celeba/fisher seed 0 epoch {epoch}/{epochs}: {values}; held-out {values}; "
            f"{NUMBER} s, [0-9]+ images/s, step: eager, group norm double backward: "
            + re.escape(f"PyTorch's composite (no map of {MIN_ELEMENTS} values or more)"))


def test_cli_train_writes_the_run(tmp_path):
    """Under Snakemake (--no-progress, stderr to the job's log): a line saying what the run
    does, then one line per epoch, as in train.log."""
    raw = copy.deepcopy(TINY)
    raw["training"]["epochs"], raw["datasets"]["celeba"]["validation_size"] = 2, 2
    config = _write_config(tmp_path, raw)
    out = tmp_path / "runs" / "celeba" / "fisher" / "seed0"
    result = _cli("train", "--config", str(config), "--dataset", "celeba", "--model", "fisher", "--seed", "0",
                  "--outdir", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "model.pt")
    lines = result.stderr.splitlines()
    assert lines[0] == f"fisherae train: config {config}"  # the line that names the settings
    assert lines[1] == "celeba/fisher seed 0: training epochs 1-2 from scratch; 6 training images, 2 held out for " \
                       "the validation loss"
    assert len(lines) == 4 and all(re.fullmatch(epoch_line(e, 2, TERMS["fisher_ae"]), lines[e + 1]) for e in (1, 2)), lines
    assert (out / "train.log").read_text().splitlines() == lines[2:]
    assert load_model(out / "model.pt").spec.prior == "polynomial"
    assert [row["epoch"] for row in read_metrics(out)] == ["1", "2"] and (out / "checkpoint.pt").is_file()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=lambda stop: stop.name)
def test_cli_train_stopped_by_a_signal_says_so_in_one_line_and_resumes(tmp_path, stop):
    """Ctrl-C (SIGINT) or SIGTERM (SLURM, Snakemake): exit 128 + signal, one line naming the epoch
    the intact checkpoint holds, no traceback; the same command then resumes from it."""
    raw = copy.deepcopy(TINY)
    raw["training"]["epochs"] = 500
    config, out = _write_config(tmp_path, raw), tmp_path / "run"
    command = [sys.executable, "-m", "fisherae", "train", "--config", str(config), "--dataset", "celeba", "--model",
               "fisher", "--seed", "0", "--outdir", str(out), "--no-progress"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "train.log").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=60)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]
    assert process.returncode == 128 + stop and "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        f"fisherae train: interrupted by {stop.name}: celeba/fisher seed 0: {out / 'checkpoint.pt'} holds epoch "
        f"{saved} of 500; rerun the same command to resume from epoch {saved + 1}")
    assert 1 <= saved < 500 and len(stderr.splitlines()) == 2 + saved + 1 and not (out / "model.pt").exists()
    assert [row["epoch"] for row in read_metrics(out)] == [str(e) for e in range(1, saved + 1)]
    raw["training"]["epochs"] = saved + 1  # the same command, one epoch to go (epochs do not change the run)
    result = _cli(*command[3:5], str(_write_config(tmp_path, raw)), *command[6:])
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[1] == (f"celeba/fisher seed 0: resuming from epoch {saved + 1} of {saved + 1} "
                                             f"({out / 'checkpoint.pt'} holds epoch {saved}); 8 training images")


@pytest.mark.parametrize("problem, expected", [
    ("bad key", "training: unknown key(s) 'epoch'"),
    ("bad model", "models: no entry 'nope' in the configuration; choose one of fisher"),
    ("corrupt checkpoint", "is truncated or corrupt"),
])
def test_cli_train_input_errors_exit_2_without_traceback(tmp_path, problem, expected):
    raw = copy.deepcopy(TINY)
    if problem == "bad key":
        raw["training"]["epoch"] = 3
    if problem == "corrupt checkpoint":
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "checkpoint.pt").write_bytes(b"\x00" * 64)
    config = _write_config(tmp_path, raw)
    result = _cli("train", "--config", str(config), "--dataset", "celeba", "--seed", "0", "--outdir",
                  str(tmp_path / "run"), "--model", "nope" if problem == "bad model" else "fisher", "--no-progress")
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "model.pt").exists()


# --------------------------------------------------------------------------- snapshots and per-model settings

def test_snapshots_are_the_models_of_their_epochs_and_survive_a_resume(tmp_path):
    """snapshots/epoch<E>.pt holds the weights after epoch E (those of a run stopped there), its
    metadata says so, and commands read it like model.pt."""
    config = make_config(epochs=3, snapshot_epochs=[1, 2])
    whole = train(config, "mnist", "fisher_ae_poly", 0, tmp_path / "whole", "cpu", progress=False)
    short = train(make_config(epochs=2), "mnist", "fisher_ae_poly", 0, tmp_path / "short", "cpu", progress=False)
    snapshot = tmp_path / "whole/snapshots/epoch2.pt"
    assert_identical(state(load_model(snapshot)), state(load_model(short)))
    meta = load_model_payload(snapshot)["metadata"]
    assert (meta["epoch"], meta["epochs"]) == (2, 3) and load_model_payload(whole)["metadata"]["epoch"] == 3
    assert training.trained_differences(config, meta, "mnist", "fisher_ae_poly") == []
    assert sorted(p.name for p in (tmp_path / "whole/snapshots").iterdir()) == ["epoch1.pt", "epoch2.pt"]


def test_a_snapshot_that_cannot_be_made_is_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match="snapshot_epochs: 2 is not below training.epochs = 2"):
        train(make_config(epochs=2, snapshot_epochs=[2]), "mnist", "vae", 0, tmp_path / "a", "cpu", progress=False)
    train(make_config(epochs=2), "mnist", "vae", 0, tmp_path / "b", "cpu", progress=False)
    with pytest.raises(ConfigError, match=r"epoch1.pt is missing but .*checkpoint.pt is already past epoch 1"):
        train(make_config(epochs=3, snapshot_epochs=[1]), "mnist", "vae", 0, tmp_path / "b", "cpu", progress=False)
    assert not (tmp_path / "b/snapshots").exists()


def test_a_finished_run_extended_keeps_its_last_model_as_a_snapshot(tmp_path):
    """Training a finished 2-epoch run on to 3 epochs with snapshot_epochs [2] writes epoch2.pt from
    the checkpoint: the 2-epoch model, as a 3-epoch run from scratch would have snapshotted it."""
    short = train(make_config(epochs=2), "mnist", "vae", 0, tmp_path / "run", "cpu", progress=False)
    two = state(load_model(short))
    extended = make_config(epochs=3, snapshot_epochs=[2])
    train(extended, "mnist", "vae", 0, tmp_path / "run", "cpu", progress=False)
    scratch = train(extended, "mnist", "vae", 0, tmp_path / "scratch", "cpu", progress=False)
    snapshot = tmp_path / "run/snapshots/epoch2.pt"
    assert_identical(state(load_model(snapshot)), two)
    assert_identical(state(load_model(snapshot)), state(load_model(tmp_path / "scratch/snapshots/epoch2.pt")))
    assert_identical(state(load_model(tmp_path / "run/model.pt")), state(load_model(scratch)))
    meta, fresh = (load_model_payload(path)["metadata"] for path in (snapshot, tmp_path / "scratch/snapshots/epoch2.pt"))
    assert (meta["epoch"], meta["epochs"]) == (2, 3)
    assert meta["metrics"].pop("seconds") > 0 and fresh["metrics"].pop("seconds") > 0 and meta == fresh


def test_a_model_entry_overrides_the_prior_order_and_form():
    config = make_config()
    config["models"]["fisher_ae_k4"] = {"method": "fisher_ae", "prior": "polynomial", "fisher_variant": "exact",
                                        "poly_order": 4, "poly_normalisable": True}
    spec, shared = model_spec(config, "mnist", "fisher_ae_k4"), model_spec(config, "mnist", "fisher_ae_poly")
    assert (spec.poly_order, spec.poly_normalisable) == (4, True) and (shared.poly_order, shared.poly_normalisable) == (5, False)
    assert training.relevant_config(config, "mnist", "fisher_ae_k4", 0)["model"] == {
        "method": "fisher_ae", "prior": "polynomial", "fisher_variant": "exact", "poly_order": 4, "poly_normalisable": True}
    config["models"]["fisher_ae_k4"].update(poly_order=5, poly_normalisable=True)
    with pytest.raises(ConfigError, match="models.fisher_ae_k4 on datasets.mnist"):
        model_spec(config, "mnist", "fisher_ae_k4")  # an odd order has no normalisable form


def test_the_wae_cost_scale_is_a_training_setting_that_older_files_lack(tmp_path):
    """Scaling the cost by c with lambda equals lambda / c unscaled up to the factor c; model files
    written before cost_scale existed count as c = 1."""
    from fisherae.losses import wae_autoencoder_loss
    from fisherae.models import LatentAdversary
    torch.manual_seed(0)
    decoder, adversary = torch.nn.Linear(3, 5), LatentAdversary(3, 8)
    x, z = torch.rand(4, 5), torch.randn(4, 3)
    scaled = wae_autoencoder_loss(decoder, adversary, x, z, lam=10.0, cost_scale=0.05).loss
    plain = wae_autoencoder_loss(decoder, adversary, x, z, lam=200.0).loss
    torch.testing.assert_close(scaled, 0.05 * plain)
    config = make_config()
    path = train(config, "mnist", "wae_gan", 0, tmp_path, "cpu", progress=False)
    meta = load_model_payload(path)["metadata"]
    assert meta["training_config"]["training"]["wae_gan"]["cost_scale"] == 1.0
    del meta["training_config"]["training"]["wae_gan"]["cost_scale"]
    assert training.trained_differences(config, meta, "mnist", "wae_gan") == []
    config["training"]["wae_gan"]["cost_scale"] = 0.05
    assert training.trained_differences(config, meta, "mnist", "wae_gan") == [
        "training.wae_gan.cost_scale (1.0 -> 0.05)"]


def test_tf32_is_a_training_setting_that_train_applies_and_older_files_lack(tmp_path):
    """``train`` sets a GPU's float32 products as training.tf32 says (its default: TF32); the
    setting is part of the model's training settings, and files written before it existed count
    as TF32 (PyTorch's default for convolutions then)."""
    from fisherae.devices import float32_products
    config = make_config()
    assert config["training"]["tf32"] is True
    path = train(make_config(tf32=False), "mnist", "vae", 0, tmp_path / "ieee", "cpu", progress=False)
    assert float32_products() == "IEEE float32"
    meta = load_model_payload(path)["metadata"]
    assert meta["training_config"]["training"]["tf32"] is False
    assert training.trained_differences(config, meta, "mnist", "vae") == ["training.tf32 (False -> True)"]
    with pytest.raises(ConfigError, match=r"changed: training\.tf32 \(False -> True\)"):
        train(make_config(epochs=2), "mnist", "vae", 0, tmp_path / "ieee", "cpu", progress=False)
    path = train(config, "mnist", "vae", 0, tmp_path / "tf32", "cpu", progress=False)
    assert float32_products() == "TF32"
    meta = load_model_payload(path)["metadata"]
    del meta["training_config"]["training"]["tf32"]
    assert training.trained_differences(config, meta, "mnist", "vae") == []
