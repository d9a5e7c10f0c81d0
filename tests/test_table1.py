"""Table 1 as library code (fisherae.table1): reading the FID CSVs and the Markdown."""

import numpy as np
import pandas as pd
import pytest

from fisherae.errors import UserError
from fisherae.fid import FID_COLUMNS
from fisherae.table1 import TABLE1_COLUMNS, read_fid_csvs, table1_markdown


def test_markdown_rounds_to_three_figures_and_says_why_not_comparable():
    rows = [["WAE-GAN", "mnist", "wae", "mnist-classifier-penultimate", "ok", 7.4512, 0.0321, 2, 6, 500, np.nan, np.nan,
             "no", "mnist (the paper reports CelebA only)"],
            ["VAE", "celeba", "", "inception-pool3-2048", "not run", np.nan, np.nan, 0, 0, 0, 89.1, 1.1, "no",
             "paper value only: not run in this configuration"]]
    lines = table1_markdown(pd.DataFrame(rows, columns=TABLE1_COLUMNS)).splitlines()
    assert lines[:2] == ["# Table 1: FID of prior samples (smaller is better)", ""]
    assert lines[2].startswith("| Algorithm | Data set | Features | Ours (mean ± sd) |")
    assert lines[4] == ("| WAE-GAN | mnist | mnist-classifier-penultimate | 7.45 ± 0.03 | 2 × 3 | 500 | — "
                        "| no: mnist (the paper reports CelebA only) |")
    assert lines[5] == ("| VAE | celeba | inception-pool3-2048 | not run | 0 × 0 | 0 | 89.1 ± 1.1 "
                        "| no: paper value only: not run in this configuration |")
    assert "at least 10000 samples" in lines[7]


def test_read_fid_csvs_names_a_file_that_is_not_one(tmp_path):
    good = tmp_path / "good.csv"
    pd.DataFrame([["mnist", "vae", 0, "f", "mean", 5, 6, "exact", 1.0, 0.1, "ok", ""]],
                 columns=FID_COLUMNS).to_csv(good, index=False)
    table = read_fid_csvs([str(good), str(good)])
    assert len(table) == 2 and table["draw"].tolist() == ["mean", "mean"] and table["reason"].isna().all()
    (tmp_path / "other.csv").write_text("dataset,model\nmnist,vae\n")
    with pytest.raises(UserError, match=r"other.csv lacks column\(s\) \['draw', 'features'"):
        read_fid_csvs([str(good), str(tmp_path / "other.csv")])
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UserError, match="cannot read .*empty.csv"):
        read_fid_csvs([str(tmp_path / "empty.csv")])
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00 a model file, not a CSV")
    with pytest.raises(UserError, match="cannot read .*binary.csv .*rerun `python -m fisherae fid`"):
        read_fid_csvs([str(tmp_path / "binary.csv")])
