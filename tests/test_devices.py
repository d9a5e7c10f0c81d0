"""acquire_device: one job per GPU across processes, simulated as two GPUs on the CPU."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from fisherae.devices import DeviceError, acquire_device

# A job that takes a device from two simulated GPUs, reports it, then holds it until stdin closes.
_JOB = textwrap.dedent("""
    import sys
    from fisherae.devices import acquire_device
    with acquire_device("auto", gpus=["GPU-aaaa", "GPU-bbbb"], locks=sys.argv[1],
                        timeout=float(sys.argv[2]), poll=0.05) as device:
        print(device, flush=True)
        sys.stdin.read()
""")


def _job(lock_dir, timeout=30.0):
    return subprocess.Popen([sys.executable, "-c", _JOB, str(lock_dir), str(timeout)],
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
