"""Host memory: keep freed tensor memory in the process.

glibc gives every freed block above its mmap threshold (128 KiB at first) back to the kernel,
so the next tensor of that size is mapped afresh and page-faults on first touch. A training
step on the CPU allocates and frees hundreds of feature-map-sized tensors: on the 2-core
development VM that was about 17 000 page faults and 70 ms of system time per Fisher AE step
(MNIST nets, width 16, batch 128), 15-20 % of the step. Raising the thresholds keeps those
blocks in the heap for reuse (1 page fault per step after the first). The mmap threshold cannot
exceed 32 MiB, and the paper's width has larger maps (the MNIST decoder's last, 128 x 256 x 28 x
28 floats, 98 MiB; CelebA's from width 16): 810 000-880 000 page faults and 1.7-2.4 s of system
time in a 7.0-7.5 s Fisher AE step at width 128 (2 threads). So mmap is also switched off:
every block comes from the heap (glibc still maps memory where the heap cannot grow)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value: blocks up to 32 MiB come from the heap
MMAP_MAX = 0  # blocks mapped at once: none, so larger blocks come from the heap too
TRIM_THRESHOLD = 2**30  # free heap kept before it is given back to the kernel


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds and switch mmap off for this process; False where
    there is no glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return all(libc.mallopt(option, value) for option, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_MMAP_MAX, MMAP_MAX), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl without mallopt)
        return False
