"""graphc.set_num_threads: one knob for the threads of every BLAS library loaded and of numba.

    graphc.set_num_threads(1)      # like torch.set_num_threads; also GRAPHC_NUM_THREADS=1
"""
import os

from .backends import set_kernel_threads

_BLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
                 "openblas_set_num_threads", "MKL_Set_Num_Threads", "bli_thread_set_num_threads")


def set_num_threads(n):
    """Use n threads in every BLAS library loaded (numpy's and scipy's, which compiled kernels call) and in numba.

    Why: the seed models' matmuls are small (64x784 @ 784x128), and a multi-threaded OpenBLAS
    busy-waits for its threads; when another process holds a core, a step gets 20-30x slower
    (measured on a 2-core machine: 1.3 ms -> 32 ms per eager MLP step).  One thread never has
    that cliff.  Returns the libraries changed, for the summary.
    """
    import ctypes
    try:   # the BLAS that numba's matmul kernels call is scipy's: load it now so that it is limited too
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    changed = []
    for path in _loaded_libraries(("openblas", "mkl_rt", "blis")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn.restype = None
                fn(int(n))
                changed.append(os.path.basename(path))
                break
    set_kernel_threads(n)
    return changed


def _loaded_libraries(keywords):
    found = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 6 and parts[-1].startswith("/") and ".so" in parts[-1]:
                    name = os.path.basename(parts[-1]).lower()
                    if any(k in name for k in keywords) and parts[-1] not in found:
                        found.append(parts[-1])
    except OSError:   # not Linux: leave the libraries at their defaults
        pass
    return found
