"""Noise sweeps and qualitative grids (Figures 1, 2, 5, 6), and the evaluation commands end to end
on tiny checkpoints and the embedded data."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from fisherae.checkpoint import load_model, save_model
from fisherae.data import load_split, split_tensors, to_float
from fisherae.cli import main
from fisherae.config import load_config
from fisherae.evaluation import (SWEEP_COLUMNS, batch_noise, grid_sections, noise_sweep, normalise_by_clean,
                                 per_image_bce, per_image_mse, tile)
from fisherae.latent import NMI_COLUMNS
from fisherae.models import AutoEncoder, ModelSpec
from fisherae.plots import read_grid_png



class Identity(nn.Module):
    """Reconstructs its (noisy) input exactly: the sweep's error is then the noise itself."""

    def reconstruct(self, x):
        return x


def tiny_model(method="fisher_ae", prior="polynomial", dataset="mnist", seed=0) -> AutoEncoder:
    torch.manual_seed(seed)
    return AutoEncoder(ModelSpec(method, dataset, prior, latent_dim=4, width=4, poly_order=4,
                                 poly_normalisable=True)).eval()


def toy_mnist(n=10, seed=0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10)


def assert_real_image(path, min_size=(50, 50), max_size=(6000, 6000)):
    """A PNG that loads, has a plausible size and is not one flat colour."""
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert min_size[0] <= img.width <= max_size[0] and min_size[1] <= img.height <= max_size[1], img.size
        pixels = np.asarray(img.convert("RGB"), dtype=float)
    assert pixels.std() > 5, "image is (nearly) a single flat colour"


# --------------------------------------------------------------------------- scores

def test_per_image_scores_match_hand_computation():
    clean = torch.tensor([1.0, 0.0, 1.0, 0.5]).view(2, 1, 1, 2)
    recon = torch.tensor([0.5, 0.25, 0.9, 0.5]).view(2, 1, 1, 2)
    bce = per_image_bce(recon, clean)
    assert bce[0].item() == pytest.approx(-math.log(0.5) - math.log(0.75))
    assert bce[1].item() == pytest.approx(-math.log(0.9) - math.log(0.5))
    mse = per_image_mse(recon, clean)
    assert mse.tolist() == pytest.approx([0.25 + 0.0625, 0.01 + 0.0])


def test_sweep_scores_reconstruction_against_clean_data_unclipped():
    """With an identity 'model', per-image MSE against the clean image is sigma2 * sum(eps^2)
    over the batch's own noise draw: the noise is added unclipped and scored against clean x."""
    data = toy_mnist(10)
    table = noise_sweep(Identity(), data, [0.0, 0.3], batch_size=4, noise_seed=7, metrics=("mse",))
    assert list(table.columns) == SWEEP_COLUMNS[3:]
    assert table["n_images"].tolist() == [4, 4, 4, 4, 2, 2]
    for batch in range(3):
        n = [4, 4, 2][batch]
        eps = batch_noise((n, 1, 28, 28), 7, batch)
        row = table[(table["batch"] == batch) & (table["sigma2"] == 0.3)]
        assert row["value"].item() == pytest.approx(0.3 * eps.pow(2).flatten(1).sum(1).mean().item(), rel=1e-5)
        assert table[(table["batch"] == batch) & (table["sigma2"] == 0.0)]["value"].item() == 0.0


def test_sweep_bce_matches_manual_reconstruction():
    model, data = tiny_model(), toy_mnist(6)
    table = noise_sweep(model, data, [0.0], batch_size=6, noise_seed=0, metrics=("bce",))
    x = data.tensors[0]
    with torch.no_grad():
        r = model.decoder(model.encoder(x)[0])
    manual = -(x * r.log() + (1 - x) * (1 - r).log()).sum((1, 2, 3)).mean().item()
    assert table["value"].item() == pytest.approx(manual, rel=1e-5)


def test_sweep_is_reproducible_and_noise_seed_matters():
    model, data = tiny_model(), toy_mnist(12)
    run = lambda seed: noise_sweep(model, data, [0.0, 0.2, 1.0], batch_size=5, noise_seed=seed)  # noqa: E731
    first, again, other = run(3), run(3), run(4)
    pd.testing.assert_frame_equal(first, again)
    noisy = first["sigma2"] > 0
    assert np.array_equal(first.loc[~noisy, "value"], other.loc[~noisy, "value"])
    assert not np.allclose(first.loc[noisy, "value"], other.loc[noisy, "value"])


def test_same_noise_for_every_model():
    """The noise of batch b depends on (noise_seed, b) only, never on a model or global RNG state."""
    torch.manual_seed(0)
    a = batch_noise((3, 1, 28, 28), 11, 2)
    torch.manual_seed(99)
    assert torch.equal(a, batch_noise((3, 1, 28, 28), 11, 2))
    assert not torch.equal(a, batch_noise((3, 1, 28, 28), 11, 3))
    assert not torch.equal(a, batch_noise((3, 1, 28, 28), 12, 2))


def test_normalise_by_clean_divides_by_sigma2_zero_per_batch():
    table = pd.DataFrame({"dataset": "mnist", "model": "m", "seed": 0, "sigma2": [0.0, 0.5, 0.0, 0.5],
                          "batch": [0, 0, 1, 1], "n_images": 4, "metric": "bce", "value": [10.0, 15.0, 20.0, 50.0]})
    out = normalise_by_clean(table)
    assert out["value"].tolist() == [1.0, 1.5, 1.0, 2.5]
    with pytest.raises(ValueError, match="sigma2 = 0"):
        normalise_by_clean(table[table["sigma2"] > 0])


# --------------------------------------------------------------------------- grids

def test_grid_sections_and_tile_layout():
    model, data = tiny_model(), toy_mnist(3)
    z = torch.randn(7, 4)
    sections = grid_sections(model, data.tensors[0], z, noise_sigma2=0.2, noise_seed=0)
    assert [len(s.images) for s in sections] == [3, 3, 3, 3, 7]
    assert 0 <= sections[0].images.min() and sections[0].images.max() <= 1  # noisy inputs clipped for display
    assert torch.equal(sections[2].images, data.tensors[0])
    image, layout = tile(sections, n_cols=3, pad=2)
    assert image.dtype == np.uint8 and image.shape == (2 + 7 * 30, 2 + 3 * 30)  # 4 + ceil(7/3) rows
    assert [s["rows"] for s in layout] == [1, 1, 1, 1, 3]
    assert (layout[0]["top"], layout[0]["bottom"]) == (2, 30)
    assert (layout[-1]["top"], layout[-1]["bottom"]) == (4 * 30 + 2, 7 * 30)
    with pytest.raises(ValueError, match="latent samples"):
        grid_sections(model, data.tensors[0], torch.randn(5, 3), 0.2, 0)


# --------------------------------------------------------------------------- commands end to end

CONFIG = {
    "results": "unused", "seeds": [0], "device": "cpu",
    "datasets": {"mnist": {"source": "embedded", "n_test": 40, "latent_dim": 4, "width": 4},
                 "celeba": {"source": "embedded", "n_test": 6, "latent_dim": 4, "width": 4}},
    "models": {"fisher_ae_poly": {"method": "fisher_ae", "prior": "polynomial", "label": "Fisher AE (Exp. prior)"},
               "vae": {"method": "vae", "label": "VAE"}},
    "training": {"poly_order": 4, "poly_normalisable": True, "threads": 1},
    "evaluation": {"noise_sweep": {"sigma2": {"mnist": [0.0, 0.5], "celeba": [0.0, 2.0]}, "batch_size": 16},
                   "grids": {"n_images": 4, "n_samples": 8},
                   "latent": {"sigma2": [0.0, 1.0], "n_points": 40, "seeds": [0, 1], "n_clusters": 4}},
}
MODELS = {"fisher_ae_poly": ("fisher_ae", "polynomial"), "vae": ("vae", "gaussian")}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A config, tiny checkpoints of two models on both data sets, and latent samples NPZs."""
    root = tmp_path_factory.mktemp("evaluate")
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    for dataset in ("mnist", "celeba"):
        for i, (name, (method, prior)) in enumerate(MODELS.items()):
            model = tiny_model(method, prior, dataset, seed=i)
            save_model(root / dataset / name / "model.pt", model, {"dataset": dataset, "model": name, "seed": 0})
            z = np.random.default_rng(i).normal(size=(2, 10, 4)).astype(np.float32)
            np.savez(root / dataset / name / "samples.npz", z=z, method="exact", seconds=0.0)
    return root


def cli(root, *argv):
    return main([argv[0], "--config", str(root / "config.yaml"), *argv[1:]])


def test_noise_sweep_command(workspace):
    out = workspace / "sweeps" / "mnist.csv"
    assert cli(workspace, "noise-sweep", "--dataset", "mnist", "--checkpoint",
               str(workspace / "mnist/vae/model.pt"), "--model", "vae", "--seed", "0", "--out", str(out)) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == SWEEP_COLUMNS
    assert set(table["metric"]) == {"bce", "mse"} and set(table["sigma2"]) == {0.0, 0.5}
    assert table["batch"].nunique() == 3 and table.groupby("sigma2")["n_images"].sum().eq(2 * 40).all()
    assert (table["model"] == "vae").all() and np.isfinite(table["value"]).all()


def test_noise_sweep_refuses_mismatched_checkpoint(workspace, capsys):
    out = workspace / "sweeps" / "wrong.csv"
    code = cli(workspace, "noise-sweep", "--dataset", "mnist", "--checkpoint",
               str(workspace / "mnist/vae/model.pt"), "--model", "fisher_ae_poly", "--seed", "0", "--out", str(out))
    assert code == 2 and "method=vae" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("dataset,shape", [("mnist", (2 + 6 * 30, 2 + 4 * 30)), ("celeba", (2 + 6 * 66, 2 + 4 * 66))])
def test_grids_command(workspace, dataset, shape):
    out = workspace / "grids" / dataset / "vae.png"
    assert cli(workspace, "grids", "--dataset", dataset, "--checkpoint", str(workspace / dataset / "vae/model.pt"),
               "--samples", str(workspace / dataset / "vae/samples.npz"), "--model", "vae", "--out", str(out)) == 0
    image, meta = read_grid_png(out)
    assert image.shape[:2] == shape  # 4 image rows + ceil(8 samples / 4 columns) rows
    assert meta["model"] == "vae" and meta["sampler"] == "exact"
    assert meta["noise_sigma2"] == {"mnist": 0.2, "celeba": 2.0}[dataset]
    assert [s["rows"] for s in meta["layout"]] == [1, 1, 1, 1, 2]
    assert_real_image(out, min_size=(100, 100))
    # the clean reconstructions' squared error over the mean test image's (all n_test <= 500 images)
    test = split_tensors(load_split(dataset, load_config(workspace / "config.yaml")["datasets"][dataset], "test"))[0]
    clean = to_float(test).double()
    with torch.no_grad():
        recon = load_model(workspace / dataset / "vae/model.pt").reconstruct(clean[:4].float()).double()
    expected = (clean[:4] - recon).pow(2).sum() / (clean[:4] - clean.mean(0)).pow(2).sum()
    assert meta["clean_error_ratio"] == pytest.approx(float(expected), rel=1e-5)


def test_grids_command_reads_samples_like_fid(workspace, capsys):
    """``grids`` and ``fid`` share one reader of the samples file: the same checks, the same messages."""
    bad = workspace / "mnist" / "vae" / "samples_d3.npz"
    np.savez(bad, z=np.zeros((2, 10, 3), np.float32), method="exact")
    out = workspace / "grids" / "bad.png"
    assert cli(workspace, "grids", "--dataset", "mnist", "--checkpoint", str(workspace / "mnist/vae/model.pt"),
               "--samples", str(bad), "--model", "vae", "--out", str(out)) == 2
    assert f"samples file {bad}: z has shape (2, 10, 3), expected [n_draws, n_samples, 4]" in capsys.readouterr().err
    assert not out.exists()


def test_latent_command_and_figures(workspace):
    """latent for both models, then every figure from the command outputs."""
    for name in MODELS:
        ckpt = workspace / "mnist" / name / "model.pt"
        assert cli(workspace, "latent", "--dataset", "mnist", "--checkpoint", str(ckpt),
                   "--model", name, "--seed", "0", "--out-embedding", str(workspace / "latent" / f"{name}.npz"),
                   "--out-nmi", str(workspace / "latent" / f"{name}.csv")) == 0
    table = pd.read_csv(workspace / "latent" / "vae.csv")
    assert list(table.columns) == NMI_COLUMNS and len(table) == 2 * 2
    assert table["nmi"].between(0, 1).all()
    with np.load(workspace / "latent" / "vae.npz") as npz:
        assert npz["embeddings"].shape == (2, 2, 40, 2) and npz["labels"].shape == (40,)
        assert str(npz["model"]) == "vae" and int(npz["seed"]) == 0

    for dataset in ("mnist", "celeba"):
        for name in MODELS:
            ckpt, samples = workspace / dataset / name / "model.pt", workspace / dataset / name / "samples.npz"
            assert cli(workspace, "noise-sweep", "--dataset", dataset, "--checkpoint", str(ckpt), "--model", name,
                       "--seed", "0", "--out", str(workspace / "sweeps" / dataset / f"{name}.csv")) == 0
            assert cli(workspace, "grids", "--dataset", dataset, "--checkpoint", str(ckpt), "--samples", str(samples),
                       "--model", name, "--seed", "0", "--out", str(workspace / "grids" / dataset / f"{name}.png")) == 0
    inputs = {"figure1": sorted((workspace / "sweeps" / "mnist").glob("*.csv")),
              "figure2": sorted((workspace / "grids" / "mnist").glob("*.png")),
              "figure3": sorted((workspace / "latent").glob("*.csv")),
              "figure4": sorted((workspace / "latent").glob("*.npz")),
              "figure5": sorted((workspace / "sweeps" / "celeba").glob("*.csv")),
              "figure6": sorted((workspace / "grids" / "celeba").glob("*.png"))}
    for figure, paths in inputs.items():
        assert len(paths) == 2, figure
        out = workspace / "figures" / f"{figure}.png"
        assert cli(workspace, "figure", "--name", figure, "--inputs", *map(str, paths), "--out", str(out),
                   "--out-csv", str(out.with_suffix(".csv"))) == 0
        assert_real_image(out, min_size=(400, 300))
        data = pd.read_csv(out.with_suffix(".csv"))
        assert set(data["model"]) == set(MODELS), figure
        if figure in ("figure2", "figure6"):
            assert np.isfinite(data["clean_error_ratio"]).all() and (data["clean_error_ratio"] > 0).all()


def test_latent_on_all_test_points_without_embeddings(workspace, tmp_path):
    """--all-test-points embeds the whole test split whatever evaluation.latent.n_points says (here
    the same NMIs as n_points = the split's 40 images); without --out-embedding no NPZ is written."""
    ckpt = str(workspace / "mnist" / "vae" / "model.pt")
    fewer = copy.deepcopy(CONFIG)
    fewer["evaluation"]["latent"]["n_points"] = 20
    (tmp_path / "fewer.yaml").write_text(yaml.safe_dump(fewer))
    args = ["latent", "--dataset", "mnist", "--checkpoint", ckpt, "--model", "vae", "--seed", "0"]
    assert cli(workspace, *args, "--out-nmi", str(tmp_path / "forty.csv")) == 0
    assert main([*args, "--config", str(tmp_path / "fewer.yaml"), "--all-test-points",
                 "--out-nmi", str(tmp_path / "all.csv")]) == 0
    assert main([*args, "--config", str(tmp_path / "fewer.yaml"), "--out-nmi", str(tmp_path / "twenty.csv")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.csv", "fewer.yaml", "forty.csv", "twenty.csv"]
    forty, everything = pd.read_csv(tmp_path / "forty.csv"), pd.read_csv(tmp_path / "all.csv")
    pd.testing.assert_frame_equal(everything, forty)
    assert not np.allclose(pd.read_csv(tmp_path / "twenty.csv")["nmi"], forty["nmi"])


def test_training_checkpoint_passed_as_model_names_the_model_file(workspace, capsys):
    """--checkpoint .../checkpoint.pt (the state training resumes from) points at model.pt beside it."""
    checkpoint = workspace / "mnist" / "vae" / "checkpoint.pt"
    torch.save({"format": "fisherae-checkpoint-v1", "epoch": 3, "model": {}}, checkpoint)
    out = workspace / "sweeps" / "from_checkpoint.csv"
    code = cli(workspace, "noise-sweep", "--dataset", "mnist", "--checkpoint", str(checkpoint), "--model", "vae",
               "--seed", "0", "--out", str(out))
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "training checkpoint" in err and f"pass --checkpoint {workspace / 'mnist' / 'vae' / 'model.pt'}" in err
    assert "retrain" not in err


def test_training_checkpoint_without_model_says_to_finish_training(tmp_path):
    from fisherae.checkpoint import CheckpointError, load_model

    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    torch.save({"format": "fisherae-checkpoint-v1", "epoch": 2, "model": {}}, checkpoint)
    with pytest.raises(CheckpointError) as err:
        load_model(checkpoint)
    message = str(err.value)
    assert "after epoch 2" in message and str(tmp_path / "run" / "model.pt") in message
    assert "does not exist yet" in message and "rerunning" in message and f"--outdir {tmp_path / 'run'}" in message


def test_a_model_trained_under_other_settings_is_refused_naming_each(tmp_path, capsys):
    """A model trained by `train` records its settings; evaluating it under a config that would
    train it otherwise (here: another lr and epoch count) names each difference."""
    from fisherae.training import train

    config = copy.deepcopy(CONFIG)
    config["datasets"]["mnist"]["n_train"] = 32
    config["training"].update(epochs=1, batch_size=16, lr=1e-3)
    (tmp_path / "trained.yaml").write_text(yaml.safe_dump(config))
    model = train(load_config(tmp_path / "trained.yaml"), "mnist", "vae", 0, tmp_path / "run", "cpu", progress=False)
    other = copy.deepcopy(config)
    other["training"].update(epochs=2, lr=2e-3)
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    out = tmp_path / "sweep.csv"
    for name, expected in (("trained.yaml", 0), ("other.yaml", 2)):
        code = main(["noise-sweep", "--config", str(tmp_path / name), "--dataset", "mnist", "--checkpoint", str(model),
                     "--model", "vae", "--seed", "0", "--out", str(out)])
        assert code == expected
    err = capsys.readouterr().err
    assert "training.lr (0.001 -> 0.002)" in err and "training.epochs (1 -> 2)" in err and "other.yaml" in err
    code = main(["noise-sweep", "--config", str(tmp_path / "trained.yaml"), "--dataset", "mnist", "--checkpoint",
                 str(model), "--model", "vae", "--seed", "1", "--out", str(out)])
    assert code == 2 and "seed (0 -> 1)" in capsys.readouterr().err
