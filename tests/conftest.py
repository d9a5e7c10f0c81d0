"""Fixtures shared by every test module."""

import contextlib

import pytest
import torch

HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The nets under test are tiny: on a 2-core box a second intra-op thread only adds
    spin-wait contention (with other processes it made small convolutions ~100x slower).
    Torch's TF32 flags, which ``train`` and the commands set for their process, are restored
    after each test too."""
    threads = torch.get_num_threads()
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


@pytest.fixture
def host_reads_refused():
    """``with host_reads_refused(what): ...``: inside, reading a tensor's value back to the host
    (``item``, ``bool``, ``float`` and the like; each a host sync on a GPU) raises an AssertionError
    that names ``what`` and the read."""
    @contextlib.contextmanager
    def refused(what: str):
        saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}

        def refuse(name):
            def read(*args, **kwargs):
                raise AssertionError(f"{what} called Tensor.{name}")
            return read

        for name in HOST_READS:
            setattr(torch.Tensor, name, refuse(name))
        try:
            yield
        finally:
            for name, method in saved.items():
                setattr(torch.Tensor, name, method)
    return refused
