"""acquire_device: jobs_per_gpu jobs per GPU across processes, simulated as GPUs on the CPU; and the
workflow's GPU slots (workflow/rules/devices.smk) with the locks under a real Snakemake run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fisherae.devices import DeviceError, acquire_device, slot_paths

REPO = Path(__file__).resolve().parents[1]

# A job that takes a device from two simulated GPUs (jobs_per_gpu slots each), reports it, then
# holds it until stdin closes.
_JOB = textwrap.dedent("""
    import sys
    from fisherae.devices import acquire_device
    with acquire_device("auto", gpus=["GPU-aaaa", "GPU-bbbb"], locks=sys.argv[1],
                        timeout=float(sys.argv[2]), poll=0.05, jobs_per_gpu=int(sys.argv[3])) as device:
        print(device, flush=True)
        sys.stdin.read()
""")


def _job(lock_dir, timeout=30.0, jobs_per_gpu=1):
    return subprocess.Popen([sys.executable, "-c", _JOB, str(lock_dir), str(timeout), str(jobs_per_gpu)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _release(proc):
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0, proc.stderr.read()


def test_cpu_spec_and_no_cuda_give_cpu(tmp_path):
    with acquire_device("cpu", gpus=["g0"], locks=tmp_path) as device:
        assert device == torch.device("cpu")
    with acquire_device("auto", gpus=[], locks=tmp_path) as device:
        assert device == torch.device("cpu")


def test_explicit_index_is_taken_as_given(tmp_path):
    with acquire_device("cuda:1", gpus=["g0", "g1"], locks=tmp_path) as device:
        assert device == torch.device("cuda", 1)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "", "CPU"])
def test_bad_spec_is_named(spec, tmp_path):
    with pytest.raises(DeviceError, match="not one of auto, cpu, cuda"):
        with acquire_device(spec, gpus=[], locks=tmp_path):
            pass


def test_missing_gpu_is_an_error(tmp_path):
    with pytest.raises(DeviceError, match="only 2 GPU"):
        with acquire_device("cuda:2", gpus=["g0", "g1"], locks=tmp_path):
            pass
    with pytest.raises(DeviceError, match="CUDA is not available"):
        with acquire_device("cuda", gpus=[], locks=tmp_path):
            pass


def test_lock_is_released_on_exit(tmp_path):
    for _ in range(3):
        with acquire_device("auto", gpus=["g0"], locks=tmp_path, timeout=0) as device:
            assert device == torch.device("cuda", 0)


def test_two_processes_get_different_gpus_and_a_third_waits(tmp_path):
    first, second = _job(tmp_path), _job(tmp_path)
    third = None
    try:
        got = {first.stdout.readline().strip(), second.stdout.readline().strip()}
        assert got == {"cuda:0", "cuda:1"}
        third = _job(tmp_path)
        assert "busy" in third.stderr.readline(), "third job must say it waits"
        time.sleep(0.5)
        assert third.poll() is None, "third job must wait while both GPUs are held"
        _release(first)
        assert third.stdout.readline().strip() in got
        _release(third)
        _release(second)
    finally:
        for proc in (first, second, third):
            if proc is not None and proc.poll() is None:
                proc.kill()


def test_sigkill_releases_the_lock(tmp_path):
    holder = _job(tmp_path)
    other = _job(tmp_path)
    try:
        assert {holder.stdout.readline().strip(), other.stdout.readline().strip()} == {"cuda:0", "cuda:1"}
        with pytest.raises(DeviceError, match="stayed locked"):
            with acquire_device("auto", gpus=["GPU-aaaa", "GPU-bbbb"], locks=tmp_path, timeout=0.2, poll=0.05):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with acquire_device("auto", gpus=["GPU-aaaa", "GPU-bbbb"], locks=tmp_path, timeout=5, poll=0.05) as device:
            assert device.type == "cuda"
    finally:
        if holder.poll() is None:
            holder.kill()
        _release(other)


def test_waiting_job_times_out_with_a_clear_message(tmp_path):
    holder = _job(tmp_path)
    try:
        assert holder.stdout.readline().strip() == "cuda:0"  # holds GPU-aaaa
        with pytest.raises(DeviceError, match=r"all 1 GPU\(s\) stayed locked .*--resources gpu=N"):
            with acquire_device("auto", gpus=["GPU-aaaa"], locks=tmp_path, timeout=0.3, poll=0.05):
                pass
    finally:
        _release(holder)


def test_slots_spread_jobs_over_the_gpus_first(tmp_path):
    slots = slot_paths(["GPU-a", "GPU/b"], 3, tmp_path)
    assert [index for index, _ in slots] == [0, 1, 0, 1, 0, 1]
    assert [path.name for _, path in slots[:2]] == ["gpu-GPU-a.0.lock", "gpu-GPU_b.0.lock"]
    assert len({path for _, path in slots}) == 6


@pytest.mark.parametrize("jobs_per_gpu", [0, -1, 1.5, "2"])
def test_bad_jobs_per_gpu_is_named(jobs_per_gpu, tmp_path):
    with pytest.raises(DeviceError, match="jobs_per_gpu"):
        with acquire_device("auto", gpus=["g0"], locks=tmp_path, jobs_per_gpu=jobs_per_gpu):
            pass


def test_jobs_per_gpu_jobs_share_each_gpu_and_the_next_waits(tmp_path):
    """Two simulated GPUs, two slots each, jobs started one after the other: they alternate
    between the GPUs, four hold both twice over, a fifth waits until one ends and takes its GPU."""
    jobs, got, fifth = [], [], None
    try:
        for _ in range(4):
            jobs.append(_job(tmp_path, jobs_per_gpu=2))
            got.append(jobs[-1].stdout.readline().strip())
        assert got == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
        fifth = _job(tmp_path, jobs_per_gpu=2)
        assert "busy (2 job(s) each" in fifth.stderr.readline()
        _release(jobs[2])
        assert fifth.stdout.readline().strip() == got[2]
        _release(fifth)
    finally:
        for proc in [*jobs, fifth]:
            if proc is not None and proc.poll() is None:
                proc.stdin.close()
                proc.wait(timeout=30)


# The jobs of the toy workflow below. A GPU job takes a device from argv[1] simulated GPUs
# (argv[2] slots each) with a lock timeout of 0 (so it fails if Snakemake ever starts more GPU jobs
# than the locks have slots), holds it 1.5 s and writes which device it had and when; the CPU
# job only sleeps and writes when.
_TOY_JOBS = textwrap.dedent("""
    import json, sys, time
    from fisherae.devices import acquire_device
    n_gpus, per_gpu, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if n_gpus:
        with acquire_device("auto", gpus=[f"GPU-{i}" for i in range(n_gpus)], locks="locks",
                            jobs_per_gpu=per_gpu, timeout=0) as device:
            start = time.time()
            time.sleep(1.5)
            record = {"device": str(device), "start": start, "end": time.time()}
    else:
        start = time.time()
        time.sleep(3)
        record = {"start": start, "end": time.time()}
    open(out, "w").write(json.dumps(record))
""")


def _toy_workflow(work: Path, n_gpus: int, jobs_per_gpu: int) -> Path:
    """A Snakefile with the pipeline's GPU-slot code (workflow/rules/devices.smk), six GPU jobs
    and a CPU job."""
    (work / "job.py").write_text(_TOY_JOBS)
    (work / "Snakefile").write_text(textwrap.dedent(f"""
        config["jobs_per_gpu"] = {jobs_per_gpu}
        include: "{REPO / 'workflow/rules/devices.smk'}"
        rule all:
            input: expand("gpu{{i}}.json", i=range(6)), "cpu.json"
        rule gpu_job:
            output: "gpu{{i}}.json"
            resources: gpu=1
            shell: "{sys.executable} job.py {n_gpus} {jobs_per_gpu} {{output}}"
        rule cpu_job:
            output: "cpu.json"
            shell: "{sys.executable} job.py 0 0 {{output}}"
    """))
    return work


def _most_at_once(records: list[dict]) -> int:
    events = sorted([(r["start"], 1) for r in records] + [(r["end"], -1) for r in records])
    held = most = 0
    for _, step in events:
        held += step
        most = max(most, held)
    return most


@pytest.mark.parametrize("n_gpus, jobs_per_gpu", [(1, 2), (2, 2)])
def test_snakemake_runs_jobs_per_gpu_jobs_on_each_gpu(tmp_path, n_gpus, jobs_per_gpu):
    """`--resources gpu=G` with jobs_per_gpu J: Snakemake starts up to G x J GPU jobs, the locks
    give each GPU at most J of them (a job finding no free slot would fail), and a CPU job holds
    no GPU slot: it runs while the GPU jobs hold every slot."""
    work = _toy_workflow(tmp_path, n_gpus, jobs_per_gpu)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "8", "--resources", f"gpu={n_gpus}",
                           "--workflow-profile", "none"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{n_gpus} GPU(s) x jobs_per_gpu {jobs_per_gpu} = {n_gpus * jobs_per_gpu} GPU jobs" in proc.stdout
    gpu = [json.loads((work / f"gpu{i}.json").read_text()) for i in range(6)]
    per_device = {d: [r for r in gpu if r["device"] == d] for d in {r["device"] for r in gpu}}
    assert set(per_device) == {f"cuda:{i}" for i in range(n_gpus)}
    assert all(_most_at_once(records) == jobs_per_gpu for records in per_device.values())
    assert _most_at_once(gpu) == n_gpus * jobs_per_gpu
    cpu = json.loads((work / "cpu.json").read_text())
    assert any(max(r["start"], cpu["start"]) < min(r["end"], cpu["end"]) for r in gpu), (cpu, gpu)


def test_float32_products_are_set_and_named():
    """use_tf32 sets both of torch's flags (legacy API: its reads keep working for other
    libraries); the evaluations' default is IEEE float32; a mixed state is named as such."""
    from fisherae.devices import float32_products, use_configured_compute, use_tf32
    use_tf32(True)
    assert float32_products() == "TF32" and torch.get_float32_matmul_precision() == "high"
    use_configured_compute({"training": {"threads": 2}})
    assert float32_products() == "IEEE float32" and torch.get_float32_matmul_precision() == "highest"
    assert torch.get_num_threads() == 2 and torch.backends.cudnn.allow_tf32 is False
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's own default
    assert float32_products() == "TF32 convolutions, IEEE matrix products"
