"""The claims judged with the training seed as the unit (synthetic runs with known verdicts), the
readings that flip them, the trajectory over epochs, the `claims` and `reproduction` commands, and
the `publish` copy."""

import hashlib
from dataclasses import replace

import pandas as pd
import pytest
import yaml
from test_run_summaries import write_run

from fisherae.claims import (CLAIM_COLUMNS, CLAIMS, PRIMARY, READINGS, Evidence, judge_all, matched_epochs,
                             sensitivity_table, trajectory_table, trajectory_verdicts)
from fisherae.cli import main
from fisherae.errors import UserError
from fisherae.paper import NOISE_GRID, model_roles
from fisherae.reproduction import reproduction
from fisherae.run_summaries import find_run_files, run_summaries
from fisherae.seed_stats import VERDICTS

ROLES = {"fisher_exp": "fae", "authors": "auth", "stability_only": "stab", "detach_only": "det",
         "fisher_gauss": "fae_g", "vae": "vae", "wae_gan": "wae"}
# Per model: the known curves of write_run; "jitter" scales the seed-to-seed spread (see runs()).
SPECS = {"fae": {"clean": 150.0, "slope": 0.1, "mse_slope": 2.0, "nmi0": 0.8, "drop": 0.2, "fid": 20.0},
         "auth": {"clean": 100.0, "slope": 0.2, "mse_slope": 0.2, "nmi0": 0.9, "drop": 0.6, "fid": 22.0,
                  "error_ratio": 0.95, "jitter": 2},
         "stab": {"clean": 100.0, "slope": 0.3, "nmi0": 0.7, "drop": 0.3},
         "det": {"clean": 100.0, "slope": 0.15, "nmi0": 0.7, "drop": 0.3},
         "fae_g": {"clean": 120.0, "slope": 0.5, "fid": 25.0},
         "vae": {"clean": 90.0, "slope": 0.4, "mse_slope": 0.5, "nmi0": 0.8, "drop": 0.6, "fid": 30.0},
         "wae": {"clean": 80.0, "slope": 0.8, "mse_slope": 1.0, "nmi0": 0.9, "drop": 0.6, "fid": 10.0}}
SNAPSHOTS = {"fae": {"clean": 200.0, "slope": 0.1}, "vae": {"clean": 190.0, "slope": 0.05},
             "wae": {"clean": 300.0, "slope": 0.8}}  # epoch 2: the VAE, less trained, is flatter


def seed_spec(spec: dict, seed: int) -> dict:
    """``spec`` moved by seed (seeds 0, 1, 2: offsets -1, 0, +1 times the model's jitter), so that every
    arm has a spread and the seed mean is the spec's value."""
    step = (seed - 1) * spec.get("jitter", 1)
    moves = {"clean": 1.0, "slope": 0.01, "mse_slope": 0.01, "nmi0": 0.01, "drop": 0.01, "fid": 0.5}
    return {k: v + moves.get(k, 0) * step for k, v in spec.items() if k != "jitter"}


def runs(root, specs=SPECS, seeds=(0, 1, 2), snapshots=None):
    for model, spec in specs.items():
        for seed in seeds:
            write_run(root, model, seed, seed_spec(spec, seed))
            if model in (snapshots or {}):
                write_run(root, model, seed, seed_spec({**spec, **snapshots[model]}, seed), epoch=2)


def evidence(tmp_path, snapshots=None) -> Evidence:
    runs(tmp_path, snapshots=snapshots)
    table, _ = run_summaries(find_run_files(tmp_path))
    return Evidence(table, ROLES, {m: m.upper() for m in SPECS}, 0.2)


def verdicts(judged) -> dict[tuple[str, str], str]:
    return {(j.claim.claim, j.arm): j.verdict.verdict for j in judged}


def test_every_claim_gets_a_verdict_over_seeds_for_both_arms(tmp_path):
    judged = judge_all(evidence(tmp_path))
    found = verdicts(judged)
    assert found == {
        ("fig1_normalised_bce", "fisher_exp"): "reproduced",
        ("fig1_normalised_bce", "authors"): "inconclusive",  # reproduced, but its reconstructions are collapsed
        ("fig1_normalised_bce_gaussian_prior", "fisher_gauss"): "contradicted",  # steeper than the VAE
        ("fig1_bce_noisy", "fisher_exp"): "contradicted",
        ("fig1_bce_noisy", "authors"): "inconclusive",  # beats WAE-GAN, ties the VAE within its wider spread
        ("fig3_nmi", "fisher_exp"): "reproduced",
        ("fig3_nmi", "authors"): "inconclusive",  # ties WAE-GAN (equal seed means)
        ("fig3_nmi_decay", "fisher_exp"): "reproduced", ("fig3_nmi_decay", "authors"): "inconclusive",
        # the authors' arm is collapsed: its reconstructions and samples test nothing (NMI levels still count)
        ("fig2_wae_gan_fails_on_noise", "fisher_exp"): "contradicted",
        ("fig2_wae_gan_fails_on_noise", "authors"): "inconclusive",  # contradicted, but AUTH is collapsed
        ("fig2_reconstruction_comparable", "fisher_exp"): "contradicted",
        ("fig2_reconstruction_comparable", "authors"): "inconclusive",
        ("fig2_wae_gan_best_samples", "fisher_exp"): "reproduced", ("fig2_wae_gan_best_samples", "authors"): "inconclusive",
        ("table1_order_exp_prior", "fisher_exp"): "reproduced", ("table1_order_exp_prior", "authors"): "inconclusive",
        # the authors' cell (AUTH) is collapsed: a decisive factor verdict on a flat curve of it means nothing
        ("factor_stability_normalised_bce", "2x2"): "inconclusive",  # reproduced, but AUTH is collapsed
        ("factor_detach_normalised_bce", "2x2"): "inconclusive",  # contradicted, but AUTH is collapsed
        ("factor_stability_nmi", "2x2"): "contradicted", ("factor_detach_nmi", "2x2"): "contradicted"}
    reasons = {(j.claim.claim, j.arm): j.verdict.reason for j in judged}
    assert reasons[("fig1_normalised_bce", "authors")].startswith(
        "reproduced, but AUTH's clean error is above 0.9 × the mean image's (seed 0: 0.95, seed 1: 0.95")
    assert reasons[("factor_detach_normalised_bce", "2x2")].startswith("contradicted, but AUTH's clean error is above")
    assert reasons[("table1_order_exp_prior", "authors")].startswith("reproduced, but AUTH's clean error is above")
    assert reasons[("fig2_wae_gan_fails_on_noise", "authors")].endswith(
        "its reconstructions (nearly) ignore the input, so a comparison with it does not test the claim")
    assert reasons[("fig3_nmi", "authors")] == "95 % interval includes 0 (a tie)"
    fig1 = next(j for j in judged if j.claim.claim == "fig1_normalised_bce" and j.arm == "fisher_exp")
    vae = fig1.comparisons[0]
    assert (vae.versus, vae.model, vae.other, vae.difference.n_a, vae.difference.n_b) == ("vae", "fae", "vae", 3, 3)
    mean_g = sum(NOISE_GRID[1:]) / 11
    assert vae.difference.difference == pytest.approx(-0.3 * mean_g)  # seed means 1 + slope * mean(G > 0)
    assert vae.difference.low < vae.difference.difference < vae.difference.high < 0


def test_claims_without_their_models_and_the_factor_claims_without_cells(tmp_path):
    ev = evidence(tmp_path)
    judged = judge_all(replace(ev, roles={k: v for k, v in ROLES.items() if k in ("fisher_exp", "vae")}))
    assert {j.verdict.verdict for j in judged} == {"inconclusive"} and not [j for j in judged if j.arm == "2x2"]
    assert judged[0].verdict.reason == "not evaluated: no model plays wae_gan"
    assert judged[1].verdict.reason == "not evaluated: no model plays authors, wae_gan"
    judged = judge_all(replace(ev, roles={k: v for k, v in ROLES.items() if k != "detach_only"}))
    factor = next(j for j in judged if j.claim.claim == "factor_stability_normalised_bce")
    assert [(c.model, c.other) for c in factor.comparisons] == [("fae", "stab")]  # the pair whose cells exist


def test_one_seed_is_always_inconclusive(tmp_path):
    runs(tmp_path, seeds=(0,))
    table, _ = run_summaries(find_run_files(tmp_path))
    judged = judge_all(Evidence(table, ROLES, {}, 0.2))
    assert {j.verdict.verdict for j in judged} == {"inconclusive"}
    assert {j.verdict.reason for j in judged} == {"one seed"}


def test_the_table_has_one_row_per_claim_arm_and_baseline(tmp_path):
    from fisherae.claims import claims_table

    table = claims_table(judge_all(evidence(tmp_path)))
    assert list(table.columns) == CLAIM_COLUMNS and set(table["verdict"]) <= set(VERDICTS)
    row = table[(table["claim"] == "fig1_normalised_bce") & (table["arm"] == "fisher_exp")].set_index("versus")
    assert list(row.index) == ["vae", "wae_gan"] and list(row["n_seeds"]) == [3, 3]
    assert (row["ci_low"] < row["difference"]).all() and (row["comparison"] == "reproduced").all()
    assert len(table) == sum(len(c.pairs) or len(c.others) * len(c.arms()) for c in CLAIMS)


def test_matched_clean_error_takes_each_model_at_the_epoch_nearest_the_common_target(tmp_path):
    ev = evidence(tmp_path, SNAPSHOTS)
    assert ev.epochs("fae") == ["2", "final"]
    assert matched_epochs(ev, "fae", "vae") == ("final", "2")  # target: max(150, 90); the VAE's 190 is nearest
    assert matched_epochs(ev, "fae", "wae") == ("final", "final")  # target 150: the WAE's 80 beats its 300
    assert matched_epochs(ev, "fae", "stab") == ("final", "final")  # no snapshots of the other


def test_the_sensitivity_table_says_which_readings_flip_a_verdict(tmp_path):
    table = sensitivity_table(evidence(tmp_path, SNAPSHOTS)).set_index(["claim", "arm", "reading"])
    key = ("fig1_normalised_bce", "fisher_exp")
    assert table.loc[(*key, "primary"), ["verdict", "flips"]].tolist() == ["reproduced", "no"]
    assert table.loc[(*key, "per_pixel_mse"), ["verdict", "flips"]].tolist() == ["contradicted", "yes"]
    assert table.loc[(*key, "absolute_rise"), "flips"] == "no"
    assert table.loc[(*key, "sd_axis"), "flips"] == "no"
    assert table.loc[(*key, "matched_clean_error"), ["verdict", "flips"]].tolist() == ["contradicted", "yes"]
    assert table.loc[("fig3_nmi", "fisher_exp", "nmi_all_points"), "flips"] == "n/a"  # no latent_full: no value
    assert (*key, "nmi_all_points") not in table.index  # that reading leaves Figure 1 alone
    assert ("fig3_nmi", "fisher_exp", "per_pixel_mse") not in table.index  # that reading leaves NMI alone
    assert {r.name for r in READINGS} == set(table.index.get_level_values("reading"))


def test_the_trajectory_per_epoch_and_whether_a_verdict_moves(tmp_path):
    ev = evidence(tmp_path, SNAPSHOTS)
    summaries = trajectory_table(ev).set_index(["model", "epoch", "quantity"])
    mean_g = sum(NOISE_GRID[1:]) / 11
    row = summaries.loc[("vae", "2", "nbce")]
    assert (row["n_seeds"], row["mean"]) == (3, pytest.approx(1 + 0.05 * mean_g))
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert ("auth", "2", "nbce") not in summaries.index
    moves = trajectory_verdicts(ev).set_index(["claim", "arm", "epoch"])
    assert moves.loc[("fig1_normalised_bce", "fisher_exp", "2"), "verdict"] == "contradicted"
    assert moves.loc[("fig1_normalised_bce", "fisher_exp", "final"), "verdict"] == "reproduced"
    assert moves.loc[("fig1_normalised_bce", "fisher_exp", "final"), "changes"] == "yes"
    assert moves.loc[("fig3_nmi_decay", "fisher_exp", "final"), "changes"] == "no"
    assert PRIMARY.epoch == "final"


def test_model_roles_follow_the_specs_not_the_names():
    models = {"fae": {"method": "fisher_ae", "prior": "polynomial"}, "fae_g": {"method": "fisher_ae", "prior": "gaussian"},
              "vae": {"method": "vae"}, "wae": {"method": "wae_gan"},
              "abl": {"method": "fisher_ae", "prior": "polynomial", "fisher_variant": "reparam_total_derivative"}}
    roles = model_roles(models)
    assert roles == {"fisher_exp": "fae", "fisher_gauss": "fae_g", "vae": "vae", "wae_gan": "wae", "authors": "abl"}
    assert "authors" not in model_roles({k: v for k, v in models.items() if k != "abl"})


# --------------------------------------------------------------------------- CLI

MODELS = {"fae": {"method": "fisher_ae", "prior": "polynomial", "label": "Fisher AE (Exp. prior)"},
          "fae_g": {"method": "fisher_ae", "prior": "gaussian", "label": "Fisher AE (Gaussian prior)"},
          "vae": {"method": "vae", "label": "VAE"}, "wae": {"method": "wae_gan", "label": "WAE-GAN"}}


def write_part(root, seeds, **changes) -> None:
    """A published part: per-run CSVs of MODELS (of ``changes["run_models"]`` where given) for
    ``seeds`` and its config.yaml."""
    runs(root, {m: SPECS[m] for m in changes.get("run_models", MODELS)}, seeds)
    config = {"results": str(root), "seeds": list(seeds), "datasets": {"mnist": {"source": "embedded"}},
              "models": MODELS, **changes}
    (root / "config.yaml").write_text(yaml.safe_dump(config))


def claims_argv(root, *extra):
    return ["claims", "--config", str(root / "config.yaml"), "--inputs", *map(str, find_run_files(root)), *extra,
            "--out-csv", str(root / "tables/claims.csv"), "--out-md", str(root / "tables/claims.md")]


def test_claims_command_writes_verdicts_and_numbers(tmp_path):
    write_part(tmp_path, (0, 1, 2))
    (tmp_path / "classifier.json").write_text('{"test_accuracy": 0.987, "n_test": 10000}')
    assert main(claims_argv(tmp_path, "--classifier", str(tmp_path / "classifier.json"))) == 0
    table = pd.read_csv(tmp_path / "tables/claims.csv")
    assert list(table.columns) == CLAIM_COLUMNS and set(table["verdict"]) <= set(VERDICTS)
    first = table.iloc[0]
    assert (first["claim"], first["arm"], first["versus"], first["verdict"]) == ("fig1_normalised_bce", "fisher_exp",
                                                                                 "vae", "reproduced")
    text = (tmp_path / "tables/claims.md").read_text()
    assert text.startswith(f"# MNIST: the paper's claims tested on this run\n\nRun: `{tmp_path}`, training seeds "
                           "[0, 1, 2]; domain classifier test accuracy 0.9870 (10000 test digits).")
    assert "| Fisher AE (Exp. prior) | 150 [147.5, 152.5] (n=3) |" in text  # clean BCE: 149, 150, 151
    assert "\n## Numbers per model (final epoch)\n" in text and "Readings skipped" not in text


def test_claims_command_with_one_seed_says_so(tmp_path):
    write_part(tmp_path, (0,))
    assert main(claims_argv(tmp_path)) == 0
    table = pd.read_csv(tmp_path / "tables/claims.csv")
    assert set(table["verdict"]) == {"inconclusive"}
    assert set(table["reason"]) <= {"one seed", "not evaluated: no model plays authors"}


def test_claims_command_rejects_an_unreadable_input(tmp_path, capsys):
    write_part(tmp_path, (0,))
    (tmp_path / "latent/mnist/vae/seed0.csv").write_bytes(b"")
    assert main(claims_argv(tmp_path)) == 2
    assert "latent/mnist/vae/seed0.csv is not a readable per-run CSV" in capsys.readouterr().err


def test_reproduction_judges_all_parts_together(tmp_path):
    write_part(tmp_path / "seed0", (0,))
    write_part(tmp_path / "seeds12", (1, 2))
    out = tmp_path / "out"
    assert main(["reproduction", "--parts", str(tmp_path / "seed0"), str(tmp_path / "seeds12"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "claims_mnist.csv", "claims_mnist.md", "figure1_mnist_bce.csv", "figure1_mnist_bce.png", "figure3_mnist_nmi.csv",
        "figure3_mnist_nmi.png", "sensitivity_mnist.csv", "sensitivity_mnist.md", "trajectory_mnist.csv",
        "trajectory_mnist.md", "trajectory_verdicts_mnist.csv"]
    figure1 = pd.read_csv(out / "figure1_mnist_bce.csv")  # every part's seeds in one figure, with seed intervals
    assert set(figure1["n_seeds"]) == {3} and figure1["ci95_low"].notna().all()
    claims = pd.read_csv(out / "claims_mnist.csv")
    fig1 = claims[(claims["claim"] == "fig1_normalised_bce") & (claims["arm"] == "fisher_exp")]
    assert list(fig1["n_seeds"]) == [3, 3] and set(fig1["verdict"]) == {"reproduced"}
    sensitivity = pd.read_csv(out / "sensitivity_mnist.csv")
    flipped = sensitivity[sensitivity["flips"] == "yes"]
    assert ("fig1_normalised_bce", "fisher_exp", "per_pixel_mse") in set(zip(flipped["claim"], flipped["arm"],
                                                                                flipped["reading"]))
    assert "verdict(s) flip relative to the primary reading: " in (out / "sensitivity_mnist.md").read_text()
    assert "Parts: " in (out / "claims_mnist.md").read_text()


def test_reproduction_takes_a_seed_split_by_models(tmp_path):
    """Seed 0 in two parts of two models each (run_models), seeds 1 and 2 in a third: one judgement
    over 3 seeds of every model; a model run at seed 0 in two parts is refused."""
    write_part(tmp_path / "seed0", (0,), run_models=["fae", "vae"])
    write_part(tmp_path / "seed0-other", (0,), run_models=["fae_g", "wae"])
    write_part(tmp_path / "seeds12", (1, 2))
    parts = [str(tmp_path / name) for name in ("seed0", "seed0-other", "seeds12")]
    assert main(["reproduction", "--parts", *parts, "--out", str(tmp_path / "out")]) == 0
    figure1 = pd.read_csv(tmp_path / "out/figure1_mnist_bce.csv")
    assert figure1.groupby("model")["n_seeds"].min().to_dict() == {"fae": 3, "fae_g": 3, "vae": 3, "wae": 3}
    assert "Parts: " + ", ".join(parts) + "; training seeds [0, 1, 2]." in (tmp_path / "out/claims_mnist.md").read_text()
    write_part(tmp_path / "again", (0,), run_models=["vae"])
    with pytest.raises(UserError, match="both hold vae seed 0"):
        reproduction([*parts, str(tmp_path / "again")], str(tmp_path / "out2"))


def test_parts_may_differ_in_a_models_own_seeds_only(tmp_path):
    """A model's own ``seeds`` say which runs a part made (a one-seed arm in one part, its other seeds in
    another); any other setting of a model entry must agree."""
    write_part(tmp_path / "a", (0,))
    write_part(tmp_path / "b", (1,), run_models=["vae"])
    config = yaml.safe_load((tmp_path / "a/config.yaml").read_text())
    config["models"]["vae"]["seeds"] = [0]
    (tmp_path / "a/config.yaml").write_text(yaml.safe_dump(config))
    parts = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert main(["reproduction", "--parts", *parts, "--out", str(tmp_path / "out")]) == 0
    config["models"]["vae"]["label"] = "another VAE"
    (tmp_path / "a/config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match=r"differs from .* in models.vae.label \(parts may differ in seeds, "
                                        r"models.\*.seeds, run_models, results only\)"):
        reproduction(parts, str(tmp_path / "out2"))


def test_reproduction_refuses_parts_of_different_runs(tmp_path, capsys):
    write_part(tmp_path / "a", (0,))
    write_part(tmp_path / "b", (1,), training={"epochs": 3}, datasets={"mnist": {"source": "embedded", "latent_dim": 4}})
    argv = ["reproduction", "--parts", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'b'}/config.yaml differs from {tmp_path / 'a'}/config.yaml in " \
           "datasets.mnist.latent_dim, training.epochs (parts may differ in seeds, models.*.seeds, run_models, results " \
           "only)" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "b/config.yaml").unlink()
    assert main(argv) == 2
    assert f"{tmp_path / 'b'} has no config.yaml; give the directories written by `publish`" in capsys.readouterr().err


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


def test_publish_puts_the_old_run_back_when_the_new_one_cannot_be_moved_in(tmp_path, monkeypatch):
    from pathlib import Path

    from fisherae import publish

    old, new = tmp_path / "run", tmp_path / ".staging"
    (old / "figures").mkdir(parents=True)
    (old / "figures" / "f1.png").write_text("published before")
    new.mkdir()
    rename = Path.rename

    def refuse_the_new_one(self, target):
        if self == new:
            raise OSError(28, "No space left on device")
        return rename(self, target)
    monkeypatch.setattr(Path, "rename", refuse_the_new_one)
    with pytest.raises(OSError, match="No space left"):
        publish._replace_dir(new, old)
    assert (old / "figures" / "f1.png").read_text() == "published before"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging", "run"]  # no backup left hidden


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
    # published before its claims ran: the config that Figure 1's job read
    (results / "logs/tables/claims_mnist.log").unlink()
    (results / "logs/figures").mkdir()
    (results / "logs/figures/figure1_mnist_bce.log").write_text(f"fisherae figure: config {results}/configs/4567cdef.yaml\n")
    assert main(["publish", "--results", str(results), "--out", str(out)]) == 0
    assert (out / "config.yaml").read_text() == "seeds: [0, 1]\n"



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
