"""The thread budget's state and one-BLAS-thread sections, below every layer that runs BLAS.

    get_num_threads() -> 2 on a 2-core machine;  matmul(x, w.T) runs small products on one BLAS thread

graphc.threads sets the budget (BLAS pools through threadpoolctl, numba's threads through the
backends); the op table and the eager kernels only read it here, so they import nothing above them.
"""
from __future__ import annotations

import os

import numpy as np

from .cpu import usable_cores

_current = None   # the budget last set (None: never set in this process)


def default_num_threads(local_ranks=1):
    """GRAPHC_NUM_THREADS, or the usable cores shared among `local_ranks` processes on this node."""
    env = os.environ.get("GRAPHC_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"GRAPHC_NUM_THREADS={env!r} is not a whole number\n"
                             f"help: set it to a thread count such as 1 or {usable_cores()}") from None
        if n < 1:
            raise ValueError(f"GRAPHC_NUM_THREADS={env!r} must be at least 1")
        return n
    return max(1, usable_cores() // max(1, int(local_ranks)))


def get_num_threads():
    """The thread budget in effect: the last set_num_threads, or the default (all usable cores)."""
    return _current if _current is not None else default_num_threads()


def record_budget(n):
    """Remember the budget graphc.threads.set_num_threads just applied."""
    global _current
    _current = int(n)


# --- small GEMMs on one thread ---------------------------------------------------------------------

SMALL_GEMM = 1 << 24   # multiply-adds; the same cut as the compiled kernels' (backends/numba_cpu/blas.py)
_local_setter = []     # [ctypes function or None], looked up on first use


def blas_local_setter():
    """numpy's OpenBLAS openblas_set_num_threads_local(n) -> previous count, or None where it lacks it."""
    if not _local_setter:
        fn = None
        try:
            import ctypes
            import glob
            site = os.path.dirname(os.path.dirname(np.__file__))
            paths = sorted(glob.glob(os.path.join(site, "numpy.libs", "libscipy_openblas64_*.so*")))
            if paths:
                fn = getattr(ctypes.CDLL(paths[0]), "openblas_set_num_threads_local", None)
                if fn is not None:
                    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        except OSError:
            fn = None
        _local_setter.append(fn)
    return _local_setter[0]


def matmul(a, b):
    """np.matmul, with small 2-D products on one BLAS thread.   matmul(x, w.T)

    openblas_set_num_threads_local sets the library's thread count and returns the old one; it is
    restored right after. (Two Python threads doing this at once may restore each other's value;
    graphc.set_num_threads sets it again.)

    A multi-threaded OpenBLAS call waits for all its threads; with another process on a core that
    wait can last a scheduler slice (MLP's 64x784 @ 784x128: p90 40 ms at 2 threads, 0.16 ms at 1).
    """
    if a.ndim == 2 and b.ndim == 2 and a.shape[0] * a.shape[1] * b.shape[-1] < SMALL_GEMM:
        setter = blas_local_setter()
        if setter is not None:
            before = setter(1)
            try:
                return np.matmul(a, b)
            finally:
                setter(before)
    return np.matmul(a, b)

