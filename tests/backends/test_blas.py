"""numpy's OpenBLAS called from @njit (graphc.backends.numba_cpu.blas) agrees with numpy's a @ b."""
import os

import numpy as np
import pytest
from numba import njit

from graphc.backends.numba_cpu import blas


def _operands(dtype, layout, rng):
    a = rng.standard_normal((13, 7)).astype(dtype)
    b = rng.standard_normal((7, 11)).astype(dtype)
    if layout == "NT":
        b = np.ascontiguousarray(b.T).T           # F-ordered: BLAS reads it with a transpose flag
    elif layout == "TN":
        a = np.ascontiguousarray(a.T).T
    elif layout == "strided":
        a = rng.standard_normal((13, 14)).astype(dtype)[:, ::2]   # neither C nor F: copied once
        b = rng.standard_normal((14, 11)).astype(dtype)[::2]
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["NN", "NT", "TN", "strided"])
def test_gemm_matches_numpy(dtype, layout):
    a, b = _operands(dtype, layout, np.random.default_rng(0))
    out = np.full((13, 11), np.nan, dtype)
    blas.gemm(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)
    if blas.AVAILABLE and layout != "strided":
        assert np.array_equal(out, a @ b)   # the same library and the same kernel as numpy's matmul


def test_gemm_into_a_strided_output_and_from_njit():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    big = np.zeros((5, 8), np.float32)

    @njit
    def call(a, b, out):
        blas.gemm(a, b.T.T, out[:, ::2])

    call(a, b, big)
    np.testing.assert_allclose(big[:, ::2], a @ b, rtol=1e-6)
    assert not big[:, 1::2].any()


def test_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="gemm: shapes do not match"):
        blas.gemm(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), np.empty((2, 2), np.float32))


def test_zero_inner_dimension_gives_zeros():
    out = np.full((3, 2), 7.0, np.float64)
    blas.gemm(np.ones((3, 0)), np.ones((0, 2)), out)
    assert not out.any()


def test_the_library_is_numpys_own():
    if not blas.AVAILABLE:
        pytest.skip("this numpy ships no OpenBLAS with 64-bit CBLAS symbols; gemm falls back to np.dot")
    from threadpoolctl import threadpool_info
    paths = {os.path.realpath(i["filepath"]) for i in threadpool_info() if i["internal_api"] == "openblas"}
    assert os.path.realpath(blas.LIBRARY) in paths




def test_gemms_run_on_one_blas_thread_and_leave_blas_there():
    import graphc
    from graphc.threads import blas_pools
    before = graphc.get_num_threads()
    graphc.set_num_threads(2)
    try:
        a = np.ones((300, 300), np.float32)   # 27M multiply-adds: one BLAS thread all the same
        for m in (8, 300):
            out = np.empty((m, 300), np.float32)
            blas.gemm(a[:m], a, out)
            assert np.array_equal(out, a[:m] @ a)
        # raising the count again would wake OpenBLAS's workers, which then spin (graphc.threadpool)
        assert all(n == 1 for lib, api, n in blas_pools() if api == "openblas" and "64_" in lib)
    finally:
        graphc.set_num_threads(before)


@njit(cache=False)
def _gemm_into_kernel(a, b, out, transpose_a, transpose_b):
    if transpose_a and transpose_b:
        blas.gemm_into(a.T, b.T, out)
    elif transpose_a:
        blas.gemm_into(a.T, b, out)
    elif transpose_b:
        blas.gemm_into(a, b.T, out)
    else:
        blas.gemm_into(a, b, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", [(13, 7, 11), (13, 0, 11), (100, 700, 300)])
def test_gemm_into_lean_path_matches_numpy_for_contiguous_and_transposed_operands(dtype, m, k, n):
    """What generated kernels call: C operands, and transposes of C buffers (F layout), k = 0 included,
    and a product of 21M multiply-adds (on one BLAS thread)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    for ta in (False, True):
        for tb in (False, True):
            out = np.full((m, n), np.nan, dtype)
            _gemm_into_kernel(np.ascontiguousarray(a.T) if ta else a, np.ascontiguousarray(b.T) if tb else b,
                              out, ta, tb)
            np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-4, err_msg=f"transposed a={ta} b={tb}")


def test_eager_matmul_splits_a_large_product_across_graphcs_threads_on_one_blas_thread():
    """threadpool.matmul: a product above SPLIT_GEMM runs as row blocks on graphc's threads, each on one
    OpenBLAS thread; the result is numpy's, and BLAS stays at one thread."""
    import graphc
    from graphc import threadpool
    from graphc.threads import blas_pools
    before = graphc.get_num_threads()
    graphc.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        for m, k, n in [(100, 1000, 300), (7, 50, 3), (33, 2, 5)]:   # split, small, tiny k
            a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
            np.testing.assert_allclose(threadpool.matmul(a, b), a @ b, rtol=1e-5, atol=1e-4)
        assert all(n == 1 for lib, api, n in blas_pools() if api == "openblas" and "64_" in lib)
    finally:
        graphc.set_num_threads(before)
