"""numpy's own OpenBLAS, callable from @njit: one BLAS and one thread pool for a whole step.

    from graphc.backends.numba_cpu.blas import gemm
    gemm(a, b, out)      # out[...] = a @ b, inside or outside @njit; a, b, out 2-D float32 or float64

Why: `np.dot` inside @njit calls scipy's OpenBLAS, while numpy's `@` calls the OpenBLAS bundled
with numpy.  Each library keeps its own busy-waiting thread pool, and a step that used both ran
180 ms median / 270 ms p90 instead of 108 ms (2-core machine, both pools at 2 threads).  So the
generated kernels call numpy's library by name: `scipy_cblas_sgemm64_` (CBLAS, 64-bit integers).
The library is loaded into LLVM's symbol table once, at import, and the kernels refer to the
symbol by name (an `ExternalFunction`), not by address, so numba's on-disk cache stays valid
across processes.  Where numpy ships another BLAS (no such symbol), `gemm` falls back to np.dot.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ...threadpool import numpy_blas_library

# CBLAS enum values (cblas.h)
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
SYMBOLS = {"float32": "scipy_cblas_sgemm64_", "float64": "scipy_cblas_dgemm64_"}
THREADS_LOCAL = "openblas_set_num_threads_local"   # OpenBLAS >= 0.3.27: this thread's BLAS thread count
# Every GEMM runs on one OpenBLAS thread (graphc.threadpool says why: idle OpenBLAS workers spin for
# ~0.1 s after a multi-threaded call and halve the speed of the conv kernels that follow).  Large
# products do not come here: the emitter makes them host kernels that graphc.threadpool.matmul_into
# splits into row blocks across graphc's threads.


def _load_symbols():
    """Make numpy's sgemm/dgemm visible to numba's JIT linker: (both resolve?, thread-local count too?)."""
    path = numpy_blas_library()
    if path is None or os.environ.get("GRAPHC_NUMBA_BLAS") == "scipy":
        return False, False
    import ctypes
    from llvmlite import binding
    try:
        lib = ctypes.CDLL(path)
        if not all(hasattr(lib, name) for name in SYMBOLS.values()):
            return False, False
        binding.load_library_permanently(path)
    except OSError:
        return False, False
    return True, hasattr(lib, THREADS_LOCAL)


AVAILABLE, HAS_THREADS_LOCAL = _load_symbols()
LIBRARY = numpy_blas_library() if AVAILABLE else None


def _gemm_signature(real):
    ptr = types.voidptr
    return types.void(types.int32, types.int32, types.int32, types.int64, types.int64, types.int64, real, ptr,
                      types.int64, ptr, types.int64, real, ptr, types.int64)


_sgemm = types.ExternalFunction(SYMBOLS["float32"], _gemm_signature(types.float32))
_dgemm = types.ExternalFunction(SYMBOLS["float64"], _gemm_signature(types.float64))
_threads_local = types.ExternalFunction(THREADS_LOCAL, types.int32(types.int32))


@intrinsic
def _address(typingctx, arr):
    """The data pointer of an array as void* (what a C function wants)."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.bitcast(ary.data, cgutils.voidptr_t)
    return types.voidptr(arr), codegen


@njit(cache=True, inline="always")
def _layout(a, itemsize):
    """(transpose flag, leading dimension) of a 2-D operand BLAS can read in place, or (0, 0) if none."""
    s0, s1 = a.strides[0] // itemsize, a.strides[1] // itemsize
    if (s1 == 1 or a.shape[1] == 1) and s0 >= max(1, a.shape[1]) and a.strides[0] % itemsize == 0:
        return NO_TRANS, s0
    if (s0 == 1 or a.shape[0] == 1) and s1 >= max(1, a.shape[0]) and a.strides[1] % itemsize == 0:
        return TRANS, s1
    return 0, 0


@njit(cache=True, inline="always")
def _sizes(a, b, out):
    """(m, n, k) of out[m, n] = a[m, k] @ b[k, n]; raises when the shapes do not fit together."""
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
        raise ValueError("gemm: shapes do not match")
    return m, n, k


if AVAILABLE:
    @njit(cache=True)
    def gemm(a, b, out):
        """out[...] = a @ b through numpy's OpenBLAS; strided operands are read in place or copied once."""
        m, n, k = _sizes(a, b, out)
        if m == 0 or n == 0:
            return
        item = out.itemsize
        ta, lda = _layout(a, item)
        if ta == 0:
            a = np.ascontiguousarray(a)
            ta, lda = NO_TRANS, max(1, k)
        tb, ldb = _layout(b, item)
        if tb == 0:
            b = np.ascontiguousarray(b)
            tb, ldb = NO_TRANS, max(1, n)
        direct = out.strides[1] == item and out.strides[0] >= item * max(1, n)
        c = out if direct else np.empty((m, n), out.dtype)
        ldc = c.strides[0] // item
        if HAS_THREADS_LOCAL:   # one BLAS thread, left so (graphc.threadpool.one_blas_thread says why)
            _threads_local(1)
        if k == 0:
            c[...] = 0
        elif item == 4:   # float32 (both branches type-check: the pointers are void*)
            _sgemm(ROW_MAJOR, ta, tb, m, n, k, np.float32(1.0), _address(a), lda, _address(b), ldb,
                   np.float32(0.0), _address(c), ldc)
        else:
            _dgemm(ROW_MAJOR, ta, tb, m, n, k, np.float64(1.0), _address(a), lda, _address(b), ldb,
                   np.float64(0.0), _address(c), ldc)
        if not direct:   # element loop: `out[...] = c` compiles numba's costly broadcast error path
            for i in range(m):
                for j in range(n):
                    out[i, j] = c[i, j]
else:
    @njit(cache=True)
    def gemm(a, b, out):
        """out[...] = a @ b through the BLAS numba links (numpy ships no OpenBLAS this module can call)."""
        # Typed as contiguous: a strided (layout "A") operand, e.g. a batched matmul's a[i0] or a sliced
        # out, makes numba print a NumbaPerformanceWarning ("np.vdot() is faster on contiguous arrays")
        # into the user's output when the kernel compiles; a copy costs less than numba's strided path.
        out[...] = np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))


def gemm_into(a, b, out):
    """out[...] = a @ b: what generated kernels call.  Inside @njit it compiles to the lean path below when
    numba's types already say every operand is contiguous (C, or F: a transposed view); else to `gemm`."""
    gemm(a, b, out)


@overload(gemm_into)
def _gemm_into(a, b, out):
    """Typing-time dispatch.  `gemm`'s general path (copies of strided operands, a staging output, its
    error message) costs numba ~1-2 s to compile per layout combination; generated kernels pass only
    contiguous planned buffers and transposes of them, where the CBLAS call alone does."""
    lean = (AVAILABLE and a.ndim == b.ndim == out.ndim == 2 and a.layout in "CF" and b.layout in "CF"
            and out.layout == "C" and a.dtype == b.dtype == out.dtype and str(out.dtype) in SYMBOLS)
    if not lean:
        return lambda a, b, out: gemm(a, b, out)
    ta = NO_TRANS if a.layout == "C" else TRANS
    tb = NO_TRANS if b.layout == "C" else TRANS
    call = _sgemm if str(out.dtype) == "float32" else _dgemm
    one, zero = (np.float32(1.0), np.float32(0.0)) if str(out.dtype) == "float32" else (1.0, 0.0)

    def lean_gemm(a, b, out):
        m, n, k = _sizes(a, b, out)
        if m == 0 or n == 0:
            return
        if k == 0:
            for i in range(m):
                for j in range(n):
                    out[i, j] = 0
            return
        lda = max(1, k) if ta == NO_TRANS else max(1, m)
        ldb = max(1, n) if tb == NO_TRANS else max(1, k)
        if HAS_THREADS_LOCAL:   # one BLAS thread, left so (graphc.threadpool.one_blas_thread says why)
            _threads_local(1)
        call(ROW_MAJOR, ta, tb, m, n, k, one, _address(a), lda, _address(b), ldb, zero, _address(out), max(1, n))
    return lean_gemm


def source_fingerprint():
    """A hash of this module's source: generated modules carry it so that numba's cache (which checks only
    the caller's own file) recompiles them when this helper changes."""
    with open(__file__, "rb") as fh:
        return hashlib.sha256(fh.read() + str((AVAILABLE, HAS_THREADS_LOCAL)).encode()).hexdigest()[:16]


def module_prelude():
    """The import a generated module needs to call `_graphc_gemm`, stamped with this module's fingerprint."""
    return (f"# _graphc_gemm: numpy's OpenBLAS from @njit (graphc.backends.numba_cpu.blas {source_fingerprint()}; "
            f"{'numpy OpenBLAS' if AVAILABLE else 'np.dot fallback'})\n"
            "from graphc.backends.numba_cpu.blas import gemm_into as _graphc_gemm")
