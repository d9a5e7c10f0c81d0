"""Fixtures shared by every test module."""

import pytest
import torch


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
