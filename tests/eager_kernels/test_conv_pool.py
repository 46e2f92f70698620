"""graphc.eager_kernels conv2d / max-pool kernels against naive references.

Every test runs on both paths (numba kernels and the numpy fallback). The
references are direct loops in float64; torch, when importable, is a second
opinion.
"""

import numpy as np
import pytest

import graphc.eager_kernels as ek
from graphc.eager_kernels import conv as conv_mod
from graphc.eager_kernels import (
    conv2d,
    conv2d_grad_input,
    conv2d_grad_weight,
    maxpool2d_argmax,
    maxpool2d_gather,
    maxpool2d_scatter,
)
from tests.ops.cases.references import np_pool_scatter as ref_pool_scatter   # gradient summed into each argmax

BACKENDS = ["numba", "numpy"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    if request.param == "numba" and not ek.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(ek.jit, "USE_NUMBA", request.param == "numba")
    return request.param


@pytest.fixture(params=["one_chunk", "small_chunks"])
def chunking(request, monkeypatch):
    # small_chunks: a few images per chunk and a short last chunk.
    if request.param == "small_chunks":
        monkeypatch.setattr(conv_mod, "_CHUNK_BYTES", 1)
    return request.param


def rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- references


def out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def ref_conv2d(x, w, stride, padding):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = out_size(h, kh, sh, ph), out_size(wd, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, o, oh, ow))
    for b in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    win = xp[b, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[b, f, i, j] = np.sum(win * w[f])
    return y


def ref_conv2d_grads(gy, x, w, stride, padding):
    """(gx, gw) by scattering every output's gradient back over its window."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    for b in range(n):
        for f in range(o):
            for i in range(gy.shape[2]):
                for j in range(gy.shape[3]):
                    g = gy[b, f, i, j]
                    rows = slice(i * sh, i * sh + kh)
                    cols = slice(j * sw, j * sw + kw)
                    gxp[b, :, rows, cols] += g * w[f]
                    gw[f] += g * xp[b, :, rows, cols]
    return gxp[:, :, ph:ph + h, pw:pw + wd], gw


def ref_pool_argmax(x, kernel, stride, padding):
    """First strict maximum over the real (non-padding) window positions."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    idx = np.zeros((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, best_i = None, None
                    for di in range(kh):
                        for dj in range(kw):
                            ih, iw = i * sh - ph + di, j * sw - pw + dj
                            if 0 <= ih < h and 0 <= iw < w:
                                v = x[b, ch, ih, iw]
                                if best is None or v > best:
                                    best, best_i = v, ih * w + iw
                    idx[b, ch, i, j] = best_i
    return idx


# ------------------------------------------------------------------ conv2d

# (N, C, H, W, O, KH, KW, stride, padding)
CONV_CASES = [
    (2, 3, 7, 9, 4, 3, 3, (1, 1), (0, 0)),
    (2, 3, 8, 7, 5, 3, 2, (2, 1), (1, 0)),
    (1, 2, 9, 9, 3, 5, 5, (2, 2), (2, 2)),
    (3, 1, 6, 5, 2, 1, 1, (1, 1), (0, 0)),
    (2, 2, 7, 10, 3, 2, 3, (3, 2), (1, 1)),
    (5, 4, 5, 6, 2, 3, 3, (1, 2), (1, 2)),
    (2, 2, 4, 4, 2, 3, 3, (1, 1), (2, 2)),  # whole windows of padding
    (3, 1, 8, 8, 4, 3, 3, (1, 1), (0, 0)),  # C=1, like the first MNIST conv
]


def conv_case(case, dtype=np.float64, seed=0):
    n, c, h, w, o, kh, kw, stride, padding = case
    r = rng(seed)
    x = r.standard_normal((n, c, h, w)).astype(dtype)
    wt = r.standard_normal((o, c, kh, kw)).astype(dtype)
    oh, ow = out_size(h, kh, stride[0], padding[0]), out_size(w, kw, stride[1], padding[1])
    gy = r.standard_normal((n, o, oh, ow)).astype(dtype)
    return x, wt, gy, stride, padding


def check_array(a, ref, dtype, rtol):
    assert a.dtype == dtype
    assert a.flags.c_contiguous
    assert a.shape == ref.shape
    np.testing.assert_allclose(a, ref, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_reference(case, backend, chunking):
    x, w, gy, stride, padding = conv_case(case)
    gx_ref, gw_ref = ref_conv2d_grads(gy, x, w, stride, padding)
    check_array(conv2d(x, w, stride, padding), ref_conv2d(x, w, stride, padding),
                np.float64, 1e-12)
    check_array(conv2d_grad_input(gy, w, x.shape[2:], stride, padding), gx_ref,
                np.float64, 1e-12)
    check_array(conv2d_grad_weight(gy, x, w.shape[2:], stride, padding), gw_ref,
                np.float64, 1e-12)


@pytest.mark.parametrize("case", CONV_CASES[:3])
def test_conv2d_float32(case, backend):
    x, w, gy, stride, padding = conv_case(case, np.float32)
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    gx_ref, gw_ref = ref_conv2d_grads(gy64, x64, w64, stride, padding)
    check_array(conv2d(x, w, stride, padding),
                ref_conv2d(x64, w64, stride, padding), np.float32, 1e-4)
    check_array(conv2d_grad_input(gy, w, x.shape[2:], stride, padding), gx_ref,
                np.float32, 1e-4)
    check_array(conv2d_grad_weight(gy, x, w.shape[2:], stride, padding), gw_ref,
                np.float32, 1e-4)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_adjoint_identities(case, backend):
    # <conv(x, w), gy> == <x, grad_input(gy, w)> == <w, grad_weight(gy, x)>
    x, w, gy, stride, padding = conv_case(case, seed=1)
    y = conv2d(x, w, stride, padding)
    gx = conv2d_grad_input(gy, w, x.shape[2:], stride, padding)
    gw = conv2d_grad_weight(gy, x, w.shape[2:], stride, padding)
    lhs = np.vdot(y, gy)
    assert np.isclose(lhs, np.vdot(x, gx), rtol=1e-12)
    assert np.isclose(lhs, np.vdot(w, gw), rtol=1e-12)


def test_conv2d_non_contiguous_inputs(backend):
    x, w, gy, stride, padding = conv_case(CONV_CASES[0])
    x_f = np.asfortranarray(x)
    w_rev = np.ascontiguousarray(w[::-1])[::-1]  # equal to w, negative strides
    np.testing.assert_allclose(conv2d(x_f, w_rev, stride, padding),
                               ref_conv2d(x, w, stride, padding), rtol=1e-12)


def test_conv2d_empty_batch(backend):
    x = np.zeros((0, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    assert conv2d(x, w, (1, 1), (0, 0)).shape == (0, 3, 3, 3)
    gy = np.zeros((0, 3, 3, 3), np.float32)
    assert conv2d_grad_input(gy, w, (5, 5), (1, 1), (0, 0)).shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(
        conv2d_grad_weight(gy, x, (3, 3), (1, 1), (0, 0)), np.zeros_like(w))


def test_conv2d_bad_shapes():
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError):
        conv2d(x, np.zeros((3, 4, 3, 3)), (1, 1), (0, 0))  # channel mismatch
    with pytest.raises(ValueError):
        conv2d(x, np.zeros((3, 2, 7, 7)), (1, 1), (0, 0))  # empty output
    with pytest.raises(ValueError):
        conv2d(x, np.zeros((3, 2, 3, 3)), (0, 1), (0, 0))  # zero stride
    with pytest.raises(ValueError):
        conv2d_grad_weight(np.zeros((1, 3, 2, 2)), x, (3, 3), (1, 1), (0, 0))


# ---------------------------------------------------------------- max-pool

# (N, C, H, W, kernel, stride, padding)
POOL_CASES = [
    (2, 3, 8, 8, (2, 2), (2, 2), (0, 0)),
    (2, 2, 9, 7, (3, 3), (2, 2), (1, 1)),  # overlapping windows
    (1, 3, 7, 10, (3, 2), (1, 2), (1, 0)),
    (2, 1, 6, 9, (2, 3), (3, 1), (0, 1)),
    (1, 2, 5, 5, (1, 1), (1, 1), (0, 0)),
    (2, 2, 7, 7, (2, 2), (2, 2), (1, 1)),  # floor size drops the last row/col
]


def pool_case(case, dtype=np.float64, seed=0):
    n, c, h, w, kernel, stride, padding = case
    x = rng(seed).standard_normal((n, c, h, w)).astype(dtype)
    return x, kernel, stride, padding


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_matches_reference(case, dtype, backend):
    x, kernel, stride, padding = pool_case(case, dtype)
    idx = maxpool2d_argmax(x, kernel, stride, padding)
    ref = ref_pool_argmax(x, kernel, stride, padding)
    assert idx.dtype == np.int64 and idx.flags.c_contiguous
    np.testing.assert_array_equal(idx, ref)

    y = maxpool2d_gather(x, idx)
    planes = x.reshape(x.shape[0], x.shape[1], -1)
    y_ref = np.take_along_axis(planes, ref.reshape(*ref.shape[:2], -1), 2)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, y_ref.reshape(ref.shape))

    gy = rng(1).standard_normal(idx.shape).astype(dtype)
    gx = maxpool2d_scatter(gy, idx, x.shape[2:])
    check_array(gx, ref_pool_scatter(gy.astype(np.float64), ref, x.shape[2:]),
                dtype, 1e-6)


def test_maxpool_ties_go_to_first_element(backend):
    x = np.ones((2, 3, 6, 6), np.float32)
    idx = maxpool2d_argmax(x, (2, 2), (2, 2), (0, 0))
    gx = maxpool2d_scatter(np.ones(idx.shape, np.float32), idx, (6, 6))
    expected = np.zeros((6, 6), np.float32)
    expected[::2, ::2] = 1  # top-left of every window, nothing else
    np.testing.assert_array_equal(gx, np.broadcast_to(expected, gx.shape))


def test_maxpool_overlapping_windows_accumulate(backend):
    # kernel 3, stride 2: with all-equal inputs each window's top-left wins,
    # and windows sharing a top-left position add up their gradients.
    x = np.zeros((1, 1, 7, 7))
    idx = maxpool2d_argmax(x, (3, 3), (2, 2), (1, 1))
    gx = maxpool2d_scatter(np.ones(idx.shape), idx, (7, 7))
    np.testing.assert_array_equal(gx, ref_pool_scatter(np.ones(idx.shape), idx, (7, 7)))
    # windows start at rows/cols -1, 1, 3, 5: first real rows/cols 0, 1, 3, 5
    expected = np.zeros((7, 7))
    for r in (0, 1, 3, 5):
        for c in (0, 1, 3, 5):
            expected[r, c] = 1
    np.testing.assert_array_equal(gx[0, 0], expected)
    assert gx.sum() == idx.size

    # a single large value shared by four overlapping windows
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    idx = maxpool2d_argmax(x, (3, 3), (2, 2), (0, 0))
    gx = maxpool2d_scatter(np.full(idx.shape, 0.5), idx, (5, 5))
    assert gx[0, 0, 2, 2] == 2.0 and gx.sum() == 2.0


def test_maxpool_padding_never_wins(backend):
    x = np.full((1, 2, 4, 5), -np.inf)
    idx = maxpool2d_argmax(x, (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(idx, ref_pool_argmax(x, (3, 3), (2, 2), (1, 1)))
    np.testing.assert_array_equal(maxpool2d_gather(x, idx), np.full(idx.shape, -np.inf))


@pytest.mark.parametrize("kernel,stride", [((2, 2), (2, 2)), ((3, 3), (3, 3))])
def test_maxpool_last_nan_wins(kernel, stride, backend):
    # NaN is a maximum and the window's last NaN wins, as in PyTorch's CPU
    # kernel. (2, 2) takes the unrolled numba kernel, (3, 3) the general one.
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    x[0, 0, 1, 1] = 5.0
    idx = maxpool2d_argmax(x, kernel, stride, (0, 0))
    assert idx[0, 0, 0, 0] == 1 * 6 + 0
    assert np.isnan(maxpool2d_gather(x, idx)[0, 0, 0, 0])
    assert not np.isnan(maxpool2d_gather(x, idx)[0, 0, 1:, 1:]).any()


@pytest.mark.parametrize("kernel,stride,padding", [
    ((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)), ((2, 3), (1, 2), (1, 1))])
def test_maxpool_ties_with_random_duplicates(kernel, stride, padding, backend):
    # small integers make many ties in every window
    x = rng(5).integers(0, 3, (2, 3, 7, 8)).astype(np.float32)
    np.testing.assert_array_equal(maxpool2d_argmax(x, kernel, stride, padding),
                                  ref_pool_argmax(x, kernel, stride, padding))


def test_maxpool_bad_arguments(backend):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError):
        maxpool2d_argmax(x, (2, 2), (2, 2), (2, 2))  # padding > kernel / 2
    with pytest.raises(ValueError):
        maxpool2d_argmax(x, (5, 5), (1, 1), (0, 0))  # empty output
    bad = np.full((1, 1, 2, 2), 16, np.int64)
    with pytest.raises(IndexError):
        maxpool2d_gather(x, bad)
    with pytest.raises(IndexError):
        maxpool2d_scatter(np.ones((1, 1, 2, 2)), bad, (4, 4))


# ------------------------------------------------------------------ torch


@pytest.mark.parametrize("case", CONV_CASES[:6])
def test_conv2d_matches_torch(case, backend):
    torch = pytest.importorskip("torch")
    x, w, gy, stride, padding = conv_case(case, np.float32, seed=2)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=padding)
    ty.backward(torch.tensor(gy))
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv2d(x, w, stride, padding), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(conv2d_grad_input(gy, w, x.shape[2:], stride, padding),
                               tx.grad.numpy(), **tol)
    np.testing.assert_allclose(conv2d_grad_weight(gy, x, w.shape[2:], stride, padding),
                               tw.grad.numpy(), **tol)


@pytest.mark.parametrize("special", ["random", "ties", "nans"])
@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_matches_torch(case, special, backend):
    torch = pytest.importorskip("torch")
    x, kernel, stride, padding = pool_case(case, np.float32, seed=3)
    if special == "ties":
        x = np.round(x)
    elif special == "nans":
        x[rng(6).random(x.shape) < 0.2] = np.nan
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = torch.nn.functional.max_pool2d(
        tx, kernel, stride, padding, return_indices=True)
    gy = rng(4).standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(gy))
    idx = maxpool2d_argmax(x, kernel, stride, padding)
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_array_equal(maxpool2d_gather(x, idx), ty.detach().numpy())  # NaN == NaN here
    np.testing.assert_allclose(maxpool2d_scatter(gy, idx, x.shape[2:]),
                               tx.grad.numpy(), rtol=1e-6, atol=1e-6)
