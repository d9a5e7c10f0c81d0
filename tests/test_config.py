"""Config loading (issue 10, item 6): numbers written `1e-3` in YAML and values given with
Snakemake's --config are taken where the schema asks for a number, or refused with a
message naming where the value came from and how to write it. One config file per DAG, which no
other invocation changes (item 1), and the config keys each command reads (item 2)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fisherae.config import (ConfigError, coerce_config, config_named_in, freeze_config, load_config, schema,
                             validate_config)
from fisherae.config_keys import ADDED, INERT, READS, TRAINED, ConfigView, UndeclaredConfigKey, rerun_settings

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "seeds: [0]\ndatasets: {mnist: {source: embedded}}\nmodels: {vae: {method: vae}}\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(MINIMAL + text)
    return path


def test_exponent_numbers_without_a_dot_load_as_numbers(tmp_path):
    path = _write(tmp_path, "training: {lr: 1e-3, decoder_var: 1E5, wae_gan: {adversary_lr: -2e-4}}\n")
    assert yaml.safe_load(path.read_text())["training"]["lr"] == "1e-3"  # what PyYAML (YAML 1.1) makes of it
    with pytest.raises(ConfigError, match="adversary_lr"):  # -2e-4 is a number now, refused as negative
        load_config(path)
    path = _write(tmp_path, "training: {lr: 1e-3, decoder_var: 1E5, epochs: 1e2}\n")
    training = load_config(path)["training"]
    assert training["lr"] == 0.001 and training["decoder_var"] == 1e5 and training["epochs"] == 100
    assert type(training["epochs"]) is int


def test_strings_the_schema_wants_stay_strings(tmp_path):
    path = _write(tmp_path, "results: 1e3\nmodels: {vae: {method: vae, label: 1e-3}}\n")
    config = load_config(path)
    assert config["results"] == "1e3" and config["models"]["vae"]["label"] == "1e-3"


def test_text_where_a_number_is_needed_names_the_file_key_and_how_to_write_it(tmp_path):
    path = _write(tmp_path, "training: {lr: fast}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "training.lr" in message and "'fast' is not a number" in message
    assert "lr: 2.0e-4" in message  # a spelling that is a number in YAML 1.1 too


def test_command_line_values_are_coerced_and_blamed_on_config():
    config = yaml.safe_load(MINIMAL)
    config["seeds"] = ["0", "1", "2"]  # what Snakemake makes of --config 'seeds=[0,1,2]'
    assert coerce_config(config)["seeds"] == [0, 1, 2]
    config["seeds"] = ["x"]
    with pytest.raises(ConfigError) as err:
        validate_config(config, "config/smoke.yaml", command_line={"seeds": ["x"]})
    head, line = str(err.value).splitlines()[:2]
    assert head.startswith("invalid configuration given with --config")
    assert "seeds.0 (from --config)" in line and "--config 'seeds=[0,1,2]'" in line and "--configfile" in line
    assert "config/smoke.yaml" not in line


def _workflow_copy(dst: Path) -> Path:
    """workflow/ (the Snakefile, the schema link resolved) and config/ in ``dst``, so that a dry run
    writes its results/ there and not in the checkout."""
    for name in ("workflow", "config"):
        shutil.copytree(REPO / name, dst / name, symlinks=False)
    return dst


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env, text=True,
                          capture_output=True, timeout=600)


def _dag_config(workdir: Path) -> dict:
    """The one config a dry run in ``workdir`` wrote for its DAG's jobs."""
    (path,) = (workdir / "results" / "smoke" / "configs").glob("*.yaml")
    return yaml.safe_load(path.read_text())


def test_snakemake_config_seeds_list_dry_run(tmp_path):
    workdir = _workflow_copy(tmp_path)
    proc = _snakemake(workdir, "-n", "--cores", "1", "--config", "seeds=[0,1,2]")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    effective = _dag_config(workdir)
    assert effective["seeds"] == [0, 1, 2]


def test_snakemake_config_bad_value_names_config(tmp_path):
    workdir = _workflow_copy(tmp_path)
    proc = _snakemake(workdir, "-n", "--cores", "1", "--config", "seeds=[x]")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "seeds.0 (from --config)" in output and "--config 'seeds=[0,1,2]'" in output
    assert "invalid configuration given with --config (on top of" in output


def test_run_models_must_name_configured_models():
    config = yaml.safe_load(MINIMAL)
    assert "run_models" not in validate_config(config)  # absent: every entry runs
    config["run_models"] = ["vae", "vea"]
    with pytest.raises(ConfigError, match=r"^cfg.yaml: run_models names vea, not an entry of models \(vae\)"):
        validate_config(config, "cfg.yaml")
    with pytest.raises(ConfigError, match=r"^--config: run_models names vea"):
        validate_config(config, "cfg.yaml", command_line={"run_models": ["vae", "vea"]})


def test_snakemake_run_models_narrow_the_runs(tmp_path):
    """--config 'run_models=[...]' trains and evaluates those models only (a part of a reproduction)."""
    workdir = _workflow_copy(tmp_path)
    proc = _snakemake(workdir, "-n", "--cores", "1", "--config", "run_models=[vae]")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trained = set(re.findall(r"runs/mnist/(\w+)/seed\d+/model\.pt", proc.stdout))
    assert trained == {"vae"}
    proc = _snakemake(workdir, "-n", "--cores", "1", "--config", "run_models=[vea]")
    assert proc.returncode != 0 and "--config: run_models names vea, not an entry of models" in proc.stdout + proc.stderr


def test_snakemake_configfile_exponent_number_dry_run(tmp_path):
    workdir = _workflow_copy(tmp_path)
    (workdir / "extra.yaml").write_text("training: {lr: 1e-3}\n")
    proc = _snakemake(workdir, "-n", "--cores", "1", "--configfile", "config/smoke.yaml", "extra.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    effective = _dag_config(workdir)
    assert effective["training"]["lr"] == 0.001


# ------------------------------------------------ the config keys each command reads (issue 10, item 2)

def _smoke() -> dict:
    return load_config(REPO / "config/smoke.yaml")


def test_a_command_reading_an_undeclared_key_fails():
    view = ConfigView(_smoke(), "noise-sweep", dataset="mnist", model="vae")
    assert view["evaluation"]["noise_sweep"]["sigma2"]["mnist"] == [0.0, 0.2, 0.5, 1.0]
    assert view["training"]["threads"] == 1 and view["datasets"]["mnist"]["root"] == "data"  # inert
    assert view["training"]["lr"] == 5e-3  # checked against the model file
    assert "celeba" in view["datasets"] and sorted(view["models"]) == sorted(_smoke()["models"])
    for read in (lambda v: v["evaluation"]["noise_sweep"]["sigma2"]["celeba"],  # another data set's
                 lambda v: v["evaluation"]["grids"], lambda v: v["models"]["vae"]["label"],
                 lambda v: v["evaluation"].get("latent"), lambda v: dict(v["datasets"]["celeba"])):
        with pytest.raises(UndeclaredConfigKey, match="'noise-sweep' read config key"):
            read(view)


def test_every_command_with_a_config_declares_the_keys_it_reads():
    from fisherae.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    with_config = {name for name, parser in commands.items() if "--config" in parser._option_string_actions}
    assert with_config == set(READS)
    schema_keys = _schema_keys(schema(), schema(), "")
    for name, reads in READS.items():  # each declared key names a key of the schema (no typo)
        for key in (*reads.determines, *reads.checks, *INERT):
            key = key.format(dataset="mnist", model="*").replace("datasets.*.", "datasets.mnist.")
            parts = key.split(".")
            assert any(k.split(".")[:len(parts)] == parts or parts[:k.count(".") + 1] == k.split(".")
                       for k in schema_keys), (name, key)


def _schema_keys(node: dict, root: dict, prefix: str) -> set[str]:
    """Every leaf key of the schema below ``node`` (a dotted prefix; mappings of named entries as *)."""
    from fisherae.config import _resolve

    node = _resolve(node, root)
    properties = node.get("properties") or {}
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("type") == "object":
        return _schema_keys(extra, root, f"{prefix}*.")
    if not properties:
        return {prefix.rstrip(".")}
    return set().union(*(_schema_keys(sub, root, f"{prefix}{name}.") for name, sub in properties.items()))


def test_the_training_fingerprint_is_every_training_key_but_the_inert_ones_labels_and_epochs():
    root = schema()
    keys = {k.replace("datasets.mnist.", "datasets.*.") for k in _schema_keys(root, root, "")
            if k.split(".")[0] in ("datasets", "models", "training") and not k.startswith("datasets.celeba")}
    keys = {k.split(".wae_gan.")[0] + ".wae_gan" if ".wae_gan." in k else k for k in keys}
    trained = {k.replace("{dataset}", "*").replace("{model}", "*") for k in TRAINED}
    assert keys == trained | {k for k in INERT if k.split(".")[0] in ("datasets", "training")} | {
        "models.*.label",  # shown in figures and tables, not trained on
        "models.*.seeds",  # which runs the DAG makes; each run's own seed is in its fingerprint
        "training.epochs",  # a checkpoint at epoch e resumes under any epochs >= e
        "training.snapshot_epochs"}  # which epochs are also saved, not what is trained
    assert all(len(why) > 20 for why in INERT.values())


def test_rerun_settings_hold_the_declared_values_without_the_inert_ones():
    config = _smoke()
    train = json.loads(rerun_settings("train", config, {"dataset": "mnist", "model": "vae", "seed": "0"}))
    assert train["training.lr"] == 5e-3 and train["models.vae.method"] == "vae" and train["training.epochs"] == 2
    assert not [k for k in train if k.endswith(("root", "download", "threads", "label"))]
    assert "models.wae_gan.method" not in train and "datasets.celeba.width" not in train
    figure = json.loads(rerun_settings("figure", config, {"dataset": "mnist"}))
    assert figure == {**{f"models.{m}.label": spec["label"] for m, spec in config["models"].items()},
                      **{f"datasets.mnist.{key}": config["datasets"]["mnist"][key] for key in ("source", "width")},
                      "training.epochs": 2}  # the training note on the figure's face: its own data set only
    latent = json.loads(rerun_settings("latent", config, {"dataset": "mnist", "model": "vae", "seed": "0"}))
    assert latent["evaluation.noise_sweep.noise_seed"] == 1234  # the default, read by latent (and recorded)
    assert latent["evaluation.noise_sweep.batch_size"] == 250


def test_a_key_added_since_jobs_ran_reruns_none_of_them_at_the_value_they_had():
    """A job's params leave out a key of ADDED while it holds the value older jobs were made with
    (so the key's arrival reruns nothing), and hold it at any other value."""
    config = _smoke()
    wildcards = {"dataset": "mnist", "model": "vae", "seed": "0"}
    assert config["training"]["tf32"] is ADDED["training.tf32"] is True
    assert "training.tf32" not in json.loads(rerun_settings("train", config, wildcards))
    config["training"]["tf32"] = False
    assert json.loads(rerun_settings("train", config, wildcards))["training.tf32"] is False
    fid = {"dataset": "mnist", "model": "vae", "seed": "0"}
    assert "evaluation.fid.inception_weights" not in json.loads(rerun_settings("fid", config, fid))
    config["evaluation"]["fid"]["inception_weights"] = "/data/pt_inception-2015-12-05-6726825d.pth"
    assert json.loads(rerun_settings("fid", config, fid))["evaluation.fid.inception_weights"] == \
        "/data/pt_inception-2015-12-05-6726825d.pth"  # set after a run without the file: fid reruns


def test_a_dag_config_is_written_once_under_its_hash(tmp_path):
    config = _smoke()
    path = freeze_config(config, tmp_path)
    assert path.parent == tmp_path / "configs" and yaml.safe_load(path.read_text()) == config
    before = path.stat()
    assert freeze_config(config, tmp_path) == path and path.stat().st_mtime_ns == before.st_mtime_ns
    other = freeze_config({**config, "seeds": [0, 1, 2]}, tmp_path)
    assert other != path and path.stat().st_ino == before.st_ino
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, other.name])  # no temp files left


def test_a_failed_write_of_a_dag_config_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full_disk(self, text):
        self.open("w").write(text[:10])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        freeze_config(_smoke(), tmp_path)
    assert list((tmp_path / "configs").iterdir()) == []


def test_a_config_file_that_is_not_one_is_named(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is not a file; pass --config"):
        load_config(tmp_path)
    (tmp_path / "model.yaml").write_bytes(b"\x80\x02 a pickle, not YAML")
    with pytest.raises(ConfigError, match="model.yaml: not valid YAML"):
        load_config(tmp_path / "model.yaml")


def test_a_dry_run_with_another_config_changes_nothing_a_scheduled_job_reads(tmp_path):
    """A real run's data job is scheduled, then held before it starts (a `python` on PATH that waits
    for a file); a dry run with another n_train runs meanwhile; the job then counts the images of its
    own run's config."""
    workdir = _workflow_copy(tmp_path / "work")
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "python").write_text(f'#!/bin/sh\ntouch "{gate}/started"\n'
                                 f'while [ ! -e "{gate}/go" ]; do sleep 0.05; done\nexec "{sys.executable}" "$@"\n')
    (gate / "python").chmod(0o755)
    other = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    n_train = other["datasets"]["mnist"]["n_train"]
    other["datasets"]["mnist"]["n_train"] = 500
    (workdir / "other.yaml").write_text(yaml.safe_dump(other))
    env = {**os.environ, "PATH": f"{gate}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", "results/smoke/data/mnist.json"],
                           cwd=workdir, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (gate / "started").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[0]
            time.sleep(0.05)
        dry = _snakemake(workdir, "-n", "--cores", "1", "--configfile", "other.yaml")
        assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    finally:
        (gate / "go").touch()
        output = run.communicate(timeout=300)[0]
    assert run.returncode == 0, output[-3000:]
    results = workdir / "results" / "smoke"
    assert json.loads((results / "data/mnist.json").read_text())["n_train"] == n_train
    named = config_named_in(results / "logs/data/mnist.log")
    assert yaml.safe_load((workdir / named).read_text())["datasets"]["mnist"]["n_train"] == n_train
    assert len(list((results / "configs").glob("*.yaml"))) == 2  # the dry run's own, beside the run's
