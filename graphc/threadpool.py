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


# --- BLAS on one thread, graphc's threads around it -------------------------------------------------
#
# Every BLAS call graphc makes runs on one OpenBLAS thread; large products are split across graphc's own
# worker threads (thread_pool), as the conv kernels split their batch. Why: after a multi-threaded call,
# OpenBLAS's idle workers spin for up to ~0.1 s (2**28 cycles) before they sleep, and anything graphc
# runs on the other cores in that time runs at half speed: conv2's forward in the seed CNN took 26 ms
# right after a 2-thread fc1 GEMM, against 13 ms alone; the compiled CNN step went from 104 to 72 ms.

SPLIT_GEMM = 1 << 24   # multiply-adds from which a product is split across threads (one thread: ~0.1 ms)
MIN_ROWS = 16          # rows per block, at least
_local_setter = []     # [ctypes function or None], looked up on first use
_pools = {}            # {workers: ThreadPoolExecutor}, made on first use


def numpy_blas_library():
    """Path of the OpenBLAS bundled with numpy's wheel (numpy.libs/), or None (another build of numpy)."""
    import glob
    site = os.path.dirname(os.path.dirname(np.__file__))
    for pattern in ("numpy.libs/libscipy_openblas64_*.so*", "numpy/.dylibs/libscipy_openblas64_*.dylib"):
        found = sorted(glob.glob(os.path.join(site, pattern)))
        if found:
            return found[0]
    return None


def blas_local_setter():
    """numpy's OpenBLAS openblas_set_num_threads_local(n) -> previous count, or None where it lacks it."""
    if not _local_setter:
        fn = None
        try:
            import ctypes
            path = numpy_blas_library()
            if path is not None:
                fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
                if fn is not None:
                    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        except OSError:
            fn = None
        _local_setter.append(fn)
    return _local_setter[0]


def thread_pool(workers):
    """graphc's worker threads (a ThreadPoolExecutor per size, made once).   thread_pool(2).map(f, parts)"""
    pool = _pools.get(workers)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor
        pool = _pools.setdefault(workers, ThreadPoolExecutor(workers, "graphc"))
    return pool


def one_blas_thread():
    """Make numpy's OpenBLAS run each call on the calling thread only.   one_blas_thread(); np.matmul(a, b)

    The count is process-wide and is not put back: raising it again wakes OpenBLAS's workers, which
    then spin for ~0.1 s (the compiled CNN step ran 71 ms with a restore after each GEMM, 65 ms
    without). So from graphc's first BLAS call on, numpy's BLAS stays at one thread in this process;
    graphc.set_num_threads and threadpoolctl can raise it for code of your own."""
    setter = blas_local_setter()
    if setter is not None:
        setter(1)


def matmul(a, b):
    """np.matmul on one BLAS thread; a large 2-D product is split by rows across graphc's threads.

        matmul(x, w.T)     # x[100, 9216] @ w.T[9216, 128]: two row blocks of 50 on 2 threads
    """
    if a.ndim != 2 or b.ndim != 2:
        one_blas_thread()
        return np.matmul(a, b)
    return matmul_into(a, b, np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)))


def matmul_into(a, b, out):
    """out[...] = a @ b for 2-D operands, as matmul: what numba_cpu's host matmul kernels call."""
    m, k = a.shape
    n = b.shape[1]
    workers = min(get_num_threads(), m // MIN_ROWS)
    one_blas_thread()
    if workers < 2 or m * n * k < SPLIT_GEMM:
        return np.matmul(a, b, out=out)
    cuts = [m * i // workers for i in range(workers + 1)]

    def block(i):
        np.matmul(a[cuts[i]:cuts[i + 1]], b, out=out[cuts[i]:cuts[i + 1]])

    list(thread_pool(workers).map(block, range(workers)))
    return out
