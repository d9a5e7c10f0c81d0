"""Host memory: keep freed tensor memory in the process.

glibc gives every freed block above its mmap threshold (128 KiB at first) back to the kernel,
so the next tensor of that size is mapped afresh and page-faults on first touch. A training
step on the CPU allocates and frees hundreds of feature-map-sized tensors: on the 2-core
development VM that was about 17 000 page faults and 70 ms of system time per Fisher AE step
(MNIST nets, width 16, batch 128), 15-20 % of the step. Raising the thresholds keeps those
blocks in the heap for reuse (1 page fault per step after the first)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 2**30  # free heap kept before it is given back to the kernel


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl without mallopt)
        return False
