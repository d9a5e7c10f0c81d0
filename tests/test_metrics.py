"""Fréchet distance (FID), activation statistics, NMI, the FID feature extractors, and the
train-classifier / fid / table1 commands on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch
import yaml
from sklearn.metrics import normalized_mutual_info_score

from fisherae.checkpoint import CheckpointError, save_model
from fisherae.cli import main
from fisherae.classifier import DigitClassifier, load_classifier, save_classifier
from fisherae.fid import FID_COLUMNS
from fisherae.table1 import TABLE1_COLUMNS
from fisherae.metrics import (INCEPTION_FILENAME, ActivationStatistics, FeaturesUnavailable, frechet_distance,
                              inception_features, inception_model, nmi)
from fisherae.models import AutoEncoder, ModelSpec



def random_cov(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T, a


def scipy_fd(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# --------------------------------------------------------------------------- Fréchet distance

@pytest.mark.parametrize("d", [1, 5, 40])
def test_frechet_distance_matches_scipy_on_full_rank(d):
    rng = np.random.default_rng(d)
    (s1, _), (s2, _) = random_cov(rng, d), random_cov(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(scipy_fd(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)
    assert ours == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-10)  # symmetric


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")
def test_frechet_distance_exact_on_rank_deficient_covariances():
    """S1 = A A^T (rank 3), S2 = B B^T (rank 6) in d = 30: tr((S1 S2)^{1/2}) is the nuclear norm of
    A^T B, an exact reference; scipy's sqrtm of the singular product needs pytorch-fid's eps offset."""
    rng = np.random.default_rng(0)
    d = 30
    (s1, a), (s2, b) = random_cov(rng, d, rank=3), random_cov(rng, d, rank=6)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    exact = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.linalg.svd(a.T @ b, compute_uv=False).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(exact, rel=1e-9)
    from pytorch_fid.fid_score import calculate_frechet_distance
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-4)


@pytest.mark.parametrize("rank", [None, 4])
def test_frechet_distance_of_identical_statistics_is_zero(rank):
    rng = np.random.default_rng(1)
    s, _ = random_cov(rng, 50, rank=rank)
    s = s * 1e3
    mu = rng.normal(size=50)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8 * np.trace(s)


def test_frechet_distance_rejects_bad_input():
    rng = np.random.default_rng(2)
    s, _ = random_cov(rng, 3)
    mu = np.zeros(3)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, np.full((3, 3), np.nan), mu, s)
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance(mu, s + np.triu(np.ones((3, 3)), 1), mu, s)
    with pytest.raises(ValueError, match="positive semi-definite"):
        frechet_distance(mu, -s, mu, s)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(2), s, mu, s)


def test_activation_statistics_match_numpy_in_float64():
    """Float32 features with a large common offset: shifted float64 accumulation keeps them exact."""
    rng = np.random.default_rng(3)
    features = (1e4 + rng.normal(size=(1000, 6))).astype(np.float32)
    stats = ActivationStatistics(6)
    for batch in np.array_split(features, 7):
        stats.update(torch.from_numpy(batch))
    mean, cov = stats.mean_cov()
    ref = features.astype(np.float64)
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(ref, rowvar=False), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="NaN"):
        stats.update(np.full((2, 6), np.nan))


# --------------------------------------------------------------------------- NMI

@pytest.mark.parametrize("seed", range(3))
def test_nmi_matches_sklearn_arithmetic(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(10, size=500)
    noisy = np.where(rng.random(500) < 0.6, truth, rng.integers(7, size=500)) + 100  # other label names
    for pred in (noisy, rng.integers(4, size=500), truth[::-1]):
        assert nmi(truth, pred) == pytest.approx(normalized_mutual_info_score(truth, pred, average_method="arithmetic"),
                                                 abs=1e-12)


def test_nmi_edge_cases():
    assert nmi([0, 0, 1, 1], ["b", "b", "a", "a"]) == pytest.approx(1.0)
    assert nmi([3, 3, 3], [1, 1, 1]) == 1.0 == normalized_mutual_info_score([3, 3, 3], [1, 1, 1])
    assert nmi([0, 1, 0, 1], [0, 0, 0, 0]) == 0.0
    with pytest.raises(ValueError, match="length"):
        nmi([0, 1], [0])


# --------------------------------------------------------------------------- Inception features

@pytest.fixture(scope="module")
def fake_inception_weights(tmp_path_factory):
    """A randomly initialised state dict with the FID Inception's keys and shapes. pytorch-fid's
    FIDInception* blocks only override forward, so torchvision's InceptionV3 with 1008 classes and
    no aux head has exactly the parameters ``fid_inception_v3`` loads (strict)."""
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    path = tmp_path_factory.mktemp("inception") / INCEPTION_FILENAME
    torch.save(net.state_dict(), path)
    return path, net.state_dict()


def test_inception_local_weights_path_gives_pool3_features(fake_inception_weights):
    path, state = fake_inception_weights
    model = inception_model(path, download=False)
    loaded = model.blocks[0][0].conv.weight
    assert torch.equal(loaded, state["Conv2d_1a_3x3.conv.weight"])  # the file's weights, not a download
    assert torch.equal(model.blocks[3][2].branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    extract = inception_features(model)
    grey = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        feats = extract(grey)
        rgb = extract(grey.expand(-1, 3, -1, -1))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
    assert torch.allclose(feats, rgb)  # grey is repeated to 3 channels


def test_inception_weights_in_the_torch_hub_cache_are_used(fake_inception_weights, tmp_path, monkeypatch):
    path, _ = fake_inception_weights
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / INCEPTION_FILENAME).symlink_to(path)
    assert inception_model(None, download=False).blocks[0][0].conv.weight.shape == (32, 3, 3, 3)


def test_missing_inception_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    missing = tmp_path / "nowhere" / INCEPTION_FILENAME
    with pytest.raises(FeaturesUnavailable) as err:
        inception_model(missing)
    message = str(err.value)
    assert str(missing) in message and "evaluation.fid.inception_weights" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILENAME) in message
    assert "pt_inception-2015-12-05-6726825d.pth" in message and "download" in message.lower()
    with pytest.raises(FeaturesUnavailable, match="download is off"):
        inception_model(None, download=False)


def test_wrong_or_corrupt_inception_weights_are_named(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(FeaturesUnavailable, match="not a readable state dict"):
        inception_model(corrupt)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(FeaturesUnavailable, match="does not hold pytorch-fid's FID Inception weights"):
        inception_model(wrong)


# --------------------------------------------------------------------------- classifier

def test_classifier_features_and_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = DigitClassifier().eval()
    x = torch.rand(3, 1, 28, 28)
    assert net.features(x).shape == (3, 128) and net(x).shape == (3, 10)
    save_classifier(tmp_path / "c.pt", net, {"test_accuracy": 0.5})
    loaded, metrics = load_classifier(tmp_path / "c.pt")
    assert metrics["test_accuracy"] == 0.5 and torch.equal(loaded.features(x), net.features(x))
    (tmp_path / "bad.pt").write_bytes((tmp_path / "c.pt").read_bytes()[:300])  # truncated
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_classifier(tmp_path / "bad.pt")


# --------------------------------------------------------------------------- commands

def write_config(tmp_path, features="both", weights=None, dataset_cfg=None):
    config = {
        "results": str(tmp_path / "results"), "seeds": [0], "device": "cpu",
        "datasets": {"mnist": dataset_cfg or {"source": "embedded", "n_train": 200, "n_test": 60, "latent_dim": 3,
                                              "width": 4}},
        "models": {"fisher_ae_gauss": {"method": "fisher_ae", "prior": "gaussian",
                                       "label": "Fisher AE (Gaussian prior)"}},
        "training": {"threads": 1, "batch_size": 50},
        "evaluation": {"fid": {"n_samples": 40, "n_draws": 2, "features": features, "classifier_epochs": 1,
                               "batch_size": 25, "inception_weights": weights}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_classifier_fid_and_table1_commands(tmp_path, capsys):
    cfg = write_config(tmp_path, weights=str(tmp_path / "missing" / INCEPTION_FILENAME))
    assert main(["train-classifier", "--config", str(cfg), "--dataset", "mnist", "--out", str(tmp_path / "c.pt"),
                 "--out-metrics", str(tmp_path / "c.json")]) == 0
    metrics = json.loads((tmp_path / "c.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["n_train"] == 200 and metrics["n_test"] == 60
    assert load_classifier(tmp_path / "c.pt")[1]["test_accuracy"] == metrics["test_accuracy"]

    torch.manual_seed(0)
    model = AutoEncoder(ModelSpec("fisher_ae", "mnist", "gaussian", latent_dim=3, width=4))
    save_model(tmp_path / "model.pt", model, {"model": "fisher_ae_gauss", "seed": 0})
    z = np.random.default_rng(0).normal(size=(2, 40, 3)).astype(np.float32)
    np.savez(tmp_path / "samples.npz", z=z, method=np.array("exact"), seconds=np.array(0.1))
    fid_csv = tmp_path / "fid.csv"
    args = ["fid", "--config", str(cfg), "--dataset", "mnist", "--checkpoint", str(tmp_path / "model.pt"),
            "--samples", str(tmp_path / "samples.npz"), "--model", "fisher_ae_gauss", "--seed", "0",
            "--classifier", str(tmp_path / "c.pt"), "--out", str(fid_csv)]
    assert main(args) == 0
    assert "Inception weights for FID unavailable" in capsys.readouterr().err
    table = pd.read_csv(fid_csv, dtype={"draw": str})
    assert list(table.columns) == FID_COLUMNS
    ok = table[table.status == "ok"]
    assert list(ok.draw) == ["0", "1", "mean"] and set(ok.features) == {"mnist-classifier-penultimate"}
    assert (ok.fid > 0).all() and ok.fid.iloc[2] == pytest.approx(ok.fid.iloc[:2].mean())
    assert ok.fid_sd.iloc[2] == pytest.approx(ok.fid.iloc[:2].std(ddof=1))
    missing = table[table.status == "unavailable"]
    assert list(missing.features) == ["inception-pool3-2048"] and "inception_weights" in missing.reason.iloc[0]
    assert set(table.n_samples) == {40} and set(table.n_real) == {60} and set(table.sampler) == {"exact"}
    # --exact scores the exact draws stored beside SVGD ones: the same z gives the same FIDs
    np.savez(tmp_path / "svgd.npz", z=z[:, ::-1] * 3, method=np.array("svgd"), seconds=np.array(0.1), z_exact=z)
    exact_csv = tmp_path / "fid_exact.csv"
    assert main([*args[:args.index("--samples") + 1], str(tmp_path / "svgd.npz"),
                 *args[args.index("--samples") + 2:-1], str(exact_csv), "--exact"]) == 0
    exact = pd.read_csv(exact_csv, dtype={"draw": str})
    assert set(exact.sampler) == {"exact"} and np.allclose(exact[exact.status == "ok"].fid, ok.fid)

    out_csv, out_md = tmp_path / "t1.csv", tmp_path / "t1.md"
    assert main(["table1", "--config", str(cfg), "--inputs", str(fid_csv), "--out-csv", str(out_csv),
                 "--out-md", str(out_md)]) == 0
    t1 = pd.read_csv(out_csv)
    assert list(t1.columns) == TABLE1_COLUMNS
    ours = t1[t1.model == "fisher_ae_gauss"].set_index("features")
    assert ours.loc["mnist-classifier-penultimate", "fid_mean"] == pytest.approx(ok.fid.iloc[:2].mean())
    assert ours.loc["inception-pool3-2048", "status"] == "unavailable"
    assert (ours.comparable == "no").all() and "CelebA only" in ours.note.iloc[0]
    paper = t1[t1.status == "not run"].set_index("algorithm")
    assert paper.loc["Fisher AE (Exp. prior)", "paper_fid"] == 84.7 and paper.loc["WAE-GAN", "paper_sd"] == 1.0
    md = out_md.read_text()
    assert "84.7 ± 0.8" in md and "89.1 ± 0.9" in md and "mnist-classifier-penultimate" in md


def test_fid_command_errors_are_clear(tmp_path, capsys):
    cfg = write_config(tmp_path, features="classifier")
    model = AutoEncoder(ModelSpec("fisher_ae", "mnist", "gaussian", latent_dim=3, width=4))
    save_model(tmp_path / "model.pt", model, {})
    np.savez(tmp_path / "bad.npz", z=np.zeros((2, 5, 4), np.float32), method=np.array("exact"))
    base = ["fid", "--config", str(cfg), "--dataset", "mnist", "--checkpoint", str(tmp_path / "model.pt"),
            "--model", "fisher_ae_gauss", "--seed", "0", "--out", str(tmp_path / "f.csv")]
    assert main(base + ["--samples", str(tmp_path / "bad.npz")]) == 2
    assert "expected [n_draws, n_samples, 3]" in capsys.readouterr().err
    np.savez(tmp_path / "good.npz", z=np.zeros((1, 5, 3), np.float32), method=np.array("exact"))
    assert main(base + ["--samples", str(tmp_path / "good.npz")]) == 2  # classifier features, no --classifier
    assert "--classifier" in capsys.readouterr().err
    np.savez(tmp_path / "svgd.npz", z=np.zeros((1, 5, 3), np.float32), method=np.array("svgd"))
    assert main(base + ["--samples", str(tmp_path / "svgd.npz"), "--exact"]) == 2
    assert "holds svgd draws and no exact ones" in capsys.readouterr().err
    assert not (tmp_path / "f.csv").exists()


def _paper_celeba_config(**training):
    from fisherae.config import validate_config
    return validate_config({
        "seeds": [0], "datasets": {"celeba": {"source": "torchvision", "latent_dim": 64}},
        "models": {"fisher_ae_poly": {"method": "fisher_ae", "prior": "polynomial", "label": "Fisher AE (Exp. prior)"},
                   "vae": {"method": "vae"}},
        "training": {"epochs": 100, **training}})


def test_table1_marks_only_celeba_inception_at_full_size_as_comparable():
    from fisherae.table1 import table1
    config = _paper_celeba_config()
    rows = [{"dataset": "celeba", "model": m, "seed": seed, "features": "inception-pool3-2048", "draw": str(draw),
             "n_samples": n, "n_real": 19962, "sampler": "svgd", "fid": fid + seed + 0.1 * draw, "fid_sd": np.nan,
             "status": "ok", "reason": ""}
            for m, n, fid in (("fisher_ae_poly", 10000, 80.0), ("vae", 5000, 90.0)) for seed in (0, 1)
            for draw in (0, 1)]
    t1 = table1(pd.DataFrame(rows), config).set_index("algorithm")
    poly = t1.loc["Fisher AE (Exp. prior)"]
    assert poly.comparable == "yes" and poly.note == "" and (poly.paper_fid, poly.paper_sd) == (84.7, 0.8)
    assert poly.fid_mean == pytest.approx(80.55) and poly.n_seeds == 2 and poly.n_draws == 4
    assert t1.loc["VAE"].comparable == "no" and "5000 samples" in t1.loc["VAE"].note
    assert set(t1[t1.status == "not run"].index) == {"Fisher AE (Gaussian prior)", "WAE-GAN"}
    # the same numbers from a run outside the paper's setting are not comparable, and the note says why
    short = _paper_celeba_config(epochs=2, poly_order=4, poly_normalisable=True)
    short["datasets"]["celeba"].update(source="embedded", n_test=20)
    poly = table1(pd.DataFrame(rows), short).set_index("algorithm").loc["Fisher AE (Exp. prior)"]
    assert poly.comparable == "no"
    for gap in ("datasets.celeba.source = embedded", "datasets.celeba.n_test = 20", "training.epochs = 2",
                "K = 4, normalisable form = True"):
        assert gap in poly.note


@pytest.mark.parametrize("own, fallback, comparable", [(3, 5, "no"), (5, 3, "yes")])
def test_table1_judges_a_models_own_prior_order(own, fallback, comparable):
    """models.<name>.poly_order overrides training.poly_order for that model (the schema): Table 1's
    paper-setting check reads the model's own K, not the fallback."""
    from fisherae.table1 import table1
    config = _paper_celeba_config(poly_order=fallback)
    config["models"]["fisher_ae_poly"]["poly_order"] = own
    rows = [{"dataset": "celeba", "model": "fisher_ae_poly", "seed": 0, "features": "inception-pool3-2048",
             "draw": "0", "n_samples": 10000, "n_real": 19962, "sampler": "svgd", "fid": 80.0, "fid_sd": np.nan,
             "status": "ok", "reason": ""}]
    poly = table1(pd.DataFrame(rows), config).set_index("algorithm").loc["Fisher AE (Exp. prior)"]
    assert poly.comparable == comparable and (f"K = {own}," in poly.note) == (comparable == "no")
