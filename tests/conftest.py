"""Fixtures shared by every test module."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The nets under test are tiny: on a 2-core box a second intra-op thread only adds
    spin-wait contention (with other processes it made small convolutions ~100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
