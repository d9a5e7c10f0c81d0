"""fisherae.run_summaries: per-run CSVs (synthetic, with known answers) read into one number per run and reading."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fisherae.errors import UserError
from fisherae.paper import NMI_GRID, NOISE_GRID
from fisherae.run_summaries import SUMMARY_COLUMNS, find_run_files, run_file, run_summaries

BOTH_AXES = sorted(set(NOISE_GRID) | {round(s * s, 10) for s in NOISE_GRID})
NMI_LEVELS = sorted(set(NMI_GRID) | {round(s * s, 10) for s in NMI_GRID})
RUN = {"clean": 100.0, "slope": 0.5, "mse0": 0.01, "mse_slope": 1.0, "nmi0": 0.8, "drop": 0.3, "fid": 20.0,
       "error_ratio": 0.4}


def write_run(root: Path, model: str, seed: int, spec: dict = RUN, epoch: int | None = None,
              levels=BOTH_AXES, latent_full: bool = False) -> None:
    """The per-run CSVs of one trained run as the pipeline writes them: BCE(σ²) = clean (1 + slope σ²)
    per image (two test batches of 100 and 300 images whose per-image mean is exactly that),
    MSE(σ²) = 784 mse0 (1 + mse_slope σ²), NMI(σ²) = nmi0 - drop σ² (two t-SNE seeds ± 0.01)."""
    spec = {**RUN, **spec}
    run = f"mnist/{model}/seed{seed}"
    where = {"sweep": f"sweeps/{run}.csv", "latent": f"latent/{run}.csv"} if epoch is None else \
        {"sweep": f"snapshots/{run}/epoch{epoch}/sweep.csv", "latent": f"snapshots/{run}/epoch{epoch}/latent.csv"}
    sweep = []
    for s in levels:
        for metric, value in (("bce", spec["clean"] * (1 + spec["slope"] * s)),
                              ("mse", 784 * spec["mse0"] * (1 + spec["mse_slope"] * s))):
            sweep += [["mnist", model, seed, s, 0, 100, metric, value - 3.0], ["mnist", model, seed, s, 1, 300, metric,
                                                                                value + 1.0]]
    _csv(root / where["sweep"], sweep, ["dataset", "model", "seed", "sigma2", "batch", "n_images", "metric", "value"])
    nmi = [["mnist", model, seed, s, t, spec["nmi0"] - spec["drop"] * s + (0.01 if t else -0.01)]
           for s in NMI_LEVELS for t in (0, 1)]
    for name in ("latent", "latent_full") if latent_full else ("latent",):
        path = where["latent"] if name == "latent" else f"latent_full/{run}.csv"
        _csv(root / path, nmi, ["dataset", "model", "seed", "sigma2", "tsne_seed", "nmi"])
    if epoch is None:
        _csv(root / f"fid/{run}.csv", [["mnist", model, seed, d, spec["fid"] + (d - 1), "ok"] for d in range(3)]
             + [["mnist", model, seed, 3, 999.0, "failed"]], ["dataset", "model", "seed", "draw", "fid", "status"])
        _csv(root / f"diagnostics/{run}.csv", [["mnist", model, seed, spec["error_ratio"], 0.9]],
             ["dataset", "model", "seed", "error_ratio", "probe_accuracy"])


def _csv(path: Path, rows: list, columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)


def values(table: pd.DataFrame, quantity: str, epoch: str = "final") -> dict[str, float]:
    rows = table[(table["quantity"] == quantity) & (table["epoch"] == epoch)]
    return dict(zip(rows["reading"], rows["value"]))


def test_a_run_reads_as_its_known_summaries(tmp_path):
    write_run(tmp_path, "fae", 3)
    table, notes = run_summaries(find_run_files(tmp_path))
    assert list(table.columns) == SUMMARY_COLUMNS and notes == []
    assert set(table["model"]) == {"fae"} and set(table["seed"]) == {3} and set(table["epoch"]) == {"final"}
    mean_g = np.mean(NOISE_GRID[1:])  # (0.05 + 0.1 + 0.2 + ... + 1.0) / 11
    mean_sd = np.mean([s * s for s in NOISE_GRID[1:]])
    assert mean_g == pytest.approx(5.55 / 11)
    assert values(table, "clean_bce") == {"clean": pytest.approx(100.0)}  # batches weighted by their sizes
    assert values(table, "nbce") == pytest.approx({"variance/mean": 1 + 0.5 * mean_g, "variance/end": 1.5,
                                                   "sd/mean": 1 + 0.5 * mean_sd, "sd/end": 1.5})
    assert values(table, "bce_rise") == pytest.approx({"variance/mean": 50 * mean_g, "variance/end": 50.0,
                                                       "sd/mean": 50 * mean_sd, "sd/end": 50.0})
    assert values(table, "mse_pixel")["variance/mean"] == pytest.approx(0.01 * (1 + mean_g))
    assert values(table, "bce")["at 0.2"] == pytest.approx(110.0)
    assert values(table, "bce")["variance/end"] == pytest.approx(150.0)
    mean_nmi = np.mean(NMI_GRID[1:])
    assert values(table, "nmi") == pytest.approx({
        "variance/mean": 0.8 - 0.3 * mean_nmi, "variance/end": 0.5, "variance/drop": 0.3,
        "sd/mean": 0.8 - 0.3 * np.mean([s * s for s in NMI_GRID[1:]]), "sd/end": 0.5, "sd/drop": 0.3})
    assert values(table, "fid") == {"-": pytest.approx(20.0)}  # the failed draw left out
    assert values(table, "error_ratio") == {"-": 0.4} and values(table, "probe_accuracy") == {"-": 0.9}


def test_a_sweep_without_the_sd_levels_skips_that_reading_and_says_so(tmp_path):
    write_run(tmp_path, "vae", 0, levels=NOISE_GRID)
    table, notes = run_summaries(find_run_files(tmp_path))
    assert set(values(table, "nbce")) == {"variance/mean", "variance/end"}
    assert ("Figure 1, levels read as standard deviations: needs σ² = 0, 0.0025, 0.01, 0.04, 0.09, 0.16, 0.25, 0.36, "
            "0.49, 0.64, 0.81, 1, not all evaluated; skipped", "vae seed 0") in notes
    assert len([n for n in notes if n[0].startswith("Figure 1")]) == 1  # once for the four Figure 1 quantities


def test_snapshots_carry_their_epoch_and_latent_full_its_own_quantity(tmp_path):
    write_run(tmp_path, "fae", 0, latent_full=True)
    write_run(tmp_path, "fae", 0, {"clean": 200.0}, epoch=2)
    table, _ = run_summaries(find_run_files(tmp_path))
    assert values(table, "clean_bce", "2") == {"clean": pytest.approx(200.0)}
    assert values(table, "nmi", "2")["variance/drop"] == pytest.approx(0.3)
    assert values(table, "nmi_all")["variance/drop"] == pytest.approx(0.3)
    found = run_file("results/x/snapshots/mnist/vae/seed4/epoch12/sweep.csv")
    assert (found.kind, found.model, found.seed, found.epoch) == ("snapshot_sweep", "vae", 4, "12")


def test_the_fid_of_exact_prior_samples_is_its_own_quantity(tmp_path):
    write_run(tmp_path, "k4", 0, {**RUN, "fid": 50.0})
    _csv(tmp_path / "fid_exact/mnist/k4/seed0.csv", [["mnist", "k4", 0, d, 30.0 + d, "ok"] for d in range(2)],
         ["dataset", "model", "seed", "draw", "fid", "status"])
    table, notes = run_summaries(find_run_files(tmp_path))
    assert values(table, "fid") == {"-": pytest.approx(50.0)} and values(table, "fid_exact") == {"-": 30.5}
    assert notes == []
    found = run_file("results/x/fid_exact/mnist/k4/seed0.csv")
    assert (found.kind, found.model, found.seed, found.epoch) == ("fid_exact", "k4", 0, "final")


def test_bad_per_run_files_are_named(tmp_path):
    with pytest.raises(UserError, match="notes.csv is not a per-run CSV of a known layout"):
        run_file(tmp_path / "sweeps/mnist/vae/notes.csv")
    for part in ("a", "b"):
        write_run(tmp_path / part, "vae", 1)
    with pytest.raises(UserError, match="both hold vae seed 1 .epoch final.; give each run once"):
        run_summaries(find_run_files(tmp_path / "a") + find_run_files(tmp_path / "b"))
    sweep = tmp_path / "a/sweeps/mnist/vae/seed1.csv"
    pd.read_csv(sweep).query("sigma2 > 0").to_csv(sweep, index=False)
    with pytest.raises(UserError, match="seed1.csv has no BCE at σ² = 0"):
        run_summaries([sweep])
    pd.read_csv(sweep).drop(columns="n_images").to_csv(sweep, index=False)
    with pytest.raises(UserError, match="lacks the column 'n_images' of a sweep CSV"):
        run_summaries([sweep])
    sweep.write_text("")
    with pytest.raises(UserError, match="seed1.csv is not a readable per-run CSV"):
        run_summaries([sweep])
