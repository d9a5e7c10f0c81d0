"""`publish` of one part of a run: every per-run CSV that claims over several parts read."""

from __future__ import annotations

import pandas as pd

from fisherae.cli import main


def test_publish_copies_every_per_run_csv_of_a_part(tmp_path):
    """The whole-test-set NMI and the snapshots' sweeps and NMI travel with the other per-run CSVs;
    model files (final and snapshot) and embeddings do not, nor CelebA's per-run files."""
    results = tmp_path / "results"
    per_run = ["sweeps/mnist/vae/seed1.csv", "latent/mnist/vae/seed1.csv", "latent_full/mnist/vae/seed1.csv",
               "snapshots/mnist/vae/seed1/epoch2/sweep.csv", "snapshots/mnist/vae/seed1/epoch2/latent.csv",
               "fid/mnist/vae/seed1.csv", "diagnostics/mnist/vae/seed1.csv", "runs/mnist/vae/seed1/metrics.csv"]
    kept_back = ["runs/mnist/vae/seed1/model.pt", "runs/mnist/vae/seed1/snapshots/epoch2.pt",
                 "latent/mnist/vae/seed1.npz", "snapshots/celeba/vae/seed1/epoch2/sweep.csv",
                 "sweeps/celeba/vae/seed1.csv"]
    for name in ["figures/figure1_mnist_bce.png", *per_run, *kept_back]:
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_text(name)
    out = tmp_path / "published" / "seeds12"
    assert main(["publish", "--results", str(results), "--out", str(out)]) == 0
    assert set(pd.read_csv(out / "MANIFEST.csv")["path"]) == {"figures/figure1_mnist_bce.png", *per_run}
    assert all((out / name).read_text() == name for name in per_run)
