"""Freed tensor memory stays in the process (glibc): a repeated large allocation stops
page-faulting after its first touch."""

import platform
import resource

import pytest
import torch

from fisherae.host_memory import keep_freed_memory

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc")


@glibc
def test_a_freed_feature_map_is_reused_without_page_faults():
    """48 MiB: above glibc's largest mmap threshold (32 MiB; the paper-width MNIST decoder's last
    map is 98 MiB), so only switching mmap off keeps it in the heap. (A block below the threshold
    is no test: glibc's own dynamic threshold already reuses a block of one repeated size.)"""
    assert keep_freed_memory() is True and keep_freed_memory() is True  # once per process, idempotent
    mib = 48
    n, pages = mib * 2**18, mib * 2**20 // 4096  # float32 values, 4 KiB pages

    def faults_of_20_allocations():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            torch.ones(n)  # allocated, touched, freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_20_allocations()  # the heap grows to hold it once
    faults = faults_of_20_allocations()
    assert faults < pages, f"{faults} page faults for 20 allocations of {pages} pages each"
