"""Fixtures shared by every test module."""

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")
# aten ops that make the host wait for a GPU: a value read back, or an output sized by the values
SYNCING_OPS = frozenset({"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten._unique",
                         "aten._unique2", "aten.unique_dim", "aten.unique_consecutive", "aten.bincount",
                         "aten.histc", "aten.equal", "aten.is_nonzero", "aten.masked_scatter"})


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


class _SyncingOps(TorchDispatchMode):
    """Calls ``seen(op name)`` for each aten op that would make the host wait for a GPU
    (SYNCING_OPS, a boolean-mask index, a repeat_interleave of unknown size, a copy between
    devices) before running it."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)
        masks = name in ("aten.index", "aten.index_put", "aten.index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in args[1] if i is not None)
        sized = name == "aten.repeat_interleave" and kwargs.get("output_size") is None  # keyword-only
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        crosses = name in ("aten._to_copy", "aten.copy_") and (
            len({t.device for t in tensors}) > 1 or kwargs.get("device", tensors[0].device) != tensors[0].device)
        if name in SYNCING_OPS or masks or sized or crosses:
            self.seen(f"ran {func}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def _host_syncs(seen):
    """Inside, ``seen(what)`` is called for each read of a tensor's value back to the host (``item``,
    ``bool``, ``float`` and the like, at the Python level; ``_local_scalar_dense`` below it) and each
    aten op that syncs without a visible read (``nonzero``, a boolean-mask index, ``unique``, a copy
    between devices, ...): everything that would make the host wait for a GPU."""
    saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def watched(name):
        def read(*args, **kwargs):
            seen(f"called Tensor.{name}")
            return saved[name](*args, **kwargs)
        return read

    for name in HOST_READS:
        setattr(torch.Tensor, name, watched(name))
    try:
        with _SyncingOps(seen):
            yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


@pytest.fixture
def host_syncs_refused():
    """``with host_syncs_refused(what): ...``: inside, anything that would make the host wait for a
    GPU (see ``_host_syncs``) raises an AssertionError naming ``what`` and the sync; where there is a
    GPU, torch.cuda's sync debug mode raises on any sync it sees as well."""
    @contextlib.contextmanager
    def refused(what: str):
        def seen(sync: str):
            raise AssertionError(f"{what} {sync}, which would wait for a GPU")
        gpu = torch.cuda.is_available()
        if gpu:
            torch.cuda.set_sync_debug_mode("error")
        try:
            with _host_syncs(seen):
                yield
        finally:
            if gpu:
                torch.cuda.set_sync_debug_mode("default")
    return refused


@pytest.fixture
def host_syncs_counted():
    """``with host_syncs_counted() as syncs: ...``: ``syncs`` lists, in order, everything inside
    that would make the host wait for a GPU (see ``_host_syncs``)."""
    @contextlib.contextmanager
    def counted():
        syncs: list[str] = []
        with _host_syncs(syncs.append):
            yield syncs
    return counted
