"""Freed tensor memory stays in the process (glibc): a repeated large allocation stops
page-faulting after its first touch."""

import platform
import resource

import pytest
import torch

from fisherae.host_memory import keep_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc")


@glibc
@pytest.mark.parametrize("mib", [8, 48], ids=["below_32_MiB", "above_32_MiB"])
def test_a_freed_feature_map_is_reused_without_page_faults(mib):
    """8 MiB: below glibc's largest mmap threshold; 48 MiB: above it (the paper-width decoder's
    last map is 49 MiB), which only switching mmap off keeps in the heap."""
    assert keep_freed_memory() is True and keep_freed_memory() is True  # once per process, idempotent
    n, pages = mib * 2**18, mib * 2**20 // 4096  # float32 values, 4 KiB pages

    def faults_of_20_allocations():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            torch.ones(n)  # allocated, touched, freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_20_allocations()  # the heap grows to hold it once
    faults = faults_of_20_allocations()
    assert faults < pages, f"{faults} page faults for 20 allocations of {pages} pages each"
