"""Find numba's CUDA target, or say in one BackendError what is missing and the way out.

    cuda, target = require_cuda()      # (numba.cuda, layout.GPU) or (numba.cuda, layout.SIMULATOR)

What can be missing: the numba-cuda package; the NVIDIA driver (libcuda); a GPU; NVVM (the
compiler numba-cuda needs, from the CUDA toolkit wheels).  The simulator
(NUMBA_ENABLE_CUDASIM=1, set before anything imports numba) needs none of them but numba-cuda.
"""
from __future__ import annotations

import importlib.util
import os

from ...errors import BackendError
from .layout import GPU, SIMULATOR

WAY_OUT = ("use backend='numba_cpu' (or 'interpreter'), or run on NVIDIA's CUDA simulator by setting "
           "NUMBA_ENABLE_CUDASIM=1 in the environment before Python starts (slow: tiny shapes only)")
INSTALL = "pip install 'numba-cuda[cu12]' (the CUDA 12 toolkit wheels with it)"


def simulator_requested():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


def require_cuda():
    """(numba.cuda, Target) for a usable CUDA target; a BackendError naming what is missing otherwise."""
    if importlib.util.find_spec("numba_cuda") is None:
        raise BackendError("numba_cuda", "the numba-cuda package is not installed",
                           hint=f"{INSTALL}; or {WAY_OUT}")
    import numba
    if simulator_requested() and not numba.config.ENABLE_CUDASIM:
        raise BackendError("numba_cuda", "NUMBA_ENABLE_CUDASIM=1 was set after numba had been imported, so the "
                                         "CUDA simulator is off",
                           hint="set NUMBA_ENABLE_CUDASIM=1 before starting Python (or at the very top of the "
                                "script, before importing graphc or numba)")
    from numba import cuda
    if numba.config.ENABLE_CUDASIM:
        _fix_simulator_shared_arrays()
        return cuda, SIMULATOR
    reason = why_unavailable(cuda)
    if reason:
        raise BackendError("numba_cuda", reason, hint=WAY_OUT)
    return cuda, GPU


def why_unavailable(cuda):
    """None when a GPU is usable; otherwise what is missing, in words."""
    from numba.cuda.cudadrv import driver as drv
    try:
        ok = drv.driver.is_available
    except Exception as exc:     # CudaSupportError: the driver library failed to load or init
        ok, _ = False, exc
    if not ok:
        text = str(getattr(drv.driver, "initialization_error", "") or "")
        if "cannot be found" in text or "libcuda" in text or "not found" in text.lower():
            return "no CUDA driver found (the NVIDIA driver library libcuda.so could not be loaded)"
        if "NO_DEVICE" in text or "no CUDA-capable device" in text:
            return "no GPU found (the CUDA driver is installed but reports no CUDA-capable device)"
        return f"the CUDA driver could not be initialised: {text.strip() or 'unknown error'}"
    try:
        gpus = len(cuda.gpus)
    except Exception as exc:
        return f"no GPU found ({type(exc).__name__}: {exc})"
    if not gpus:
        return "no GPU found (the CUDA driver reports no CUDA-capable device)"
    from numba.cuda.cudadrv import nvvm
    if not nvvm.is_available():
        return f"NVVM, the CUDA compiler numba-cuda needs, was not found; {INSTALL}"
    return None


def compute_capability(cuda, target):
    """(major, minor) of the current GPU; sm_80 for the simulator (the PTX checks' default)."""
    if target is SIMULATOR:
        return (8, 0)
    return tuple(cuda.get_current_device().compute_capability)


def _fix_simulator_shared_arrays():
    """Make the simulator's cuda.shared.array thread-safe.

    numba-cuda's simulator (0.30, simulator/kernelapi.py FakeCUDAShared.array) allocates a block's
    shared array the first time one of its threads reaches the line, with no lock: two threads can
    each allocate their own copy, and the block's "shared" memory silently stops being shared
    (wrong sums and products, now and then, more often on a busy machine).  Same lookup, under a lock.
    """
    import sys
    import threading

    import numpy as np
    from numba.cuda.simulator import kernelapi

    cls = kernelapi.FakeCUDAShared
    if getattr(cls, "_graphc_locked", False):
        return
    original = cls.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            res = self._allocations.get(key)
            if res is None:
                res = self._allocations[key] = np.empty(shape, dtype)
        return res

    cls.array = array
    cls._graphc_locked = True
