"""The DAG through workflow/profiles/slurm on a real one-node SLURM cluster (Debian's slurm-wlm,
started here as root with two placeholder GPUs): jobs are submitted by the executor plugin,
run under SLURM job ids, and write the outputs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from test_pipeline import REPO, copy_repo, snakemake

SCRIPTS = REPO / "tests/slurm"
# A reduced target through the real profile: data, four training runs, their noise sweeps and
# Figure 1 (GPU and CPU rules, gpu=1 on the gpu partition, a gather step).
TARGET = "results/smoke/figures/figure1_mnist_bce.png"

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running cluster (SLURM_CONF in the returned environment); always stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a private SLURM cluster needs root (slurmd); run the tests as root to include this one")
    install = subprocess.run([SCRIPTS / "install.sh"], capture_output=True, text=True)
    if install.returncode != 0:
        pytest.skip(f"slurm-wlm/munge could not be installed: {install.stderr[-2000:]}")
    state = tmp_path_factory.mktemp("slurm")
    try:
        started = subprocess.run([SCRIPTS / "start.sh", state], capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, f"cluster did not start:\n{started.stdout}\n{started.stderr}"
        yield {"SLURM_CONF": str(state / "slurm.conf")}
    finally:
        subprocess.run([SCRIPTS / "stop.sh", state], capture_output=True, timeout=120)


def test_smoke_dag_runs_through_the_slurm_profile(slurm_cluster, tmp_path):
    work = copy_repo(tmp_path / "repo")
    proc = snakemake(work, "--profile", "workflow/profiles/slurm", "--configfile", "config/smoke.yaml",
                     "--slurm-status-command", "squeue", "--slurm-no-account", "--jobs", "4", TARGET,
                     env=slurm_cluster, timeout=1800)
    log = proc.stdout + proc.stderr
    job_ids = sorted(set(re.findall(r"has been submitted with SLURM jobid (\d+)", log)))
    assert len(job_ids) == 10, log[-4000:]  # data, 4 x train, 4 x noise_sweep, figure

    results = work / "results/smoke"
    assert (results / "figures/figure1_mnist_bce.png").stat().st_size > 0
    for model in ("fisher_ae_poly", "fisher_ae_gauss", "vae", "wae_gan"):
        assert (results / f"runs/mnist/{model}/seed0/model.pt").is_file()
        assert (results / f"sweeps/mnist/{model}/seed0.csv").is_file()
        assert "epoch" in (results / f"runs/mnist/{model}/seed0/metrics.csv").read_text()
        assert (results / f"logs/train/mnist/{model}/seed0.log").is_file()

    for job_id in job_ids:
        job = _scontrol_job(job_id, slurm_cluster)
        rule = re.match(r"rule_([a-z0-9_]+?)_wildcards_", job["Comment"]).group(1)
        assert job["JobState"] == "COMPLETED", job
        gpu_rule = rule in ("train", "noise_sweep")
        assert job["Partition"] == ("gpu" if gpu_rule else "cpu"), job
        assert (job.get("TresPerJob") == "gres:gpu:1") == gpu_rule, job
        log_file = Path(job["StdOut"])  # the executor's per-job log, named by the SLURM job id
        assert log_file.name == f"{job_id}.log" and log_file.is_file(), job
        assert f"rule {rule}:" in log_file.read_text()


def _scontrol_job(job_id: str, env: dict) -> dict:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], env={**os.environ, **env},
                         capture_output=True, text=True, check=True).stdout
    return dict(field.split("=", 1) for field in out.split() if "=" in field)
