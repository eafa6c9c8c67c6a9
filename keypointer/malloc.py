"""Tune glibc malloc before big tensors are allocated.

With glibc's default dynamic mmap threshold, every large activation of a CPU
training step is a fresh mmap/munmap pair, and the step spends most of its
time in page faults (measured in benchmarks/RESULTS.md). The ``MALLOC_*``
environment variables only work when set before the process starts, so we set
the same knobs at run time with ``mallopt``. A user's own ``MALLOC_*``
variables win; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_DONE = False


def tune_malloc() -> bool:
    """Keep freed memory in the heap instead of returning it to the OS at once."""
    global _DONE
    if (
        _DONE
        or not sys.platform.startswith("linux")
        or os.environ.get("KEYPOINTER_NO_MALLOC_TUNING")
    ):
        return False
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
            return False
        big = 1 << 30
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 29)  # 512 MiB: the largest value glibc accepts
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, big)
        ok &= libc.mallopt(_M_TOP_PAD, 1 << 28)
    except OSError:
        return False
    _DONE = bool(ok)
    return _DONE
