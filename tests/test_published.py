"""The committed reproduction (results/published/mnist-cpu): intact, and its verdicts follow from its own CSVs."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from fisherae.cli import main

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "published" / "mnist-cpu"
pytestmark = pytest.mark.skipif(not PUBLISHED.is_dir(), reason="no published reproduction in this checkout")


def test_every_published_file_matches_its_checksum():
    manifest = pd.read_csv(PUBLISHED / "MANIFEST.csv")
    assert {"figures/figure1_mnist_bce.png", "figures/figure3_mnist_nmi.csv",
            "tables/claims_mnist.csv"} <= set(manifest["path"])
    for row in manifest.itertuples():
        assert hashlib.sha256((PUBLISHED / row.path).read_bytes()).hexdigest() == row.sha256, row.path


def test_published_verdicts_are_recomputed_from_the_published_csvs(tmp_path):
    diagnostics = sorted(str(p) for p in (PUBLISHED / "diagnostics").rglob("*.csv"))
    assert len(diagnostics) == 5
    assert main(["claims", "--config", str(PUBLISHED / "config.yaml"),
                 "--figure1", str(PUBLISHED / "figures/figure1_mnist_bce.csv"),
                 "--figure3", str(PUBLISHED / "figures/figure3_mnist_nmi.csv"),
                 "--table1", str(PUBLISHED / "tables/table1_fid.csv"),
                 "--classifier", str(PUBLISHED / "classifier/mnist.json"), "--diagnostics", *diagnostics,
                 "--out-csv", str(tmp_path / "claims.csv"), "--out-md", str(tmp_path / "claims.md")]) == 0
    assert (tmp_path / "claims.csv").read_text() == (PUBLISHED / "tables/claims_mnist.csv").read_text()
    assert (tmp_path / "claims.md").read_text() == (PUBLISHED / "tables/claims_mnist.md").read_text()
