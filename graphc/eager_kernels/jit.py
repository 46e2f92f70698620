"""numba for the eager kernels, optional: `njit` and the switch that picks the numba or the numpy path.

    _im2col_nb = njit(im2col_loop)   # numba.njit(cache=True) of the loop, or None without numba
    use_numba(np.float32)               # False without numba, with GRAPHC_EAGER_NUMBA=0, or for float16
"""

import os

import numpy as np

try:
    from numba import njit as _numba_njit, prange
except ImportError:  # optional: the numpy fallbacks cover everything
    _numba_njit, prange = None, range

HAVE_NUMBA = _numba_njit is not None

# Read by use_numba() on every call, so tests can switch paths at run time (eager_kernels.jit.USE_NUMBA).
USE_NUMBA = HAVE_NUMBA and os.environ.get("GRAPHC_EAGER_NUMBA", "1") != "0"

# numba kernels exist for these dtypes only (float16 cannot even be indexed
# inside a numba CPU kernel); other dtypes take the numpy path.
_NUMBA_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def njit(fn):
    """Serial ``numba.njit(cache=True)`` of fn, or None without numba.

    Serial on purpose: the conv kernels already run on several threads (one
    image range each); a prange inside them would oversubscribe the cores.
    """
    if _numba_njit is None:
        return None
    return _numba_njit(cache=True, nogil=True)(fn)   # nogil: the conv kernels run on several threads


def njit_parallel(fn):
    """``numba.njit(cache=True, parallel=True)`` of fn (whose outer loop is a prange), or None without numba.

    For kernels that run between GEMMs, not inside the conv's worker threads: graphc's GEMMs run on
    one OpenBLAS thread (graphc.threadpool), so no spinning BLAS thread competes with numba's threads.
    """
    if _numba_njit is None:
        return None
    return _numba_njit(cache=True, parallel=True)(fn)


def use_numba(dtype):
    """Whether kernels on arrays of ``dtype`` should take the numba path."""
    return USE_NUMBA and np.dtype(dtype) in _NUMBA_DTYPES
