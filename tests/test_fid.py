"""The rows of a FID CSV as library code (fisherae.fid)."""

import numpy as np
import pytest

from fisherae.fid import FID_COLUMNS, feature_extractors, fid_table, unavailable_rows, wants_classifier


def test_fid_table_labels_the_rows_with_the_run():
    rows = [{"features": "f", "draw": "0", "n_samples": 5, "n_real": 6, "fid": 2.0, "status": "ok", "reason": ""}]
    rows += unavailable_rows({"g": "no weights"}, 5, 6)
    table = fid_table(rows, "mnist", "vae", 3, "svgd")
    assert list(table.columns) == FID_COLUMNS
    assert table[["dataset", "model", "seed", "sampler"]].drop_duplicates().values.tolist() == [["mnist", "vae", 3,
                                                                                                "svgd"]]
    assert table["status"].tolist() == ["ok", "unavailable"] and table["reason"].tolist() == ["", "no weights"]
    assert np.isnan(table.loc[1, "fid"]) and table.loc[1, "draw"] == ""


@pytest.mark.parametrize("features, dataset, wanted", [("both", "mnist", True), ("classifier", "mnist", True),
                                                       ("inception", "mnist", False), ("both", "celeba", False)])
def test_the_classifier_is_wanted_on_mnist_only(features, dataset, wanted):
    assert wants_classifier({"features": features}, dataset) is wanted


def test_no_classifier_features_off_mnist():
    extractors, unavailable = feature_extractors({"features": "classifier"}, "celeba", None, "cpu")
    assert extractors == {} and unavailable == {
        "mnist-classifier-penultimate": "the domain classifier exists for MNIST only, not celeba"}
