"""The registry of the paper's objects (fisherae.paper): Figures 1-6, Table 1 and the model roles,
listed once for the Snakefile, the commands and the tests."""

import re
from pathlib import Path

from fisherae import paper
from fisherae.config import validate_config


def test_the_registry_covers_figures_1_to_6_once_each():
    assert [f.name for f in paper.FIGURES] == [f"figure{i}" for i in range(1, 7)]
    assert [f.dataset for f in paper.FIGURES] == ["mnist"] * 4 + ["celeba"] * 2
    assert len(paper.FIGURE_BY_STEM) == len(paper.FIGURE_BY_NAME) == 6
    for figure in paper.FIGURES:
        assert figure.stem.startswith(f"{figure.name}_{figure.dataset}_")
        assert set(re.findall(r"{(\w+)}", figure.inputs)) == {"dataset", "model", "seed"}
    assert [f.name for f in paper.FIGURES if f.all_seeds] == ["figure1", "figure3", "figure5"]


def test_table1_holds_the_papers_numbers_and_setting():
    assert paper.TABLE1.stem == "table1_fid" and paper.TABLE1.dataset == "celeba"
    assert paper.TABLE1.fid == {"VAE": (89.1, 1.1), "Fisher AE (Gaussian prior)": (89.1, 0.9),
                                "Fisher AE (Exp. prior)": (84.7, 0.8), "WAE-GAN": (75.2, 1.0)}
    assert paper.TABLE1.min_samples == 10000 and paper.TABLE1.training["epochs"] == 100


def test_the_configs_default_noise_grids_are_the_ones_the_claims_read():
    """A config that leaves the grids out sweeps every level of the paper's Figures 1 and 3 that
    the claims summarise (a sweep without them is skipped there, not judged)."""
    evaluation = validate_config({"seeds": [0], "datasets": {"mnist": {"source": "embedded"}},
                                  "models": {"vae": {"method": "vae"}}})["evaluation"]
    assert evaluation["noise_sweep"]["sigma2"]["mnist"] == list(paper.NOISE_GRID)
    assert evaluation["latent"]["sigma2"] == list(paper.NMI_GRID)


def test_every_table1_row_has_exactly_one_role():
    rows = [role.table1 for role in paper.ROLES if role.table1]
    assert sorted(rows) == sorted(paper.TABLE1.fid)


def test_paper_algorithm_and_roles_read_the_specs():
    poly = {"method": "fisher_ae", "prior": "polynomial"}
    models = validate_config({"seeds": [0], "datasets": {"mnist": {"source": "embedded"}}, "models": {
        "a": poly, "b": {"method": "fisher_ae", "prior": "gaussian"}, "c": {"method": "vae"}, "d": {"method": "wae_gan"},
        "e": {**poly, "fisher_variant": "reparam_total_derivative"},
        "f": {**poly, "fisher_variant": "total_derivative_stability"},
        "g": {**poly, "fisher_variant": "detached_decoder_score"},
        "h": {**poly, "poly_order": 4, "poly_normalisable": True}}})["models"]
    assert {name: paper.paper_algorithm(spec) for name, spec in models.items()} == {
        "a": "Fisher AE (Exp. prior)", "b": "Fisher AE (Gaussian prior)", "c": "VAE", "d": "WAE-GAN", "e": None,
        "f": None, "g": None, "h": None}
    assert paper.model_roles(models) == {"fisher_exp": "a", "fisher_gauss": "b", "vae": "c", "wae_gan": "d",
                                         "authors": "e", "stability_only": "f", "detach_only": "g",
                                         "fisher_normalisable": "h"}
    # a model entry without its own poly_normalisable takes training.poly_normalisable's
    assert paper.role_of(models["a"], default_normalisable=True).name == "fisher_normalisable"
    assert paper.role_of(models["h"], default_normalisable=True).name == "fisher_normalisable"


def test_the_registry_is_a_leaf():
    from test_structure import PACKAGE, fisherae_imports
    assert not fisherae_imports(PACKAGE / "paper.py")


def test_the_readme_table_of_figures_follows_the_registry():
    """README's "where each figure comes from" names each registered figure's file and the
    command that draws it; a figure renamed in the registry and not there fails here."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for figure in paper.FIGURES:
        assert f"`figures/{figure.stem}.png`" in readme and f"figure --name {figure.name}" in readme, figure.stem
    assert f"`tables/{paper.TABLE1.stem}" in readme
