"""Training, checkpoints and the ``train`` command: every method trains and saves, a killed
run resumes to bit-identical weights, and bad input (config, checkpoint, NaN) fails clearly
without losing or half-writing anything."""

from __future__ import annotations

import copy
import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from fisherae import training
from fisherae.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    atomic_write,
    load_model,
    load_model_payload,
    save_model,
)
from fisherae.config import ConfigError, validate_config
from fisherae.errors import UserError
from fisherae.losses import FisherAETerms
from fisherae.models import AutoEncoder, ModelSpec
from fisherae.training import TrainingDiverged, model_spec, train

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TERMS = {"fisher_ae": ["posterior", "reconstruction", "stability"], "vae": ["reconstruction", "kl"],
         "wae_gan": ["reconstruction", "penalty", "adversary"]}


def make_config(epochs: int = 1, n_train: int = 96, **training_overrides) -> dict:
    """A tiny, validated configuration on the embedded data (narrow nets, one thread)."""
    raw = {
        "seeds": [0], "device": "cpu",
        "datasets": {"mnist": {"source": "embedded", "n_train": n_train, "width": 8, "latent_dim": 4},
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


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    config = make_config(n_train=64)
    runs = [state(load_model(train(config, "mnist", "vae", seed, tmp_path / f"{i}", "cpu", progress=False)))
            for i, seed in enumerate((5, 5, 6))]
    assert_identical(runs[0], runs[1])
    assert not torch.equal(runs[0]["encoder.head.weight"], runs[2]["encoder.head.weight"])


class Killed(Exception):
    """Stands in for SIGKILL / a pre-empted job."""


@pytest.mark.parametrize("model", ["fisher_ae_poly", "wae_gan"])
def test_killed_run_resumes_to_identical_weights(tmp_path, monkeypatch, model):
    config = make_config(epochs=3)
    method = config["models"][model]["method"]
    reference = state(load_model(train(config, "mnist", model, 0, tmp_path / "whole", "cpu", progress=False)))
    reference_losses = [row["loss"] for row in read_metrics(tmp_path / "whole")]

    real_step, seen = training._OBJECTIVES[method], []

    def step(run, x, *noise):
        epoch, batch = run.position
        seen.append(epoch)
        if kill and epoch == 2 and batch == 2:
            raise Killed
        return real_step(run, x, *noise)

    monkeypatch.setitem(training._OBJECTIVES, method, step)
    kill, outdir = True, tmp_path / "killed"
    with pytest.raises(Killed):
        train(config, "mnist", model, 0, outdir, "cpu", progress=False)
    assert not (outdir / "model.pt").exists()
    assert torch.load(outdir / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert [row["epoch"] for row in read_metrics(outdir)] == ["1"]
    with open(outdir / "metrics.csv", "a") as f:  # a row written after the checkpoint, then the kill
        f.write("2,999,1,1,1,0.1\n")

    kill, seen[:] = False, []
    resumed = state(load_model(train(config, "mnist", model, 0, outdir, "cpu", progress=False)))
    assert set(seen) == {2, 3}, "the resumed run must start at epoch 2, not retrain epoch 1"
    assert_identical(resumed, reference)
    assert [row["loss"] for row in read_metrics(outdir)] == reference_losses
    assert [row["epoch"] for row in read_metrics(outdir)] == ["1", "2", "3"]


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


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other format"])
def test_corrupt_training_checkpoint_is_a_clear_error(tmp_path, damage):
    train(make_config(), "mnist", "vae", 0, tmp_path, "cpu", progress=False)
    path = tmp_path / "checkpoint.pt"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint" * 10)
    else:
        torch.save({"format": "something-else"}, path)
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
    cases = {"missing.pt": "does not exist", "cut.pt": "is truncated or corrupt",
             "junk.pt": "is truncated or corrupt", "foreign.pt": "is not a fisherae model"}
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


def test_cli_train_writes_the_run(tmp_path):
    config = _write_config(tmp_path, TINY)
    out = tmp_path / "runs" / "celeba" / "fisher" / "seed0"
    result = _cli("train", "--config", str(config), "--dataset", "celeba", "--model", "fisher", "--seed", "0",
                  "--outdir", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "model.pt")
    assert result.stderr == f"fisherae train: config {config}\n"  # the one line that names the settings
    assert load_model(out / "model.pt").spec.prior == "polynomial"
    assert [row["epoch"] for row in read_metrics(out)] == ["1"] and (out / "checkpoint.pt").is_file()


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
