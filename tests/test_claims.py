"""The computed verdicts of `claims` and the `publish` copy: criteria, ties, roles, bad input."""

import hashlib

import pandas as pd
import pytest
import yaml

from fisherae.claims import COLLAPSED, Evidence, curve_outcomes, decay, evaluate_claims, outcome, verdict
from fisherae.cli import main
from fisherae.errors import UserError
from fisherae.paper import model_roles

MODELS = {"fae": {"method": "fisher_ae", "prior": "polynomial", "label": "Fisher AE (Exp. prior)"},
          "fae_g": {"method": "fisher_ae", "prior": "gaussian", "label": "Fisher AE (Gaussian prior)"},
          "vae": {"method": "vae", "label": "VAE"},
          "wae": {"method": "wae_gan", "label": "WAE-GAN"},
          "abl": {"method": "fisher_ae", "prior": "polynomial", "fisher_variant": "reparam_total_derivative",
                  "label": "ablation"}}
SIGMA2 = [0.0, 0.5, 1.0]


def curves(values: dict[str, list[float]], sd: float = 0.0, n: int = 4) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "sigma2": s, "mean": v, "sd": sd, "n_values": n}
                         for m, vs in values.items() for s, v in zip(SIGMA2, vs)])


def test_model_roles_follow_the_specs_not_the_names():
    roles = model_roles(MODELS)
    assert roles == {"fisher_exp": "fae", "fisher_gauss": "fae_g", "vae": "vae", "wae_gan": "wae", "authors": "abl"}
    assert "authors" not in model_roles({k: v for k, v in MODELS.items() if k != "abl"})


def test_outcome_ties_within_two_standard_errors():
    ours = pd.Series({"mean": 1.0, "sd": 0.2, "n_values": 4})  # se 0.1 each, combined 0.1414
    assert outcome(ours, pd.Series({"mean": 1.25, "sd": 0.2, "n_values": 4}), True) == "tie"
    assert outcome(ours, pd.Series({"mean": 1.3, "sd": 0.2, "n_values": 4}), True) == "better"
    assert outcome(ours, pd.Series({"mean": 1.3, "sd": 0.2, "n_values": 4}), False) == "worse"
    single = pd.Series({"mean": 1.0, "sd": float("nan"), "n_values": 1})  # no spread: any gap counts
    assert outcome(single, pd.Series({"mean": 1.001, "sd": 0.0, "n_values": 1}), True) == "better"


def test_verdict_needs_every_comparison():
    assert verdict(["better", "better"]) == "reproduced"
    assert verdict(["better", "tie"]) == "mixed"
    assert verdict(["tie", "worse"]) == "not reproduced"
    assert verdict(["better"], "ablation") == "supported"
    assert verdict([]) == "not evaluated"


def test_curve_outcomes_skip_the_clean_level_and_cross():
    table = curves({"a": [1, 1.1, 1.5], "b": [1, 1.3, 1.4]})
    found = curve_outcomes(table, "a", ["b"], lower_is_better=True)
    assert list(found["sigma2"]) == [0.5, 1.0]
    assert list(found["outcome"]) == ["better", "worse"]


def test_decay_drop_and_line_fit():
    drop, r2 = decay(curves({"a": [0.8, 0.6, 0.4]}))
    assert drop == pytest.approx(0.4) and r2 == pytest.approx(1.0)
    drop, r2 = decay(curves({"a": [0.8, 0.2, 0.2]}))
    assert drop == pytest.approx(0.6) and r2 < 0.8


def evidence(error_ratio=None) -> Evidence:
    nbce = curves({"fae": [1, 1.01, 1.02], "fae_g": [1, 1.2, 1.5], "vae": [1, 1.1, 1.3], "wae": [1, 1.3, 1.6],
                   "abl": [1, 1.05, 1.1]})
    bce = curves({"fae": [150, 152, 153], "fae_g": [100, 120, 150], "vae": [90, 99, 117], "wae": [80, 104, 128],
                  "abl": [120, 126, 132]})
    bce = pd.concat([bce, bce[bce["sigma2"] == 0.5].assign(sigma2=0.2)])
    nmi = curves({"fae": [0.8, 0.7, 0.6], "fae_g": [0.7, 0.5, 0.3], "vae": [0.8, 0.5, 0.2],
                  "wae": [0.9, 0.65, 0.3], "abl": [0.8, 0.72, 0.61]}, sd=0.05, n=3)
    fid = pd.DataFrame({"model": ["fae", "fae_g", "vae", "wae", "abl"], "mean": [20.0, 25.0, 30.0, 10.0, 22.0],
                        "sd": [1.0] * 5, "n_values": [3] * 5})
    return Evidence(nbce, bce, nmi, fid, {m: s["label"] for m, s in MODELS.items()}, 0.2, error_ratio or {})


def test_every_claim_gets_a_computed_verdict():
    table = evaluate_claims(evidence(), model_roles(MODELS)).set_index("claim")
    assert table.loc["fig1_normalised_bce", "verdict"] == "reproduced"
    assert table.loc["fig1_normalised_bce_gaussian_prior", "verdict"] == "mixed"  # worse than VAE, better than WAE-GAN
    assert table.loc["fig1_bce_noisy", "verdict"] == "not reproduced"
    assert table.loc["fig3_nmi", "verdict"] == "mixed"  # beats VAE at both noise levels, ties WAE-GAN at 0.5
    assert table.loc["fig3_nmi_decay", "verdict"] == "reproduced"
    assert table.loc["fig2_wae_gan_fails_on_noise", "verdict"] == "mixed"  # worse than VAE, better than Fisher
    assert table.loc["fig2_reconstruction_comparable", "verdict"] == "not reproduced"
    assert table.loc["fig2_wae_gan_best_samples", "verdict"] == "reproduced"
    assert table.loc["table1_order_exp_prior", "verdict"] == "reproduced"
    assert table.loc["ablation_normalised_bce", "verdict"] == "supported"
    assert table.loc["ablation_nmi", "verdict"] == "not supported"  # within the NMI's standard errors
    assert "Fisher AE (Exp. prior) 1.020" in table.loc["fig1_normalised_bce", "evidence"]
    assert "CAUTION" not in table.loc["fig1_normalised_bce", "evidence"]


def test_a_collapsed_encoder_is_flagged_beside_its_flat_curve():
    table = evaluate_claims(evidence({"fae": COLLAPSED + 0.05}), model_roles(MODELS)).set_index("claim")
    assert "CAUTION" in table.loc["fig1_normalised_bce", "evidence"]
    assert "CAUTION" not in table.loc["fig1_bce_noisy", "evidence"]


def test_claims_without_their_models_are_not_evaluated():
    roles = model_roles({k: v for k, v in MODELS.items() if k in ("fae", "vae")})
    table = evaluate_claims(evidence(), roles).set_index("claim")
    assert (table["verdict"] == "not evaluated").sum() == len(table)


# --------------------------------------------------------------------------- CLI

def write_run(root, ev: Evidence):
    """The files `claims` reads, as the pipeline writes them."""
    (root / "figures").mkdir(parents=True)
    (root / "tables").mkdir()
    figure1 = pd.concat([ev.bce.assign(panel="bce"), ev.nbce.assign(panel="bce_normalised")])
    figure1.to_csv(root / "figures" / "figure1_mnist_bce.csv", index=False)
    ev.nmi.assign(panel="nmi").to_csv(root / "figures" / "figure3_mnist_nmi.csv", index=False)
    pd.DataFrame({"dataset": "mnist", "model": ev.fid["model"], "status": "ok", "fid_mean": ev.fid["mean"],
                  "fid_sd": ev.fid["sd"], "n_seeds": 1, "n_draws": 3}).to_csv(root / "tables" / "table1_fid.csv",
                                                                                  index=False)
    pd.DataFrame({"model": ["fae", "vae"], "error_ratio": [0.95, 0.5], "probe_accuracy": [0.3, 0.9]}).to_csv(
        root / "diag.csv", index=False)
    (root / "classifier.json").write_text('{"test_accuracy": 0.987, "n_test": 10000}')
    config = {"results": str(root), "seeds": [0], "datasets": {"mnist": {"source": "embedded"}}, "models": MODELS}
    (root / "config.yaml").write_text(yaml.safe_dump(config))


def claims_argv(root):
    return ["claims", "--config", str(root / "config.yaml"), "--figure1", str(root / "figures/figure1_mnist_bce.csv"),
            "--figure3", str(root / "figures/figure3_mnist_nmi.csv"), "--table1", str(root / "tables/table1_fid.csv"),
            "--classifier", str(root / "classifier.json"), "--diagnostics", str(root / "diag.csv"),
            "--out-csv", str(root / "tables/claims.csv"), "--out-md", str(root / "tables/claims.md")]


def test_claims_command_writes_verdicts_and_numbers(tmp_path):
    write_run(tmp_path, evidence())
    assert main(claims_argv(tmp_path)) == 0
    table = pd.read_csv(tmp_path / "tables/claims.csv")
    assert len(table) == 11 and set(table["verdict"]) <= {"reproduced", "not reproduced", "mixed", "supported",
                                                          "not supported"}
    text = (tmp_path / "tables/claims.md").read_text()
    assert "test accuracy 0.9870" in text and "CAUTION" in text
    assert "| Fisher AE (Exp. prior) | 150.0 | 152.0 | 153.0 | 1.020 | 0.800 ± 0.050 | 0.600 ± 0.050 | 20.00 ± 1.00 " \
           "| 0.950 | 0.300 |" in text


def test_claims_command_names_a_missing_model(tmp_path, capsys):
    ev = evidence()
    write_run(tmp_path, Evidence(ev.nbce[ev.nbce["model"] != "vae"], ev.bce, ev.nmi, ev.fid, ev.labels, 0.2, {}))
    assert main(claims_argv(tmp_path)) == 2
    assert "a model or noise level is missing" in capsys.readouterr().err


def test_claims_command_rejects_an_unreadable_input(tmp_path, capsys):
    write_run(tmp_path, evidence())
    (tmp_path / "figures/figure3_mnist_nmi.csv").write_bytes(b"")
    assert main(claims_argv(tmp_path)) == 2
    assert "figure3_mnist_nmi.csv is not a readable Figure 3 CSV" in capsys.readouterr().err


def test_publish_copies_with_checksums_and_replaces_atomically(tmp_path, capsys):
    results = tmp_path / "results"
    for name in ("figures/figure1_mnist_bce.png", "figures/figure1_mnist_bce.csv", "figures/figure5_celeba_mse.png",
                 "tables/table1_fid.md", "runs/mnist/vae/seed0/metrics.csv", "runs/mnist/vae/seed0/model.pt"):
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_text(name)
    (results / "benchmarks/train/mnist/vae").mkdir(parents=True)
    (results / "benchmarks/train/mnist/vae/seed0.tsv").write_text("s\th:m:s\tmax_rss\tcpu_time\n12.5\t0:00:12\t900\t11\n")
    out = tmp_path / "published" / "run"
    (out / "stale").mkdir(parents=True)
    assert main(["publish", "--results", str(results), "--out", str(out)]) == 0
    manifest = pd.read_csv(out / "MANIFEST.csv").set_index("path")
    assert set(manifest.index) == {"figures/figure1_mnist_bce.png", "figures/figure1_mnist_bce.csv",
                                   "tables/table1_fid.md", "runs/mnist/vae/seed0/metrics.csv"}
    for path, row in manifest.iterrows():
        assert row["sha256"] == hashlib.sha256((out / path).read_bytes()).hexdigest()
    assert not (out / "stale").exists()
    timings = pd.read_csv(out / "timings.csv")
    assert timings.to_dict("records") == [{"job": "train/mnist/vae/seed0", "wall_s": 12.5, "cpu_s": 11,
                                           "max_rss_mb": 900}]
    assert [p.name for p in out.parent.iterdir()] == ["run"]  # no staging or backup left behind


def test_publish_refuses_a_run_without_figures(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    assert main(["publish", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 2
    assert "holds no MNIST figures" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_publish_copies_the_config_the_claims_job_read(tmp_path):
    results = tmp_path / "results"
    (results / "figures").mkdir(parents=True)
    (results / "figures/figure1_mnist_bce.png").write_text("png")
    (results / "configs").mkdir()
    (results / "configs/0123abcd.yaml").write_text("seeds: [0]\n")
    (results / "configs/4567cdef.yaml").write_text("seeds: [0, 1]\n")  # another invocation's, not this run's
    (results / "logs/tables").mkdir(parents=True)
    (results / "logs/tables/claims_mnist.log").write_text(f"fisherae claims: config {results}/configs/0123abcd.yaml\n")
    out = tmp_path / "published"
    assert main(["publish", "--results", str(results), "--out", str(out)]) == 0
    assert (out / "config.yaml").read_text() == "seeds: [0]\n"
    assert list(pd.read_csv(out / "MANIFEST.csv")["path"]) == ["config.yaml", "figures/figure1_mnist_bce.png"]


# --------------------------------------------------------------------------- library: one run's claims, publishing

def test_claims_of_a_run_in_markdown(tmp_path):
    from fisherae.claims import CLAIM_COLUMNS, claims_markdown, claims_of_run, classifier_accuracy
    from fisherae.config import load_config

    write_run(tmp_path, evidence())
    config = load_config(tmp_path / "config.yaml")
    claims, summary = claims_of_run(config, *(pd.read_csv(tmp_path / p) for p in (
        "figures/figure1_mnist_bce.csv", "figures/figure3_mnist_nmi.csv", "tables/table1_fid.csv", "diag.csv")))
    assert list(claims.columns) == CLAIM_COLUMNS and len(claims) == 11
    assert list(summary["model"]) == ["ablation", "Fisher AE (Exp. prior)", "Fisher AE (Gaussian prior)", "VAE",
                                      "WAE-GAN"]  # in config order (yaml.safe_dump sorted the keys)
    text = claims_markdown(claims, summary, "no domain classifier given", config)
    assert text.startswith(f"# MNIST: the paper's claims tested on this run\n\nRun: `{tmp_path}`, training seeds [0]; "
                           "no domain classifier given. Verdicts are computed")
    assert text.count("\n| --- |") == 2 and "\n## Numbers per model\n" in text
    assert classifier_accuracy(None) == "no domain classifier given"
    assert classifier_accuracy(str(tmp_path / "classifier.json")) == \
        "domain classifier test accuracy 0.9870 (10000 test digits)"
    with pytest.raises(UserError, match="is not the metrics JSON written by `train-classifier`"):
        classifier_accuracy(str(tmp_path / "diag.csv"))


def test_publish_returns_how_many_files_it_listed(tmp_path):
    from fisherae.publish import publish

    results = tmp_path / "results"
    (results / "figures").mkdir(parents=True)
    (results / "figures/figure2_mnist_grids.png").write_text("png")
    (results / "figures/figure6_celeba_grids.png").write_text("not published")
    assert publish(results, tmp_path / "out") == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["MANIFEST.csv", "figures", "timings.csv"]
    with pytest.raises(UserError, match="holds no MNIST figures"):
        publish(tmp_path / "out" / "figures", tmp_path / "other")
