"""One thread budget for BLAS and numba, all cores by default (as torch).

    graphc.set_num_threads(1)        # like torch.set_num_threads; GRAPHC_NUM_THREADS=1 does it at import
    graphc.get_num_threads()         # -> 2 on a 2-core machine
    default_num_threads(local_ranks=4)   # cores / processes per node, for one MPI rank

Three things keep parallel numba loops and BLAS from spinning against each other:
* one BLAS: numba kernels call numpy's OpenBLAS (backends/numba_cpu/blas.py), so a step has one
  BLAS thread pool, not numpy's plus scipy's;
* numba's OpenMP threads sleep when idle (OMP_WAIT_POLICY=PASSIVE): with OpenMP's default active
  wait, a prange loop + sgemm + prange loop took 72 ms median against 16 ms passive (2 cores; see
  benchmarks/bench_wait_policy.py), and 120 ms against 47 ms with a busy process on one core;
* BLAS runs each call on one thread (graphc.threadpool): graphc's own threads split the work (conv
  image ranges, GEMM row blocks), so no idle OpenBLAS worker spins next to them; OpenMP pools and
  numba's parallel loops get the budget, set through threadpoolctl.
`configure_runtime` sets the environment for the first two before numba loads; a user's own
OMP_WAIT_POLICY / NUMBA_THREADING_LAYER(_PRIORITY) wins, and GRAPHC_THREADING=as-is leaves all alone.
"""
from __future__ import annotations

import os
import sys

from . import allocator, threadpool
from .backends import set_kernel_threads
from .threadpool import default_num_threads, get_num_threads  # noqa: F401  (graphc's public names)

# omp first: it survives concurrent calls from several Python threads (workqueue aborts the process);
# tbb last: its pip wheel's libtbb is often outside the loader path.
THREADING_LAYER_PRIORITY = "omp workqueue tbb"


def configure_runtime():
    """Choose numba's threading layer and OpenMP's wait policy; call before numba loads its thread pool.
    Also keeps freed memory for the next eager step (graphc.allocator)."""
    allocator.keep_freed_memory()
    if os.environ.get("GRAPHC_THREADING", "") == "as-is":
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "NUMBA_THREADING_LAYER" not in os.environ:
        os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", THREADING_LAYER_PRIORITY)
        numba_config = getattr(sys.modules.get("numba.core.config"), "THREADING_LAYER_PRIORITY", None)
        if numba_config is not None:   # numba already imported: its pool starts at the first prange launch
            sys.modules["numba.core.config"].THREADING_LAYER_PRIORITY = THREADING_LAYER_PRIORITY.split()


def set_num_threads(n):
    """graphc's thread budget: n threads for OpenMP pools (threadpoolctl), numba's parallel loops and
    graphc's own worker threads; every BLAS library loaded runs each call on one thread (graphc splits
    large products and convolutions across its threads itself, see graphc.threadpool).

    Returns the libraries changed, e.g. ['libscipy_openblas64_-32a4b2a6.so (openblas)'].
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: need at least 1 thread, got {n}")
    try:   # scipy's OpenBLAS (the one numba's own np.dot reaches): load it now so it is limited too
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    changed = []
    for lib in _controllers():
        try:
            lib.set_num_threads(1 if lib.user_api == "blas" else n)
            changed.append(f"{os.path.basename(lib.filepath)} ({lib.internal_api})")
        except Exception:   # a library threadpoolctl can see but not steer: leave it at its default
            continue
    set_kernel_threads(n)
    threadpool.record_budget(n)
    return changed


def blas_pools():
    """[(library file, api, threads)] of every thread pool loaded: what the bench prints under its table."""
    return [(os.path.basename(lib.filepath), lib.internal_api, lib.num_threads) for lib in _controllers()]


def _controllers():
    # threadpoolctl finds every loaded BLAS / OpenMP runtime (numpy's and scipy's OpenBLAS, MKL, BLIS, libgomp)
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController().lib_controllers
