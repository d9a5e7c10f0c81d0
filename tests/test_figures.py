"""The paper's figures from their inputs as library code (fisherae.figures): bad inputs named."""

import numpy as np
import pytest

from fisherae.config import validate_config
from fisherae.errors import UserError
from fisherae.evaluation import SWEEP_COLUMNS
from fisherae.figures import paper_figure, read_tables
from fisherae.latent import read_embeddings

CONFIG = validate_config({"seeds": [0], "datasets": {"mnist": {"source": "embedded"}},
                          "models": {"vae": {"method": "vae"}}})


def test_a_table_with_other_columns_is_named(tmp_path):
    (tmp_path / "nmi.csv").write_text("dataset,model\nmnist,vae\n")
    with pytest.raises(UserError, match=r"nmi.csv: columns \['dataset', 'model'\], expected \['dataset'"):
        read_tables([str(tmp_path / "nmi.csv")], SWEEP_COLUMNS)
    with pytest.raises(UserError, match="nmi.csv: columns"):
        paper_figure("figure1", [str(tmp_path / "nmi.csv")], CONFIG)


def test_missing_or_foreign_inputs_are_named(tmp_path):
    with pytest.raises(UserError, match=r"^figure figure2: .*nowhere.png"):
        paper_figure("figure2", [str(tmp_path / "nowhere.png")], CONFIG)
    (tmp_path / "bad.npz").write_text("not an npz")
    with pytest.raises(UserError, match="bad.npz is not a latent NPZ written by `python -m fisherae latent`"):
        read_embeddings([str(tmp_path / "bad.npz")])
    np.savez(tmp_path / "cut.npz", embeddings=np.zeros((2, 3, 5, 2)), labels=np.arange(5))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "cut.npz").read_bytes()[:-40])  # an interrupted copy
    with pytest.raises(UserError, match=r"cut.npz is not a latent NPZ .* \(not a whole NPZ archive"):
        read_embeddings([str(tmp_path / "cut.npz")])
