"""The Snakemake DAG: dry runs of every config, config validation, the smoke DAG end to end
(outputs, nothing to redo, a deleted intermediate reruns only its dependents, the report)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ["config/smoke.yaml", "config/cpu.yaml", "config/config.yaml"]
GPU_RULES = {"train", "train_classifier", "noise_sweep", "grids", "latent", "sample", "sample_polynomial_prior", "fid",
             "diagnostics"}
FIGURES = {"mnist": ["figure1_mnist_bce", "figure2_mnist_grids", "figure3_mnist_nmi", "figure4_mnist_tsne"],
           "celeba": ["figure5_celeba_mse", "figure6_celeba_grids"]}


def copy_repo(dst: Path) -> Path:
    """The repository's files (tracked, or untracked and not ignored) copied to ``dst``: a clean
    checkout without results/, .snakemake/ or anything else git ignores."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if not os.path.lexists(src):
            continue  # deleted in the working tree
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    return dst


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 3600,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in ``workdir`` with this interpreter's environment (PATH first)."""
    env = {**os.environ, **(env or {})}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


def dry_run_jobs(output: str) -> list[dict]:
    """The jobs a ``snakemake -n`` output lists: rule, output files, resources (as a dict)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", output):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if not head:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", fields.get("resources", "")))
        jobs.append({"rule": head.group(1), "output": fields.get("output", "").split(", "),
                     "resources": resources})
    return jobs


def expected_counts(config: dict) -> dict[str, int]:
    """Jobs per rule of a complete run of ``config`` (the DAG's design, written out)."""
    datasets, models, seeds = config["datasets"], config["models"], config["seeds"]
    d, m, s = len(datasets), len(models), len(seeds)
    poly = sum(spec.get("prior") == "polynomial" for spec in models.values())
    mnist = "mnist" in datasets
    features = config.get("evaluation", {}).get("fid", {}).get("features", "both")
    counts = {"data": d, "train": d * m * s, "noise_sweep": d * m * s, "sample": d * (m - poly) * s,
              "sample_polynomial_prior": d * poly * s, "grids": d * m, "latent": m * s if mnist else 0,
              "train_classifier": int(mnist and features in ("classifier", "both")), "fid": d * m * s,
              "figure": sum(len(FIGURES[name]) for name in datasets), "table1": 1, "all": 1,
              "diagnostics": m * s if mnist else 0, "claims": int(mnist)}
    return {rule: n for rule, n in counts.items() if n}


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("repo"))


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run_schedules_every_output(repo_copy, configfile):
    config = yaml.safe_load((REPO / configfile).read_text())
    out = snakemake(repo_copy, "-n", "--cores", "8", "--resources", "gpu=2", "--configfile", configfile).stdout
    jobs = dry_run_jobs(out)
    counts = {rule: sum(j["rule"] == rule for j in jobs) for rule in {j["rule"] for j in jobs}}
    assert counts == expected_counts(config)
    outputs = {f for job in jobs for f in job["output"]}
    results = config["results"]
    figures = [f"{results}/figures/{name}.png" for ds in config["datasets"] for name in FIGURES[ds]]
    absent = [name for ds in FIGURES if ds not in config["datasets"] for name in FIGURES[ds]]
    assert set(figures) <= outputs
    assert not [f for f in outputs if any(name in f for name in absent)]
    assert {f"{results}/tables/table1_fid.csv", f"{results}/tables/table1_fid.md"} <= outputs
    for ds in config["datasets"]:
        for model in config["models"]:
            for seed in config["seeds"]:
                run = f"{ds}/{model}/seed{seed}"
                assert {f"{results}/runs/{run}/model.pt", f"{results}/sweeps/{run}.csv",
                        f"{results}/samples/{run}.npz", f"{results}/fid/{run}.csv"} <= outputs
                if config["models"][model].get("prior") == "polynomial":
                    assert f"{results}/sampling/{run}.csv" in outputs
    for job in jobs:
        assert (job["resources"].get("gpu") == "1") == (job["rule"] in GPU_RULES), job


def test_dry_run_through_the_slurm_profile(repo_copy):
    """The SLURM profile parses and gives every GPU rule one GPU on the gpu partition."""
    out = snakemake(repo_copy, "-n", "--profile", "workflow/profiles/slurm", "--configfile", "config/config.yaml",
                    env={"SNAKEMAKE_PROFILE": ""}).stdout
    jobs = dry_run_jobs(out)
    assert jobs
    for job in jobs:
        if job["rule"] == "all":
            continue
        gpu = job["rule"] in GPU_RULES
        assert job["resources"].get("slurm_partition") == ("gpu" if gpu else "cpu"), job
        assert (job["resources"].get("gpu") == "1") == gpu, job
        assert int(job["resources"]["runtime"]) > 0 and int(job["resources"]["mem_mb"]) > 0, job


def test_slurm_profile_leaves_gpu_flags_to_the_plugin():
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    sections = [profile.get("default-resources", {}), *profile.get("set-resources", {}).values()]
    for section in sections:
        assert not re.search(r"--(gres|gpus)", str(section.get("slurm_extra", ""))), section
    assert set(profile["set-resources"]) >= GPU_RULES
    assert all(profile["set-resources"][rule]["gpu"] == 1 for rule in GPU_RULES)


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["training"].update(epoch=3), "training: unknown key(s) 'epoch'"),
    (lambda c: c["datasets"]["mnist"].update(source="kaggle"), "datasets.mnist.source"),
    (lambda c: c.update(seeds=[]), "seeds"),
    (lambda c: c["evaluation"]["fid"].update(n_samples=-1), "evaluation.fid.n_samples"),
])
def test_bad_config_fails_at_validation_naming_the_key(repo_copy, tmp_path, edit, key):
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    edit(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = snakemake(repo_copy, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "invalid configuration" in message and key in message, message[-3000:]
    assert str(bad) in message


def test_command_line_configfile_replaces_the_default(repo_copy):
    """--configfile config/cpu.yaml (MNIST only) must not inherit smoke.yaml's CelebA."""
    out = snakemake(repo_copy, "-n", "--cores", "1", "--configfile", "config/cpu.yaml").stdout
    assert "celeba" not in out


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fisherae", *args], capture_output=True, text=True)


def test_data_stage_writes_a_manifest_and_names_a_missing_root(tmp_path):
    out = tmp_path / "mnist.json"
    proc = _cli("data", "--config", str(REPO / "config/smoke.yaml"), "--dataset", "mnist", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(out.read_text())
    assert manifest == {"dataset": "mnist", "source": "embedded", "image_shape": [1, 28, 28],
                        "n_train": 2100, "n_test": 1000}
    config = yaml.safe_load((REPO / "config/cpu.yaml").read_text())
    config["datasets"]["mnist"].update(root=str(tmp_path / "nowhere"), download=False)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    proc = _cli("data", "--config", str(tmp_path / "cfg.yaml"), "--dataset", "mnist", "--out", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "datasets.mnist.root" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_conda_env_matches_pyproject():
    env = yaml.safe_load((REPO / "workflow/envs/fisherae.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    driver = {d for d in project if d.startswith("snakemake")}  # run the DAG, not its rules
    assert set(pip) == set(project) - driver
    assert (REPO / "workflow/envs/fisherae.post-deploy.sh").stat().st_mode & 0o111


def test_every_rule_only_calls_the_cli():
    """No logic in the rules: each shell command is one `python -m fisherae` call into its log."""
    rules = 0
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.findall(r"\n    shell:\n((?:        .*\n)+)", smk.read_text()):
            command = "".join(re.findall(r'"(.*)"', block))
            assert command.startswith("python -m fisherae ") and command.endswith(" > {log} 2>&1"), command
            assert not re.search(r"[;&|`$]|\bif\b", command.removesuffix(" 2>&1")), command
            rules += 1
    assert rules == 12  # sample_polynomial_prior reuses sample's


def test_schema_is_the_package_schema():
    link = REPO / "workflow/schemas/config.schema.json"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (REPO / "src/fisherae/schemas/config.schema.json").resolve()


# ---------------------------------------------------------------------------------------- slow

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke DAG run once from a clean copy of the repository: (workdir, seconds, output)."""
    work = copy_repo(tmp_path_factory.mktemp("smoke"))
    start = time.monotonic()
    proc = snakemake(work, "--cores", "2", "--configfile", "config/smoke.yaml")
    return work, time.monotonic() - start, proc.stdout + proc.stderr


@pytest.mark.slow
def test_smoke_dag_writes_every_figure_and_table(smoke_run):
    work, seconds, _ = smoke_run
    results = work / "results/smoke"
    names = [f"figures/{n}.{ext}" for names in FIGURES.values() for n in names for ext in ("png", "csv")]
    names += ["tables/table1_fid.csv", "tables/table1_fid.md", "config.yaml", "classifier/mnist.json",
              "tables/claims_mnist.csv", "tables/claims_mnist.md"]
    for name in names:
        assert (results / name).is_file() and (results / name).stat().st_size > 0, name
    for name in [n for n in names if n.endswith(".png")]:
        assert (results / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert len(list((results / "logs").rglob("*.log"))) == sum(expected_counts(
        yaml.safe_load((work / "config/smoke.yaml").read_text())).values()) - 1  # `all` has no log
    assert list((results / "benchmarks/train").rglob("*.tsv"))
    epochs = yaml.safe_load((work / "config/smoke.yaml").read_text())["training"]["epochs"]
    for log in (results / "logs/train").rglob("*.log"):  # what the job said: one line per epoch, held-out loss
        lines = log.read_text().splitlines()
        assert "from scratch" in lines[0] and lines[-1].endswith("model.pt"), lines
        assert sum(f"epoch {e}/{epochs}: loss " in line and "; held-out loss " in line
                   for line in lines for e in range(1, epochs + 1)) == epochs, lines
    print(f"smoke DAG: {seconds:.0f} s")


@pytest.mark.slow
def test_smoke_rerun_has_nothing_to_do(smoke_run):
    work, _, _ = smoke_run
    out = snakemake(work, "-n", "--cores", "2", "--configfile", "config/smoke.yaml").stdout
    assert "Nothing to be done" in out, out[-3000:]


@pytest.mark.slow
def test_deleting_a_sweep_reruns_only_it_and_its_figure(smoke_run):
    work, _, _ = smoke_run
    sweep = work / "results/smoke/sweeps/mnist/vae/seed0.csv"
    sweep.unlink()
    dry = snakemake(work, "-n", "--cores", "2", "--configfile", "config/smoke.yaml").stdout
    jobs = dry_run_jobs(dry)
    assert sorted(j["rule"] for j in jobs) == ["all", "claims", "figure", "noise_sweep"]
    assert next(j for j in jobs if j["rule"] == "figure")["output"][0].endswith("figure1_mnist_bce.png")
    snakemake(work, "--cores", "2", "--configfile", "config/smoke.yaml")
    assert sweep.is_file()
    assert "Nothing to be done" in snakemake(work, "-n", "--cores", "2", "--configfile", "config/smoke.yaml").stdout


@pytest.mark.slow
def test_smoke_report_is_self_contained(smoke_run):
    work, _, _ = smoke_run
    snakemake(work, "--report", "report.html", "--configfile", "config/smoke.yaml")
    html = (work / "report.html").read_text()
    assert len(html) > 100_000
    for name in [n for names in FIGURES.values() for n in names] + ["table1_fid.csv"]:
        assert name in html, name
