"""The Snakemake DAG: dry runs of every config, config validation, the smoke DAG end to end
(outputs, nothing to redo, a deleted intermediate reruns only its dependents, the report)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from fisherae import paper
from fisherae.config import config_named_in, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ["config/smoke.yaml", "config/cpu.yaml", "config/config.yaml", "config/reproduction.yaml"]
# The rules whose command computes on a GPU where there is one; latent, figures, tables and claims are CPU work.
GPU_RULES = {"train", "train_classifier", "noise_sweep", "snapshot_noise_sweep", "grids",
             "sample_polynomial_prior", "fid", "fid_exact", "diagnose"}
# Rules whose command takes a device for other jobs but not for theirs: `sample` draws N(0, I) on the CPU.
CPU_RULES_OF_DEVICE_COMMANDS = {"sample"}
FIGURES = {dataset: [f.stem for f in paper.FIGURES if f.dataset == dataset] for dataset in ("mnist", "celeba")}


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
    """The jobs a ``snakemake -n`` output lists: rule, input and output files, resources and wildcards (as dicts),
    and the shell command where the output has them (``-p``)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", output):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if not head:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", fields.get("resources", "")))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        jobs.append({"rule": head.group(1), "input": fields.get("input", "").split(", "),
                     "output": fields.get("output", "").split(", "),
                     "resources": resources, "shell": shell.group(1) if shell else None,
                     "wildcards": dict(re.findall(r"(\w+)=(\w+)", fields.get("wildcards", "")))})
    return jobs


def model_seeds(config: dict, model: str) -> list:
    """The seeds ``model`` trains with: the config's, narrowed to those its entry lists."""
    return [seed for seed in config["seeds"] if seed in config["models"][model].get("seeds", config["seeds"])]


def normalisable_prior(config: dict, model: str) -> bool:
    """Whether ``model`` of a raw config has a normalisable polynomial prior (its runs get fid_exact)."""
    entry = config["models"][model]
    return entry.get("prior") == "polynomial" and entry.get(
        "poly_normalisable", config.get("training", {}).get("poly_normalisable", False))


def expected_counts(config: dict) -> dict[str, int]:
    """Jobs per rule of a complete run of ``config`` (the DAG's design, written out)."""
    datasets, models = config["datasets"], config["models"]
    d = len(datasets)
    runs = {model: len(model_seeds(config, model)) for model in models}
    r, trained = sum(runs.values()), sum(n > 0 for n in runs.values())  # runs per data set; models with one
    poly = sum(n for model, n in runs.items() if models[model].get("prior") == "polynomial")
    exact = sum(n for model, n in runs.items() if normalisable_prior(config, model))
    mnist = "mnist" in datasets
    features = config.get("evaluation", {}).get("fid", {}).get("features", "both")
    snapshots = len(config.get("training", {}).get("snapshot_epochs", []))
    full_seeds = {str(s) for s in config.get("evaluation", {}).get("latent", {}).get("full_test_set_seeds", [])}
    full = sum(str(seed) in full_seeds for model in models for seed in model_seeds(config, model))
    counts = {"data": d, "train": d * r, "noise_sweep": d * r, "sample": d * (r - poly),
              "sample_polynomial_prior": d * poly, "grids": d * trained, "latent": r if mnist else 0,
              "train_classifier": int(mnist and features in ("classifier", "both")), "fid": d * r, "fid_exact": d * exact,
              "figure": sum(len(FIGURES[name]) for name in datasets), "table1": 1, "all": 1,
              "diagnose": r if mnist else 0, "claims": int(mnist), "snapshot_noise_sweep": d * r * snapshots,
              "snapshot_latent": r * snapshots if mnist else 0, "latent_full_test_set": full if mnist else 0}
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
            for seed in model_seeds(config, model):
                run = f"{ds}/{model}/seed{seed}"
                assert {f"{results}/runs/{run}/model.pt", f"{results}/sweeps/{run}.csv",
                        f"{results}/samples/{run}.npz", f"{results}/fid/{run}.csv"} <= outputs
                if config["models"][model].get("prior") == "polynomial":
                    assert f"{results}/sampling/{run}.csv" in outputs
                    assert (f"{results}/fid_exact/{run}.csv" in outputs) == normalisable_prior(config, model)
    for job in jobs:
        assert (job["resources"].get("gpu") == "1") == (job["rule"] in GPU_RULES), job


def test_per_model_seeds_snapshots_and_the_whole_test_set_t_sne(repo_copy, tmp_path):
    """A model's own `seeds` narrow its runs (vae: seed 1 of [0, 1]; wae_gan: seed 0): no job of
    another seed, its first-seed files (grids) from its own first seed, latent_full for the runs of
    evaluation.latent.full_test_set_seeds. Each snapshot
    epoch's model file is evaluated by noise-sweep (every data set) and latent (MNIST) once train
    has written model.pt (not a declared output of train: a resumed train does not rewrite it);
    the whole-test-set t-SNE runs latent --all-test-points without embeddings."""
    config = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    config["seeds"] = [0, 1]
    config["models"]["vae"]["seeds"] = [1]
    config["models"]["wae_gan"]["seeds"] = [0, 2]  # 2 is not a seed of this config: left out
    config["training"]["snapshot_epochs"] = [1]
    config["evaluation"]["latent"]["full_test_set_seeds"] = [1]
    (tmp_path / "seeds.yaml").write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(snakemake(repo_copy, "-n", "-p", "--cores", "2", "--configfile", str(tmp_path / "seeds.yaml")).stdout)
    assert {rule: sum(j["rule"] == rule for j in jobs) for rule in {j["rule"] for j in jobs}} == expected_counts(config)
    runs = {(j["wildcards"]["model"], j["wildcards"]["seed"]) for j in jobs if "seed" in j["wildcards"]}
    assert runs == {("fisher_ae_poly", "0"), ("fisher_ae_poly", "1"), ("fisher_ae_gauss", "0"),
                    ("fisher_ae_gauss", "1"), ("vae", "1"), ("wae_gan", "0")}
    first = {(j["wildcards"]["dataset"], j["wildcards"]["model"], j["wildcards"]["seed"])
             for j in jobs if j["rule"] == "grids"}
    assert {(m, s) for d, m, s in first} == {("fisher_ae_poly", "0"), ("fisher_ae_gauss", "0"), ("vae", "1"),
                                             ("wae_gan", "0")}
    results = config["results"]
    full = [j for j in jobs if j["rule"] == "latent_full_test_set"]
    assert {o for j in full for o in j["output"]} == {f"{results}/latent_full/mnist/{m}/seed1.csv"
                                                      for m in ("fisher_ae_poly", "fisher_ae_gauss", "vae")}
    assert all("--all-test-points" in j["shell"] and "--out-embedding" not in j["shell"] for j in full)
    assert not [o for j in jobs for o in j["output"] if o.endswith(".pt") and "/snapshots/" in o]
    for rule, name in (("snapshot_noise_sweep", "sweep.csv"), ("snapshot_latent", "latent.csv")):
        for job in (j for j in jobs if j["rule"] == rule):
            run = "{dataset}/{model}/seed{seed}".format(**job["wildcards"])
            assert job["wildcards"]["epoch"] == "1" and job["output"] == [f"{results}/snapshots/{run}/epoch1/{name}"]
            assert f"--checkpoint {results}/runs/{run}/snapshots/epoch1.pt " in job["shell"], job
            assert job["input"] == [f"{results}/runs/{run}/model.pt"], job
            assert "--out-embedding" not in job["shell"]


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
    """The profile says where jobs run (the gpu partition for exactly the GPU rules) and leaves
    gpu, runtime and mem_mb to the rules, so the two cannot disagree."""
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    sections = [profile.get("default-resources", {}), *profile.get("set-resources", {}).values()]
    for section in sections:
        assert not re.search(r"--(gres|gpus)", str(section.get("slurm_extra", ""))), section
    assert set(profile["set-resources"]) == GPU_RULES
    assert all(section == {"slurm_partition": "gpu"} for section in profile["set-resources"].values())


def _commands_taking_a_device() -> dict[str, bool]:
    """Each CLI command: whether its code takes a device through fisherae.devices."""
    import argparse
    import inspect

    from fisherae import cli

    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    return {name: re.search(r"\b(job_device|acquire_device)\(", inspect.getsource(parser.get_default("run")))
            is not None for name, parser in commands.items()}


def test_no_gpu_token_on_a_cpu_stage(repo_copy):
    """A job holds a GPU slot exactly when its command computes on a device: read from the
    commands' code and the dry run's shell commands, for every rule of the DAG."""
    takes_device = _commands_taking_a_device()
    out = snakemake(repo_copy, "-n", "-p", "--cores", "2", "--resources", "gpu=1").stdout
    jobs = [job for job in dry_run_jobs(out) if job["rule"] != "all"]
    assert {job["rule"] for job in jobs} == set(expected_counts(yaml.safe_load(
        (REPO / "config/smoke.yaml").read_text()))) - {"all"}
    for job in jobs:
        command = re.match(r"python -m fisherae (\S+) ", job["shell"]).group(1)
        assert ("gpu" in job["resources"]) == (takes_device[command] and job["rule"] not in CPU_RULES_OF_DEVICE_COMMANDS), job
    assert {job["rule"] for job in jobs if "gpu" in job["resources"]} == GPU_RULES
    assert not takes_device["latent"] and not takes_device["figure"]


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

README_COMMAND = ("--cores", "2")  # `snakemake --cores 2`, the README's main job


def _training_cut_off(work: Path) -> bool:
    """A model is training: its metrics.csv (written each epoch) exists, its model.pt not yet."""
    metrics = (work / "results/smoke/runs").glob("*/*/seed0/metrics.csv")
    return any(not (m.parent / "model.pt").exists() for m in metrics)


def _evaluating(work: Path) -> bool:
    """Evaluation jobs run (a noise sweep is written) while Snakemake holds its locks."""
    return any((work / "results/smoke/sweeps").glob("*/*/seed0.csv")) and any((work / ".snakemake/locks").glob("*"))


def cut_run(work: Path, sig: signal.Signals, when) -> dict:
    """The README command in ``work``, sent ``sig`` as a whole process group (what Ctrl-C does
    with SIGINT; what a dying machine does, roughly, with SIGKILL) once ``when(work)`` holds."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = work / f"cut-{sig.name}.out"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", *README_COMMAND], cwd=work, env=env, text=True,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while not when(work):
                assert proc.poll() is None, f"the run ended before the cut:\n{log.read_text()[-3000:]}"
                time.sleep(0.1)
            os.killpg(proc.pid, sig)
            returncode = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # any job that outlived Snakemake: a dead machine keeps none
    return {"returncode": returncode, "locks": sorted(p.name for p in (work / ".snakemake/locks").glob("*")),
            "incomplete": len(list((work / ".snakemake/incomplete").glob("*")))}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The README command on a clean copy of the repository, cut by Ctrl-C while a model trains,
    then by SIGKILL while evaluations run, then run again to the end: (workdir, seconds of the
    three runs, output of the last one, what each cut left)."""
    work = copy_repo(tmp_path_factory.mktemp("smoke"))
    start = time.monotonic()
    cuts = [cut_run(work, signal.SIGINT, _training_cut_off), cut_run(work, signal.SIGKILL, _evaluating)]
    proc = snakemake(work, *README_COMMAND)
    return work, time.monotonic() - start, proc.stdout + proc.stderr, cuts


@pytest.mark.slow
def test_readme_command_recovers_from_ctrl_c_and_a_killed_run(smoke_run):
    """Ctrl-C left jobs marked incomplete, SIGKILL left Snakemake's locks as well; the README
    command reran the cut jobs (workflow/profiles/default: rerun-incomplete), removed the dead
    run's locks (workflow/rules/recovery.smk) and finished the DAG (checked by the tests below)."""
    work, _, output, (ctrl_c, kill) = smoke_run
    assert ctrl_c["returncode"] != 0 and ctrl_c["incomplete"] > 0 and not ctrl_c["locks"], ctrl_c
    assert kill["returncode"] == -signal.SIGKILL and kill["incomplete"] > 0 and kill["locks"], kill
    assert f"removed {len(kill['locks'])} Snakemake lock(s) left by a run that was killed" in output
    assert "Using workflow specific profile workflow/profiles/default" in output
    assert not list((work / ".snakemake/locks").glob("*"))


@pytest.mark.slow
def test_smoke_dag_writes_every_figure_and_table(smoke_run):
    work, seconds, _, _ = smoke_run
    results = work / "results/smoke"
    names = [f"figures/{n}.{ext}" for names in FIGURES.values() for n in names for ext in ("png", "csv")]
    names += ["tables/table1_fid.csv", "tables/table1_fid.md", "classifier/mnist.json",
              "tables/claims_mnist.csv", "tables/claims_mnist.md"]
    for name in names:
        assert (results / name).is_file() and (results / name).stat().st_size > 0, name
    for name in [n for n in names if n.endswith(".png")]:
        assert (results / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert len(list((results / "logs").rglob("*.log"))) == sum(expected_counts(
        yaml.safe_load((work / "config/smoke.yaml").read_text())).values()) - 1  # `all` has no log
    assert list((results / "benchmarks/train").rglob("*.tsv"))
    # Every job read the DAG's one config, named on its log's first line: the smoke config, defaults filled in.
    (config,) = {config_named_in(log) for log in (results / "logs").rglob("*.log")}
    assert Path(config).parent == Path("results/smoke/configs")
    assert yaml.safe_load((work / config).read_text()) == load_config(work / "config/smoke.yaml")
    epochs = yaml.safe_load((work / "config/smoke.yaml").read_text())["training"]["epochs"]
    starts = r"training epochs 1-\d+ from scratch|resuming from epoch \d+ of \d+|.* holds all \d+ epochs; writing .*"
    for log in (results / "logs/train").rglob("*.log"):  # what the last job said (the run was cut and resumed)
        lines = log.read_text().splitlines()[1:]  # after the line naming the config
        assert re.match(rf"\S+ seed \d+: ({starts})", lines[0]) and lines[-1].endswith("model.pt"), lines
    for log in (results / "runs").rglob("train.log"):  # every epoch once, with its held-out loss, across resumes
        lines = log.read_text().splitlines()
        assert len(lines) == epochs and all(f"epoch {e}/{epochs}: loss " in line and "; held-out loss " in line
                                            for e, line in enumerate(lines, 1)), lines
    print(f"smoke DAG, cut twice and completed: {seconds:.0f} s")


@pytest.mark.slow
def test_smoke_rerun_has_nothing_to_do(smoke_run):
    work, _, _, _ = smoke_run
    out = snakemake(work, "-n", "--cores", "2", "--configfile", "config/smoke.yaml").stdout
    assert "Nothing to be done" in out, out[-3000:]


@pytest.mark.slow
def test_deleting_a_sweep_reruns_only_it_and_its_figure(smoke_run):
    work, _, _, _ = smoke_run
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
    work, _, _, _ = smoke_run
    snakemake(work, "--report", "report.html", "--configfile", "config/smoke.yaml")
    html = (work / "report.html").read_text()
    assert len(html) > 100_000
    for name in [n for names in FIGURES.values() for n in names] + ["table1_fid.csv"]:
        assert name in html, name


# The keys whose change reshapes the DAG (other output paths, jobs added or moved to another rule)
# rather than changing a job's params: the Snakefile reads them to build the DAG.
SHAPES_THE_DAG = {"results", "seeds", "run_models", "models.*.prior", "models.*.seeds",
                  "evaluation.latent.full_test_set_seeds", "training.snapshot_epochs",
                  "training.poly_normalisable", "models.*.poly_normalisable"}  # the last two: fid_exact runs


def _leaves(node, prefix=()):
    """(path, value) of every leaf of a validated config (a list is a leaf)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, node


def _changed(path: tuple, value):
    """Another valid value for the config key ``path``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1 if isinstance(value, int) else value / 2 or 0.5
    if isinstance(value, list):
        return [*value[:-1], _changed(path, value[-1])] if value else [1]
    if value is None:
        return "pt_inception.pth" if path[-1] == "inception_weights" else 100
    other = {"source": "torchvision", "device": "cpu", "step_mode": "eager", "fisher_variant": "reparam_total_derivative",
             "features": "both", "method": "vae" if value == "fisher_ae" else "fisher_ae"}
    return other.get(path[-1], f"{value}x")


def _rule_commands() -> dict[str, str]:
    """Rule -> the command whose declared keys are its rerun triggers (its `settings(...)` params)."""
    found = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for rule, body in re.findall(r"^(?:rule |use rule \w+ as )(\w+)(.*?)(?=^\S|\Z)", smk.read_text(), re.M | re.S):
            found[rule] = re.search(r'settings=settings\("([\w-]+)"', body).group(1)
    return found


def _reads(command: str, path: tuple, wildcards: dict) -> bool:
    """Whether ``command`` (in a job with ``wildcards``) declares the config key ``path`` as one that
    determines its outputs (at or below a declared key, and not an INERT one)."""
    from fisherae.config_keys import INERT, READS

    def under(keys):
        return any(len(path) >= len(k) and all(p in ("*", part) for p, part in zip(k, path)) for k in keys)
    declared = [tuple(k.format(**wildcards).split(".")) for k in READS[command].determines]
    return under(declared) and not under([tuple(k.split(".")) for k in INERT])


def _batches(expected: dict) -> list[list]:
    """The keys grouped so that no two keys of a group are expected to rerun the same job, and the
    keys expected to rerun nothing together: one dry run per group tells each key's jobs apart."""
    batches = []
    for key, jobs in sorted(expected.items(), key=lambda item: -len(item[1])):
        group = next((b for b in batches if bool(b[0]) == bool(jobs) and not b[0] & jobs), None)
        if group is None:
            batches.append((set(), []))
            group = batches[-1]
        group[0].update(jobs)
        group[1].append(key)
    return [keys for _, keys in batches]


@pytest.mark.slow
def test_each_config_key_reruns_exactly_the_rules_that_read_it(smoke_run, tmp_path):
    """Every leaf key of the smoke config (defaults included), changed: on the completed DAG,
    Snakemake finds changed params (`--summary`: "params changed", "update pending") for exactly the
    jobs whose command declares the key; the jobs downstream of them then rerun for their updated
    inputs. (`--list-params-changes` cannot tell: Snakemake 9.27 lists every output there.)"""
    work = smoke_run[0]
    commands = _rule_commands()
    every_job = snakemake(work, "-n", "--forceall", "--cores", "2").stdout  # the run itself was cut and resumed
    jobs = [(j["rule"], j["output"][0], j["wildcards"]) for j in dry_run_jobs(every_job) if j["rule"] != "all"]
    config = load_config(work / "config/smoke.yaml")
    leaves = dict(_leaves(config))
    keys = [p for p in leaves if not any(all(s in ("*", q) for s, q in zip(d.split("."), p)) and
                                         len(p) == len(d.split(".")) for d in SHAPES_THE_DAG)]
    for _, _, w in jobs:  # a figure's data set, which its rule's settings derive from its stem
        w.update({"dataset": paper.FIGURE_BY_STEM[w["stem"]].dataset} if "stem" in w else {})
    expected = {p: {(rule, out) for rule, out, w in jobs if _reads(commands[rule], p, w)} for p in keys}
    assert ("grids", "results/smoke/grids/mnist/vae/seed0.png") in expected[("evaluation", "noise_sweep", "noise_seed")]
    batches = _batches(expected)
    for n, batch in enumerate(batches):
        changed = json.loads(json.dumps(config))
        for path in batch:
            node = changed
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = _changed(path, leaves[path])
        (tmp_path / f"{n}.yaml").write_text(yaml.safe_dump(changed))
    with ThreadPoolExecutor(2) as pool:  # one dry run per core
        runs = pool.map(lambda n: snakemake(work, "--summary", "--configfile", str(tmp_path / f"{n}.yaml"),
                                            timeout=600).stdout, range(len(batches)))
    outputs = {out for _, out, _ in jobs}
    for batch, stdout in zip(batches, runs):
        rows = [line.split("\t") for line in stdout.splitlines()]
        got = {(row[2], row[0]) for row in rows
               if row[-2:] == ["params changed", "update pending"] and row[0] in outputs}
        want = set().union(*(expected[p] for p in batch))
        assert got == want, ([".".join(p) for p in batch], "unexpected:", sorted(got - want), "missing:",
                             sorted(want - got))
