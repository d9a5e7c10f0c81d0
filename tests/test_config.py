"""Config loading (issue 10, item 6): numbers written `1e-3` in YAML and values given with
Snakemake's --config are taken where the schema asks for a number, or refused with a
message naming where the value came from and how to write it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fisherae.config import ConfigError, coerce_config, load_config, validate_config

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


def test_snakemake_config_seeds_list_dry_run(tmp_path):
    workdir = _workflow_copy(tmp_path)
    proc = _snakemake(workdir, "-n", "--cores", "1", "--config", "seeds=[0,1,2]")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    effective = yaml.safe_load((workdir / "results" / "smoke" / "config.yaml").read_text())
    assert effective["seeds"] == [0, 1, 2]


def test_snakemake_config_bad_value_names_config(tmp_path):
    workdir = _workflow_copy(tmp_path)
    proc = _snakemake(workdir, "-n", "--cores", "1", "--config", "seeds=[x]")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "seeds.0 (from --config)" in output and "--config 'seeds=[0,1,2]'" in output
    assert "invalid configuration given with --config (on top of" in output


def test_snakemake_configfile_exponent_number_dry_run(tmp_path):
    workdir = _workflow_copy(tmp_path)
    (workdir / "extra.yaml").write_text("training: {lr: 1e-3}\n")
    proc = _snakemake(workdir, "-n", "--cores", "1", "--configfile", "config/smoke.yaml", "extra.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    effective = yaml.safe_load((workdir / "results" / "smoke" / "config.yaml").read_text())
    assert effective["training"]["lr"] == 0.001
