"""Choosing the torch device for one pipeline job, with an exclusive lock per GPU.

Snakemake counts a ``gpu`` resource but never tells a job *which* GPU to use (it does not set
CUDA_VISIBLE_DEVICES), so two jobs on a two-GPU machine would both pick cuda:0. ``acquire_device``
makes each job take a free slot on a GPU instead: ``jobs_per_gpu`` ``flock``-ed files per physical
GPU in a lock directory (the config's ``jobs_per_gpu``: how many jobs may share one GPU), taken
so that jobs spread over the GPUs before any GPU gets a second one; the kernel drops a lock when
its process exits, even on SIGKILL. ``use_configured_compute`` sets what every computing job
sets for its process: torch's CPU threads, and whether a GPU's float32 products run in TF32.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import torch

from fisherae.errors import DeviceError

DEFAULT_TIMEOUT_S = 3600.0
_SPEC = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


def lock_dir() -> Path:
    """``$FISHERAE_GPU_LOCK_DIR``, else ``<tmp>/fisherae-gpu-locks`` (shared by all users)."""
    path = Path(os.environ.get("FISHERAE_GPU_LOCK_DIR") or Path(tempfile.gettempdir(), "fisherae-gpu-locks"))
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            path.chmod(0o1777)
    return path


def visible_gpus() -> list[str]:
    """One identity per visible CUDA device, in torch's (CUDA_VISIBLE_DEVICES-relative) order.

    The identity names the *physical* GPU (its UUID), so jobs that see different visible sets,
    or a relative "0" under SLURM's device cgroup, still lock the right file."""
    if not torch.cuda.is_available():
        return []
    ids = []
    for index in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
        ids.append(str(uuid) if uuid else _physical_index(index))
    return ids


def _physical_index(index: int) -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        entries = [v.strip() for v in visible.split(",") if v.strip()]
        if index < len(entries):
            return entries[index]
    return str(index)


@contextlib.contextmanager
def acquire_device(
    spec: str = "auto",
    *,
    gpus: Sequence[str] | None = None,
    timeout: float | None = None,
    poll: float = 0.5,
    locks: str | Path | None = None,
    jobs_per_gpu: int = 1,
) -> Iterator[torch.device]:
    """Yield the device named by ``spec`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``).

    ``auto`` and ``cuda`` lock one of the ``jobs_per_gpu`` slots of a GPU, lowest slot first
    (``slot_paths``; waiting up to ``timeout`` s, default ``$FISHERAE_GPU_LOCK_TIMEOUT`` or 3600,
    when all are held); ``auto`` falls back to the CPU when no GPU is visible. ``cuda:N`` is
    taken as given, without a lock. ``gpus`` (identities of the visible GPUs) replaces CUDA
    discovery, so tests can simulate GPUs on a CPU machine."""
    if not isinstance(spec, str) or not _SPEC.match(spec):
        raise DeviceError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N")
    if not isinstance(jobs_per_gpu, int) or jobs_per_gpu < 1:
        raise DeviceError(f"jobs_per_gpu = {jobs_per_gpu!r}: expected a whole number of at least 1")
    simulated = gpus is not None
    gpus = list(gpus) if simulated else visible_gpus()
    if spec == "cpu" or (spec == "auto" and not gpus):
        yield torch.device("cpu")
        return
    if not gpus:
        raise DeviceError(f"device {spec!r} requested but CUDA is not available; use device: auto or cpu")
    if spec.startswith("cuda:"):
        index = int(spec.split(":")[1])
        if index >= len(gpus):
            raise DeviceError(f"device {spec!r} requested but only {len(gpus)} GPU(s) are visible")
        yield _select(torch.device("cuda", index), simulated)
        return
    if timeout is None:
        timeout = float(os.environ.get("FISHERAE_GPU_LOCK_TIMEOUT", DEFAULT_TIMEOUT_S))
    directory = Path(locks) if locks is not None else lock_dir()
    index, fd = _lock_free_slot(gpus, jobs_per_gpu, directory, timeout, poll)
    try:
        yield _select(torch.device("cuda", index), simulated)
    finally:
        if not simulated:  # hand the memory back before the next job may take this GPU
            torch.cuda.synchronize(index)
            torch.cuda.empty_cache()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def job_device(config: dict) -> contextlib.AbstractContextManager[torch.device]:
    """``acquire_device`` under the config's ``device`` and ``jobs_per_gpu``: the device of one
    pipeline job that computes on a GPU where there is one."""
    return acquire_device(config["device"], jobs_per_gpu=config["jobs_per_gpu"])


def _select(device: torch.device, simulated: bool) -> torch.device:
    if not simulated:
        torch.cuda.set_device(device)
    return device


def _open_lock(path: Path) -> int:
    """An fd on ``path``, created readable by every user who shares the lock directory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except PermissionError as err:
        raise DeviceError(f"cannot open the GPU lock {path} ({err}); give every user of this machine read "
                          "access to it, or set FISHERAE_GPU_LOCK_DIR to a directory of your own") from err
    if os.fstat(fd).st_uid == os.getuid():
        os.fchmod(fd, 0o666)  # a umask of 077 would lock other users out of the shared lock
    return fd


def slot_paths(gpus: Sequence[str], jobs_per_gpu: int, directory: Path) -> list[tuple[int, Path]]:
    """(visible index, lock file) of every slot, in the order jobs take them: every GPU's first
    slot, then every GPU's second one, ... so that jobs spread over the GPUs."""
    names = [re.sub(r"[^A-Za-z0-9_.-]", "_", gpu) for gpu in gpus]
    return [(index, directory / f"gpu-{name}.{slot}.lock")
            for slot in range(jobs_per_gpu) for index, name in enumerate(names)]


def _lock_free_slot(gpus: list[str], jobs_per_gpu: int, directory: Path, timeout: float,
                    poll: float) -> tuple[int, int]:
    """(visible index, open locked fd) of the first free slot; waits up to ``timeout``."""
    directory.mkdir(parents=True, exist_ok=True)
    slots = slot_paths(gpus, jobs_per_gpu, directory)
    start = time.monotonic()
    announced = False
    while True:
        for index, path in slots:
            fd = _open_lock(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return index, fd
        waited = time.monotonic() - start
        if waited >= timeout:
            raise DeviceError(
                f"all {len(gpus)} GPU(s) stayed locked by other fisherae jobs ({jobs_per_gpu} per GPU) for "
                f"{waited:.0f} s (locks in {directory}); run fewer GPU jobs at once (snakemake --resources "
                "gpu=N, N = the number of GPUs), raise jobs_per_gpu or FISHERAE_GPU_LOCK_TIMEOUT, or set "
                "device: cpu / cuda:N in the config"
            )
        if not announced:
            print(f"fisherae: all {len(gpus)} GPU(s) are busy ({jobs_per_gpu} job(s) each; locks in {directory}); "
                  f"waiting up to {timeout:.0f} s for one to be free", file=sys.stderr, flush=True)
            announced = True
        time.sleep(min(poll, max(timeout - waited, 0.0)))


def use_configured_compute(config: dict, tf32: bool = False) -> None:
    """Run torch's CPU work on the config's ``training.threads`` threads, and a GPU's float32
    products in TF32 if ``tf32`` (every job that computes calls this: ``train`` with
    ``training.tf32``, the evaluations with IEEE float32)."""
    torch.set_num_threads(config["training"]["threads"])
    use_tf32(tf32)


def use_tf32(enabled: bool) -> None:
    """Let float32 convolutions (cuDNN) and matrix products (cuBLAS) on a GPU of the Ampere
    generation or newer round their operands to TF32 (a 10-bit mantissa) and sum in float32, or
    (False) compute in IEEE float32. PyTorch's own default is TF32 for convolutions and IEEE for
    matrix products; the CPU computes in IEEE float32 either way. (The legacy flags: the newer
    ``fp32_precision`` API refuses reads of them once set, which other libraries still make.)"""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def float32_products() -> str:
    """How a GPU computes float32 convolutions and matrix products in this process (see use_tf32)."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if all(flags):
        return "TF32"
    if not any(flags):
        return "IEEE float32"
    return f"TF32 {'convolutions' if flags[0] else 'matrix products'}, IEEE {'matrix products' if flags[0] else 'convolutions'}"
