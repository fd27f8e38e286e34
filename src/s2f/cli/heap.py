"""The command's memory allocator: large blocks kept for reuse rather than handed back to the system.

On Linux, glibc's ``malloc`` serves a block above its mmap threshold with a fresh mapping and unmaps it when
freed, and returns free memory at the top of its heap once more than a trim threshold lies there. A training
step on a CPU allocates and frees dozens of tensors of a few megabytes (the front end's spectrogram of a batch
is 10 MB), so with glibc's defaults each comes back as fresh pages that the kernel must fault in and zero:
the demo encoder's step took 37 times as many page faults and 1.19-1.39 times as long
(``python benchmarks/heap_reuse.py``). Raising both thresholds to :data:`THRESHOLD_BYTES` keeps those blocks
in the heap; the numbers computed are the same, and so is peak memory, since the same blocks are reused. A
long-running command (``s2f serve``) may keep up to that much freed memory from the system.

The ``s2f`` command sets this for itself at start and, through the environment, for the processes it starts
(data loader workers, the world's render pool). A library import does not: the process is its owner's. Where
the owner has set either threshold, or ``GLIBC_TUNABLES``, or another allocator is preloaded, it is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["ENVIRONMENT", "THRESHOLD_BYTES", "reuse_freed_memory"]

THRESHOLD_BYTES = 256 * 1024 * 1024
"""Blocks up to this size come from the heap, and up to this much free memory stays at its top."""

ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(THRESHOLD_BYTES), "MALLOC_TRIM_THRESHOLD_": str(THRESHOLD_BYTES)}
"""The same setting as glibc reads it from the environment when a process starts: for the command's children."""

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def reuse_freed_memory() -> bool:
    """Raises glibc's mmap and trim thresholds for this process and its children; returns whether it did.

    Does nothing off glibc, where the environment already sets the allocator (``MALLOC_*_THRESHOLD_``,
    ``GLIBC_TUNABLES``, or an ``LD_PRELOAD``\\ ed allocator such as jemalloc or tcmalloc), or where
    ``S2F_DEFAULT_MALLOC=1`` asks for glibc's defaults.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if os.environ.get("S2F_DEFAULT_MALLOC") == "1" or "GLIBC_TUNABLES" in os.environ:
        return False
    if "LD_PRELOAD" in os.environ or any(name in os.environ for name in ENVIRONMENT):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not (libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES) and libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES)):
        return False
    os.environ.update(ENVIRONMENT)
    return True
