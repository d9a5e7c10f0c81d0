"""Figures 1-6 from synthetic tidy inputs: what is plotted (the tidy tables), files written, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from fisherae import plots
from fisherae.cli import main
from fisherae.config import load_config

REPO = Path(__file__).resolve().parents[1]

CONFIG = {"seeds": [0], "datasets": {"mnist": {"source": "embedded"}},
          "models": {"fisher_ae_poly": {"method": "fisher_ae", "prior": "polynomial",
                                        "label": "Fisher AE (Exp. prior)"},
                     "vae": {"method": "vae", "label": "VAE"}, "wae_gan": {"method": "wae_gan"}}}
STYLE = plots.ModelStyle.from_config(CONFIG)


def sweep_table(dataset="mnist", metric="bce", seeds=(0, 1)):
    rows = []
    for m, model in enumerate(("vae", "fisher_ae_poly")):
        for seed in seeds:
            for batch in range(3):
                for sigma2 in (0.0, 0.5, 1.0):
                    value = (100 + 10 * batch + seed) * (1 + (m + 1) * sigma2)
                    rows.append((dataset, model, seed, sigma2, batch, 10, metric, value))
    return pd.DataFrame(rows, columns=["dataset", "model", "seed", "sigma2", "batch", "n_images", "metric", "value"])


def assert_real_image(path):
    with Image.open(path) as img:
        assert img.format == "PNG" and 300 <= img.width <= 6000 and 200 <= img.height <= 6000, img.size
        assert np.asarray(img.convert("RGB"), dtype=float).std() > 5


def test_model_style_is_consistent_and_labelled():
    assert STYLE.labels == {"fisher_ae_poly": "Fisher AE (Exp. prior)", "vae": "VAE", "wae_gan": "wae_gan"}
    again = plots.ModelStyle.from_config(CONFIG, ["extra"])
    assert all(again.colours[m] == STYLE.colours[m] for m in CONFIG["models"])
    assert len(set(again.colours.values())) == 4
    assert STYLE.order(["wae_gan", "vae", "fisher_ae_poly"]) == ["fisher_ae_poly", "vae", "wae_gan"]


def test_figure1_summary_and_normalisation(tmp_path):
    fig, tidy = plots.figure1(sweep_table(), STYLE)
    plots.save_figure(fig, tmp_path / "f1.png")
    assert_real_image(tmp_path / "f1.png")
    assert set(tidy["panel"]) == {"bce", "bce_normalised"}
    vae = tidy[(tidy["model"] == "vae") & (tidy["panel"] == "bce")].set_index("sigma2")
    values = [(100 + 10 * b + s) for s in (0, 1) for b in range(3)]  # 6 (seed, batch) values at sigma2 = 0
    assert vae.loc[0.0, "mean"] == pytest.approx(np.mean(values))
    assert vae.loc[0.0, "sd"] == pytest.approx(np.std(values, ddof=1))
    assert vae.loc[0.0, "n_values"] == 6 and vae.loc[0.0, "n_seeds"] == 2
    norm = tidy[tidy["panel"] == "bce_normalised"].set_index(["model", "sigma2"])
    assert norm.loc[("vae", 0.0), "mean"] == 1.0 and norm.loc[("vae", 0.0), "sd"] == 0.0
    assert norm.loc[("vae", 1.0), "mean"] == pytest.approx(2.0)  # value(1) / value(0) = 1 + 1 in every batch
    assert norm.loc[("fisher_ae_poly", 0.5), "mean"] == pytest.approx(2.0)
    assert set(tidy["label"]) == {"VAE", "Fisher AE (Exp. prior)"}


def test_several_training_seeds_give_the_mean_of_seed_means_and_a_t_interval(tmp_path):
    """With >= 2 training seeds the seed is the unit: the mean of the per-seed means (not of all
    rows) and a t 95 % interval over seeds; a model with one seed keeps mean ± sd, no interval."""
    rows = [("mnist", "vae", seed, 0.0, batch, 10, "bce", value)
            for seed, values in ((0, [1.0, 3.0]), (1, [4.0]), (2, [5.0, 7.0, 9.0])) for batch, value in enumerate(values)]
    rows += [("mnist", "fisher_ae_poly", 0, 0.0, batch, 10, "bce", value) for batch, value in enumerate([2.0, 4.0])]
    sweep = pd.DataFrame(rows, columns=["dataset", "model", "seed", "sigma2", "batch", "n_images", "metric", "value"])
    fig, tidy = plots.figure1(sweep, STYLE)
    raw = tidy[tidy["panel"] == "bce"].set_index("model")
    # seed means 2, 4, 7: mean 13/3, sd sqrt(57/9); t(0.975, df 2) = 4.302652729911275
    half = 4.302652729911275 * np.sqrt(57 / 9) / np.sqrt(3)
    assert raw.loc["vae", "mean"] == pytest.approx(13 / 3) and raw.loc["vae", "n_seeds"] == 3
    assert raw.loc["vae", "ci95_low"] == pytest.approx(13 / 3 - half)
    assert raw.loc["vae", "ci95_high"] == pytest.approx(13 / 3 + half)
    assert raw.loc["vae", "sd"] == pytest.approx(np.std([1, 3, 4, 5, 7, 9], ddof=1))  # over all rows, as before
    assert raw.loc["fisher_ae_poly", "mean"] == 3.0 and raw.loc["fisher_ae_poly", "sd"] == pytest.approx(np.sqrt(2))
    assert np.isnan(raw.loc["fisher_ae_poly", "ci95_low"]) and np.isnan(raw.loc["fisher_ae_poly", "ci95_high"])
    assert list(plots.error_bars(raw.reset_index())) == pytest.approx([np.sqrt(2), half])
    title = fig.get_suptitle().replace("\n", " ")
    assert "t-based 95 % interval over 3 training seeds" in title and "models with 1 training seed" in title
    plots.save_figure(fig, tmp_path / "f1.png")
    _, single = plots.figure1(sweep_table(seeds=(0,)), STYLE)
    assert single["ci95_low"].isna().all() and single["ci95_high"].isna().all()


def test_figure5_and_dataset_check(tmp_path):
    fig, tidy = plots.figure5(sweep_table("celeba", "mse", seeds=(0,)), STYLE)
    plots.save_figure(fig, tmp_path / "f5.png")
    assert_real_image(tmp_path / "f5.png")
    assert (tidy["n_seeds"] == 1).all() and (tidy["panel"] == "mse").all()
    with pytest.raises(ValueError, match="celeba only"):
        plots.figure5(sweep_table("mnist", "mse"), STYLE)
    with pytest.raises(ValueError, match="no metric 'bce'"):
        plots.figure1(sweep_table("mnist", "mse"), STYLE)


def test_figure3_and_figure4(tmp_path):
    rng = np.random.default_rng(0)
    nmi = pd.DataFrame([("mnist", m, s, s2, t, 0.9 - s2 * (0.3 if m == "vae" else 0.1) + 0.01 * t)
                        for m in ("vae", "fisher_ae_poly") for s in (0,) for s2 in (0.0, 0.5, 1.0) for t in (0, 1, 2)],
                       columns=["dataset", "model", "seed", "sigma2", "tsne_seed", "nmi"])
    fig, tidy = plots.figure3(nmi, STYLE)
    plots.save_figure(fig, tmp_path / "f3.png")
    assert_real_image(tmp_path / "f3.png")
    row = tidy[(tidy["model"] == "vae") & (tidy["sigma2"] == 1.0)].iloc[0]
    assert row["mean"] == pytest.approx(0.61) and row["n_values"] == 3

    labels = np.repeat(np.arange(10), 20)
    embeddings = [{"model": m, "seed": 0, "sigma2": np.array([0.0, 0.5]), "tsne_seeds": np.array([0, 1]),
                   "labels": labels, "embeddings": rng.normal(size=(2, 2, 200, 2)) + labels[:, None]}
                  for m in ("vae", "fisher_ae_poly")]
    fig, tidy = plots.figure4(embeddings, STYLE)
    plots.save_figure(fig, tmp_path / "f4.png")
    assert_real_image(tmp_path / "f4.png")
    assert len(tidy) == 2 * 2 * 200 and set(tidy.columns) >= {"model", "sigma2", "x", "y", "digit"}


@pytest.mark.parametrize("channels", [1, 3])
def test_grid_png_roundtrip_and_panel(tmp_path, channels):
    rng = np.random.default_rng(0)
    shape = (182, 122) if channels == 1 else (182, 122, 3)
    layout = [{"name": "clean input", "rows": 1, "top": 2, "bottom": 30},
              {"name": "random samples", "rows": 5, "top": 32, "bottom": 180}]
    paths = []
    for model in ("vae", "fisher_ae_poly"):
        meta = {"dataset": "mnist", "model": model, "seed": 0, "noise_sigma2": 0.2, "layout": layout}
        paths.append(plots.write_grid_png(tmp_path / f"{model}.png", rng.integers(0, 256, shape, dtype=np.uint8), meta))
    image, meta = plots.read_grid_png(paths[0])
    assert image.shape == shape and meta["layout"] == layout
    grids = [(str(p), *plots.read_grid_png(p)) for p in paths]
    fig, tidy = plots.figure_grids(grids, "figure2", "mnist", STYLE)
    plots.save_figure(fig, tmp_path / "f2.png")
    assert_real_image(tmp_path / "f2.png")
    assert tidy["model"].tolist() == ["fisher_ae_poly", "vae"]  # configuration order


def grid_figure(tmp_path, ratios: list[float | None]):
    """figure_grids over one grid per model, with ``ratios`` as their clean error ratios."""
    layout = [{"name": "clean input", "rows": 1, "top": 2, "bottom": 30}]
    grids = []
    for model, ratio in zip(("vae", "fisher_ae_poly", "wae_gan"), ratios):
        meta = {"dataset": "celeba", "model": model, "seed": 0, "noise_sigma2": 2.0, "layout": layout}
        if ratio is not None:
            meta["clean_error_ratio"] = ratio
        image = np.full((32, 122, 3), 128, dtype=np.uint8)
        grids.append((str(tmp_path / f"{model}.png"), image, meta))
    return plots.figure_grids(grids, "figure6", "celeba", STYLE)


def test_grid_figures_say_when_their_models_reconstruct_no_better_than_the_mean_image(tmp_path):
    fig, tidy = grid_figure(tmp_path, [1.97, 0.31, 0.95])
    assert tidy.set_index("model")["clean_error_ratio"].to_dict() == {"fisher_ae_poly": 0.31, "vae": 1.97,
                                                                      "wae_gan": 0.95}
    assert [ax.get_xlabel() for ax in fig.axes] == [f"clean error: {r} × the mean image's" for r in
                                                    ("0.31", "1.97", "0.95")]
    banner = " ".join(fig._supxlabel.get_text().split())
    assert banner.startswith("⚠ 2 of 3 models reconstruct clean test inputs no better than the mean test image "
                             "(squared error ≥ 0.9 × the mean image's): they are barely trained")
    plots.save_figure(fig, tmp_path / "f6.png")
    fig, _ = grid_figure(tmp_path, [0.2, 0.5, None])  # None: a grid written before the ratio was recorded
    assert fig._supxlabel is None and [ax.get_xlabel() for ax in fig.axes][2] == ""
    plots.save_figure(fig, tmp_path / "f6.png")


def test_curve_figures_say_when_a_models_error_ignores_the_noise(tmp_path):
    sweep = sweep_table("celeba", "mse")
    fig, _ = plots.figure5(sweep, STYLE)
    assert fig.legends[0].get_title().get_text() == ""  # every curve rises with σ²
    plots.save_figure(fig, tmp_path / "f5.png")
    vae = sweep["model"] == "vae"
    sweep.loc[vae, "value"] = 500 + 4 * sweep.loc[vae, "sigma2"]  # +0.8 % from σ² = 0 to 1: flat
    fig, _ = plots.figure5(sweep, STYLE)
    title = fig.legends[0].get_title()
    assert " ".join(title.get_text().split()) == (
        "⚠ 1 of 2 models' MSE moves by less than 1% from σ² = 0 to σ² = 1: their reconstructions ignore the "
        "input; they are barely trained, and this figure checks the pipeline, not the paper.")
    assert title.get_color() == "darkred"
    plots.save_figure(fig, tmp_path / "f5.png")
    assert_real_image(tmp_path / "f5.png")


def test_every_figure_says_how_its_models_were_trained():
    smoke = load_config(REPO / "config" / "smoke.yaml")
    assert plots.training_note(smoke, "celeba") == (
        "Our models: 2 epochs at width 4 on scikit-image's embedded LFW faces (a CelebA stand-in) "
        "(the paper: 100 epochs at width 128).")
    paper = load_config(REPO / "config" / "config.yaml")
    assert plots.training_note(paper, "mnist") == "Our models: 100 epochs at width 128 on MNIST (the paper: 100 " \
                                                  "epochs at width 128)."
    fig, _ = plots.figure5(sweep_table("celeba", "mse"), STYLE)
    plots.add_note(fig, "Our models: 1 epoch.")
    assert fig.get_suptitle().splitlines()[-1] == "Our models: 1 epoch."


def test_figure_command_errors_exit_2(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    figure = lambda name, path: main(["figure", "--config", str(config), "--name", name,  # noqa: E731
                                      "--inputs", str(path), "--out", str(out)])
    sweep = tmp_path / "sweep.csv"
    sweep_table("celeba", "mse").to_csv(sweep, index=False)
    out = tmp_path / "f1.png"
    assert figure("figure1", sweep) == 2
    assert "mnist only" in capsys.readouterr().err and not out.exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert figure("figure3", bad) == 2
    assert "expected" in capsys.readouterr().err
    plain = tmp_path / "plain.png"
    Image.new("L", (10, 10)).save(plain)
    assert figure("figure2", plain) == 2
    assert "not a grid" in capsys.readouterr().err and not out.exists()


def _figure1_command(tmp_path: Path, out: Path) -> int:
    """`figure --name figure1` on a valid sweep CSV (sweep.csv) and config (config.yaml) in tmp_path."""
    config, sweep = tmp_path / "config.yaml", tmp_path / "sweep.csv"
    config.write_text(yaml.safe_dump(CONFIG))
    sweep_table().to_csv(sweep, index=False)
    return main(["figure", "--config", str(config), "--name", "figure1", "--inputs", str(sweep), "--out", str(out)])


@pytest.mark.parametrize("name", ["f1", "f1.xyz", "f1.png.tmp"])
def test_figure_command_refuses_a_name_without_an_image_suffix(tmp_path, capsys, name):
    """matplotlib reads the format from the suffix (of the temporary file, before the rename): a
    name without an image suffix is refused before the work, with the suffixes it can write."""
    assert _figure1_command(tmp_path, tmp_path / name) == 2
    err = capsys.readouterr().err
    assert f"{name}: a figure's file name must end in an image format's suffix" in err and ".png" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "sweep.csv"]


def test_a_figure_is_written_in_the_format_its_suffix_names(tmp_path):
    fig, _ = plots.figure1(sweep_table(), STYLE)
    plots.save_figure(fig, tmp_path / "F1.PDF")
    assert (tmp_path / "F1.PDF").read_bytes().startswith(b"%PDF")
    assert [p.name for p in tmp_path.iterdir()] == ["F1.PDF"]


def test_a_path_the_command_cannot_write_is_one_line_exit_2(tmp_path, capsys):
    """An OSError (here the output's folder is a file) is the command's one error line, not a traceback."""
    assert _figure1_command(tmp_path, tmp_path / "sweep.csv" / "f1.png") == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the config line every command writes first
    assert last.startswith("fisherae figure: error: ") and "sweep.csv" in last
