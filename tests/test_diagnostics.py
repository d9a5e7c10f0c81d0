"""Encoder collapse diagnostics: exact against a per-image float64 loop, the collapsed and the
informative extremes, and the `diagnose` command end to end on test_evaluation's tiny checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from fisherae.checkpoint import load_model, save_model
from fisherae.data import load_split
from fisherae.diagnostics import DIAGNOSE_COLUMNS, DIAGNOSTIC_FIELDS, encoder_diagnostics, non_finite_fields
from fisherae.models import ModelSpec
from test_evaluation import CONFIG, cli, tiny_model, workspace  # noqa: F401 (workspace is a fixture)

VAE = ModelSpec("vae", "mnist")


class Stub(nn.Module):
    """An auto-encoder made of two functions: the diagnostics use only its spec, encoder and decoder."""

    def __init__(self, encode, decode, spec=VAE):
        super().__init__()
        self.spec, self.encoder, self.decoder = spec, encode, decode


def random_split(n, n_classes, seed) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64), torch.arange(n) % n_classes)


def quadrant_split(n, seed) -> TensorDataset:
    """Class k (0-3) lights quadrant k of the image (+0.6) over uniform noise in [0.1, 0.3]."""
    g = torch.Generator().manual_seed(seed)
    quadrants = torch.zeros(4, 1, 28, 28)
    for k in range(4):
        row, col = divmod(k, 2)
        quadrants[k, :, 14 * row:14 * row + 14, 14 * col:14 * col + 14] = 0.6
    labels = torch.arange(n) % 4
    return TensorDataset(0.1 + 0.2 * torch.rand(n, 1, 28, 28, generator=g) + quadrants[labels], labels)


def quadrant_model(spec=VAE, logvar=-2.0) -> Stub:
    """mu(x) = the four quadrant means, sigma = exp(logvar / 2); f(z) paints each quadrant with its code."""
    return Stub(lambda x: (F.avg_pool2d(x, 14).flatten(1), torch.full((len(x), 4), logvar)),
                lambda z: F.interpolate(z.view(-1, 1, 2, 2), scale_factor=14, mode="nearest"), spec)


@pytest.fixture(scope="module")
def mnist():
    """The first 1000 train and 500 test images of the embedded MNIST (class-balanced)."""
    cfg = {"source": "embedded", "n_train": 1000, "n_test": 500}
    return load_split("mnist", cfg, "train"), load_split("mnist", cfg, "test")


# --------------------------------------------------------------------------- library

def sum_sq(a: torch.Tensor, b: torch.Tensor) -> float:
    """sum_p (a_p - b_p)^2 by a Python loop over pixels."""
    return sum((u - v) ** 2 for u, v in zip(a.flatten().tolist(), b.flatten().tolist()))


@torch.no_grad()
def brute_force(model, train, test, n_probe) -> dict:
    """The diagnostics by a loop over single images in float64, with numpy's two-pass sd."""
    train_x, train_y = zip(*(train[i] for i in range(n_probe)))
    mean_image = sum(train_x) / n_probe
    xs, labels = zip(*test)
    mus, logvars = zip(*((mu[0], logvar[0]) for mu, logvar in (model.encoder(x[None]) for x in xs)))
    recons = [model.decoder(mu[None])[0] for mu in mus]
    errors = [sum_sq(x, r) for x, r in zip(xs, recons)]
    baseline = [sum_sq(x, mean_image) for x in xs]
    mu_sd, sigma = np.std(np.stack(mus), axis=0).mean(), np.mean([torch.exp(lv / 2).numpy() for lv in logvars])
    train_mu = np.stack([model.encoder(x[None])[0][0] for x in train_x])
    scaler = StandardScaler().fit(train_mu)
    probe = LogisticRegression(max_iter=10_000, random_state=0).fit(scaler.transform(train_mu), np.array(train_y))
    return {"recon_sq_error": np.mean(errors), "mean_image_sq_error": np.mean(baseline),
            "error_ratio": np.mean(errors) / np.mean(baseline), "sigma_mean": sigma, "mu_sd": mu_sd,
            "mu_sd_over_sigma": mu_sd / sigma, "output_sd": np.std(np.stack(recons), axis=0).mean(),
            "data_sd": np.std(np.stack(xs), axis=0).mean(),
            "probe_accuracy": probe.score(scaler.transform(np.stack(mus)), np.array(labels)),
            "probe_n_train": n_probe, "n_test": len(test)}


@pytest.mark.parametrize("batch_size", [4, 64])
def test_matches_brute_force_in_float64(batch_size):
    model = tiny_model("vae", "gaussian").double()
    train, test = random_split(30, 3, seed=1), random_split(11, 3, seed=2)
    got = encoder_diagnostics(model, train, test, batch_size=batch_size, n_probe=20)
    assert list(got) == DIAGNOSTIC_FIELDS
    expected = brute_force(model, train, test, n_probe=20)
    for field in DIAGNOSTIC_FIELDS:
        assert got[field] == pytest.approx(expected[field], rel=1e-10, abs=1e-14), field
    assert got == encoder_diagnostics(model, train, test, batch_size=batch_size, n_probe=20)  # deterministic


def test_n_probe_beyond_the_train_split_takes_all_of_it():
    model, train, test = quadrant_model(), quadrant_split(40, seed=0), quadrant_split(8, seed=1)
    assert encoder_diagnostics(model, train, test, batch_size=16, n_probe=10_000)["probe_n_train"] == 40


def test_collapsed_model_equals_the_mean_image_and_probes_at_chance(mnist):
    """Codes ignore x and the decoder outputs the mean of the first n_probe training images."""
    train, test = mnist
    mean = torch.stack([train[i][0] for i in range(600)]).mean(0)
    model = Stub(lambda x: (torch.zeros(len(x), 8), torch.zeros(len(x), 8)),
                 lambda z: mean.expand(len(z), *mean.shape))
    got = encoder_diagnostics(model, train, test, batch_size=128, n_probe=600)
    assert got["error_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert got["mean_image_sq_error"] > 10
    assert got["output_sd"] == pytest.approx(0.0, abs=1e-7) and got["data_sd"] > 0.1
    assert (got["mu_sd"], got["sigma_mean"], got["mu_sd_over_sigma"]) == (0.0, 1.0, 0.0)
    assert got["probe_accuracy"] <= 0.15  # 10 balanced digits: chance is 0.1
    assert (got["probe_n_train"], got["n_test"]) == (600, 500)


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
def test_informative_encoder_probes_perfectly():
    got = encoder_diagnostics(quadrant_model(), quadrant_split(200, seed=0), quadrant_split(100, seed=1),
                              batch_size=32, n_probe=200)
    assert got["probe_accuracy"] == 1.0
    assert got["error_ratio"] < 0.1
    assert got["sigma_mean"] == pytest.approx(math.exp(-1.0))
    assert got["mu_sd_over_sigma"] == pytest.approx(got["mu_sd"] / math.exp(-1.0)) and got["mu_sd"] > 0.2
    assert got["output_sd"] > 0.8 * got["data_sd"]


@pytest.mark.parametrize("stochastic", [False, True])
def test_wae_gan_sigma_is_defined_only_for_a_stochastic_encoder(stochastic):
    model = quadrant_model(ModelSpec("wae_gan", "mnist", extra={"stochastic_encoder": stochastic}))
    got = encoder_diagnostics(model, quadrant_split(40, seed=0), quadrant_split(8, seed=1), batch_size=16, n_probe=40)
    assert math.isnan(got["sigma_mean"]) != stochastic and math.isnan(got["mu_sd_over_sigma"]) != stochastic
    assert non_finite_fields(got, model) == []
    broken = {**got, "mu_sd": math.inf, "probe_accuracy": math.nan}
    assert non_finite_fields(broken, model) == ["mu_sd", "probe_accuracy"]


def test_non_finite_codes_give_a_nan_probe_and_are_named():
    model = Stub(lambda x: (torch.full((len(x), 4), math.nan), torch.zeros(len(x), 4)),
                 lambda z: z.new_zeros(len(z), 1, 28, 28))
    got = encoder_diagnostics(model, quadrant_split(40, seed=0), quadrant_split(8, seed=1), batch_size=16, n_probe=40)
    assert non_finite_fields(got, model) == ["mu_sd", "mu_sd_over_sigma", "probe_accuracy"]


@pytest.mark.parametrize("train,test,message", [
    (quadrant_split(40, seed=0), quadrant_split(0, seed=1), "non-empty"),
    (TensorDataset(torch.rand(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)), quadrant_split(8, seed=1), "2 classes"),
])
def test_bad_splits_raise(train, test, message):
    with pytest.raises(ValueError, match=message):
        encoder_diagnostics(quadrant_model(), train, test, batch_size=4, n_probe=10)


# --------------------------------------------------------------------------- diagnose command

def diagnose(root, checkpoint, model, *extra, dataset="mnist"):
    return cli(root, "diagnose", "--dataset", dataset, "--checkpoint", str(checkpoint), "--model", model,
               "--seed", "0", *extra)


def test_diagnose_command_writes_the_library_row(workspace):  # noqa: F811 (the fixture imported above)
    out, checkpoint = workspace / "diagnostics" / "vae.csv", workspace / "mnist" / "vae" / "model.pt"
    assert diagnose(workspace, checkpoint, "vae", "--n-probe", "200", "--out", str(out)) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == DIAGNOSE_COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert row[["dataset", "model", "seed", "probe_n_train", "n_test"]].tolist() == ["mnist", "vae", 0, 200, 40]
    train, test = (load_split("mnist", CONFIG["datasets"]["mnist"], split) for split in ("train", "test"))
    expected = encoder_diagnostics(load_model(checkpoint), train, test, batch_size=16, n_probe=200)
    assert row[DIAGNOSTIC_FIELDS].tolist() == pytest.approx(list(expected.values()), rel=1e-12)


def _nan_checkpoint(path, part) -> str:
    """A tiny VAE whose encoder or decoder weights are all NaN."""
    model = tiny_model("vae", "gaussian")
    for p in getattr(model, part).parameters():
        p.data.fill_(math.nan)
    return str(save_model(path, model, {"dataset": "mnist", "model": "vae", "seed": 0}))


@pytest.mark.parametrize("case,message", [
    ("mismatched", "method=vae"), ("missing", "does not exist"), ("corrupt", "corrupt"),
    ("nan encoder", ("non-finite recon_sq_error, error_ratio, sigma_mean, mu_sd, mu_sd_over_sigma, output_sd, "
                     "probe_accuracy;")),
    ("nan decoder", "non-finite recon_sq_error, error_ratio, output_sd;"),
    ("celeba", "digit labels"), ("one class", "2 classes"),
])
def test_diagnose_refuses_bad_input(workspace, tmp_path, capsys, case, message):  # noqa: F811
    vae = str(workspace / "mnist" / "vae" / "model.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    checkpoint, model, dataset, extra = {
        "mismatched": (vae, "fisher_ae_poly", "mnist", []),
        "missing": (tmp_path / "none.pt", "vae", "mnist", []),
        "corrupt": (tmp_path / "corrupt.pt", "vae", "mnist", []),
        "nan encoder": (_nan_checkpoint(tmp_path / "enc.pt", "encoder"), "vae", "mnist", []),
        "nan decoder": (_nan_checkpoint(tmp_path / "dec.pt", "decoder"), "vae", "mnist", []),
        "celeba": (workspace / "celeba" / "vae" / "model.pt", "vae", "celeba", []),
        "one class": (vae, "vae", "mnist", ["--n-probe", "1"]),
    }[case]
    out = tmp_path / "out.csv"
    assert diagnose(workspace, checkpoint, model, *extra, "--out", str(out), dataset=dataset) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("option", ["--n-probe", "--batch-size"])
@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_diagnose_rejects_non_positive_sizes(workspace, tmp_path, capsys, option, value):  # noqa: F811
    with pytest.raises(SystemExit) as exit_info:
        diagnose(workspace, workspace / "mnist" / "vae" / "model.pt", "vae", option, value,
                 "--out", str(tmp_path / "out.csv"))
    assert exit_info.value.code == 2 and option in capsys.readouterr().err
