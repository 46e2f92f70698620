"""How eager arrays get their memory: glibc's malloc keeps freed blocks of up to 32 MB for reuse.

    keep_freed_memory()   # at import (graphc.threads.configure_runtime); GRAPHC_MALLOC=as-is leaves malloc alone

An eager step allocates every result anew (the seed CNN: ~100 MB of arrays per step, several of 5-15
MB).  glibc serves blocks above its mmap threshold with fresh mmap()s and gives freed heap memory back
to the kernel past its trim threshold, so each step touched new pages: ~0.25 us a 4 KB page fault,
~30 ms of the eager CNN step (104 ms against 76 ms with the thresholds below, 2 cores).  Fixed
thresholds keep blocks up to 32 MB (glibc's largest mmap threshold) on the heap and keep up to
TRIM_BYTES of freed heap for the next step, as PyTorch's caching allocators do on GPUs.  A compiled
step is not affected: it runs in buffers planned once.
"""
from __future__ import annotations

import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt() parameters (malloc.h)
MMAP_BYTES = 32 << 20      # glibc's maximum on 64-bit systems: larger values are refused
TRIM_BYTES = 512 << 20

_applied = []


def keep_freed_memory():
    """Set glibc's mmap and trim thresholds once per process; True when they were set.

    Skipped off glibc (macOS, musl), when GRAPHC_MALLOC=as-is, and when the user set glibc's own
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ (theirs win).
    """
    if _applied:
        return _applied[0]
    ok = False
    if (sys.platform.startswith("linux") and os.environ.get("GRAPHC_MALLOC", "") != "as-is"
            and "MALLOC_MMAP_THRESHOLD_" not in os.environ and "MALLOC_TRIM_THRESHOLD_" not in os.environ):
        try:
            import ctypes
            libc = ctypes.CDLL(None)
            mallopt = getattr(libc, "mallopt", None)
            if mallopt is not None and hasattr(libc, "gnu_get_libc_version"):
                ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
        except OSError:
            ok = False
    _applied.append(ok)
    return ok
