"""max_pool2d as argmax + gather (forward) and scatter-add (backward).

NCHW, -inf padding (padding never wins), floor output size, dilation 1.
The forward keeps the argmax indices so the backward is a plain scatter;
an index is the flat position ih*W + iw inside the input's (n, c) plane, of
the FIRST maximum of its window in row-major window order (PyTorch's tie
rule). NaN counts as a maximum and, as in PyTorch's CPU kernel, a window's
LAST NaN wins, so indices match PyTorch's even there.

The numba kernels split the batch across numba's threads (prange): the
argmax took 2.7 ms serial on the MNIST CNN's [100,64,24,24]. That pays now that
graphc's GEMMs run on one OpenBLAS thread (graphc.threadpool): no spinning BLAS
thread is left to fight numba's. A bad index is counted inside the loop and
raised after it (a raise in a prange body makes numba run the loop serially).
"""

import numpy as np

from .jit import njit, njit_parallel, prange, use_numba


def _pair(v, name, minimum):
    h, w = (int(v[0]), int(v[1]))
    if h < minimum or w < minimum:
        raise ValueError(f"max_pool2d {name} must be >= {minimum}, got {v}")
    return h, w


def _pool_geometry(hw, kernel, stride, padding):
    kh, kw = _pair(kernel, "kernel", 1)
    sh, sw = _pair(kernel if stride is None else stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    # As PyTorch: this keeps at least one real input in every window.
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"max_pool2d padding {padding} must be at most half "
                         f"the kernel {kernel}")
    oh = (hw[0] + 2 * ph - kh) // sh + 1
    ow = (hw[1] + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"max_pool2d output would be empty: input {tuple(hw)}"
                         f", kernel {kernel}, stride {stride}, padding {padding}")
    return kh, kw, sh, sw, ph, pw, oh, ow


# --------------------------------------------------------------------------
# numba kernels


# Both argmax kernels replace the running best when
#     (v > best) | (v != v)
# i.e. v is greater, or v is NaN (PyTorch's rule: the last NaN wins). The
# bitwise | matters: a short-circuit "or" compiles to extra unpredictable
# branches, which made the general kernel 2x slower (21 vs 11 ms).


def argmax_loop(x, kh, kw, sh, sw, ph, pw, idx):
    n, c, h, w = x.shape
    oh_n, ow_n = idx.shape[2], idx.shape[3]
    for b in prange(n):
        for ch in range(c):
            plane = x[b, ch]
            out = idx[b, ch]
            for oh in range(oh_n):
                h0 = oh * sh - ph
                h_lo, h_hi = max(h0, 0), min(h0 + kh, h)
                for ow in range(ow_n):
                    w0 = ow * sw - pw
                    w_lo, w_hi = max(w0, 0), min(w0 + kw, w)
                    # Start at the window's first real element, so padding
                    # never wins even when every real element is -inf.
                    best = plane[h_lo, w_lo]
                    best_i = h_lo * w + w_lo
                    for ih in range(h_lo, h_hi):
                        for iw in range(w_lo, w_hi):
                            v = plane[ih, iw]
                            if (v > best) | (v != v):
                                best = v
                                best_i = ih * w + iw
                    out[oh, ow] = best_i


def argmax_2x2_loop(x, idx):
    # kernel 2x2, stride 2, no padding (the MNIST CNN's and most CNNs' pool)
    # unrolled: 2.4 ms instead of the general kernel's 11 ms on [100,64,24,24].
    n, c, h, w = x.shape
    oh_n, ow_n = idx.shape[2], idx.shape[3]
    for b in prange(n):
        for ch in range(c):
            for oh in range(oh_n):
                top, bottom = x[b, ch, 2 * oh], x[b, ch, 2 * oh + 1]
                out = idx[b, ch, oh]
                i_top = 2 * oh * w
                for ow in range(ow_n):
                    j = 2 * ow
                    best, best_i = top[j], i_top + j
                    v = top[j + 1]
                    if (v > best) | (v != v):
                        best, best_i = v, i_top + j + 1
                    v = bottom[j]
                    if (v > best) | (v != v):
                        best, best_i = v, i_top + w + j
                    v = bottom[j + 1]
                    if (v > best) | (v != v):
                        best, best_i = v, i_top + w + j + 1
                    out[ow] = best_i


def gather_loop(x3, idx3, y3):
    n, c, hw = x3.shape
    bad = 0   # a raise inside a prange body would make numba run the loop serially: count, raise after
    for b in prange(n):
        for ch in range(c):
            plane, ids, out = x3[b, ch], idx3[b, ch], y3[b, ch]
            for k in range(ids.shape[0]):
                j = ids[k]
                if j < 0 or j >= hw:
                    bad += 1
                else:
                    out[k] = plane[j]
    if bad:
        raise IndexError("max-pool index out of range")


def scatter_loop(gy3, idx3, gx3):
    # gx3 = 0, then gy added at idx: each (n, c) plane is zeroed just before its scatter, in cache
    n, c, hw = gx3.shape
    bad = 0
    for b in prange(n):
        for ch in range(c):
            g, ids, plane = gy3[b, ch], idx3[b, ch], gx3[b, ch]
            for j in range(hw):
                plane[j] = 0
            for k in range(ids.shape[0]):
                j = ids[k]
                if j < 0 or j >= hw:
                    bad += 1
                else:
                    plane[j] += g[k]
    if bad:
        raise IndexError("max-pool index out of range")


# Public: numba_cpu's generated pooling kernels call these compiled loops too.
argmax_nb = njit_parallel(argmax_loop)
argmax_2x2_nb = njit_parallel(argmax_2x2_loop)
gather_nb = njit_parallel(gather_loop)
scatter_nb = njit_parallel(scatter_loop)
# Serial builds of the same loops (prange runs as range): what generated @njit kernels call on small
# inputs. A cached @njit kernel must not call a parallel function of another module: numba's cached
# copy of it crashes when a later process loads it (numba_cpu calls the parallel builds from the host).
argmax_serial_nb = njit(argmax_loop)
argmax_2x2_serial_nb = njit(argmax_2x2_loop)
gather_serial_nb = njit(gather_loop)
scatter_serial_nb = njit(scatter_loop)


# --------------------------------------------------------------------------
# numpy fallbacks


def _argmax_numpy(x, kh, kw, sh, sw, ph, pw, oh, ow):
    # One vectorised pass per window offset, in row-major window order, with
    # the kernels' replace rule (first max, last NaN). Branch-free
    # arithmetic: np.where / masked copyto cost 3-6 ms a pass on random
    # masks, argmax over a copied [..., KH*KW] window array ~40 ms in all.
    n, c, h, w = x.shape
    xp = x
    if ph or pw:
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)),
                    constant_values=-np.inf)
    best = arg = None
    for di in range(kh):
        for dj in range(kw):
            v = xp[:, :, di:di + sh * (oh - 1) + 1:sh,
                   dj:dj + sw * (ow - 1) + 1:sw]
            if best is None:
                best, arg = v.copy(), np.zeros(v.shape, np.int32)
                continue
            take = (v > best) | (v != v)
            # np.maximum propagates NaN: it is the replace rule's new best.
            np.maximum(best, v, out=best)
            arg += take * (di * kw + dj - arg)
    h0 = (np.arange(oh) * sh - ph)[:, None]
    w0 = (np.arange(ow) * sw - pw)[None, :]
    ih, iw = h0 + arg // kw, w0 + arg % kw
    # A padding slot wins only when every real element is -inf too; then the
    # first real element (the clipped window's top-left) is the answer.
    pad = (ih < 0) | (ih >= h) | (iw < 0) | (iw >= w)
    ih = np.where(pad, np.maximum(h0, 0), ih)
    iw = np.where(pad, np.maximum(w0, 0), iw)
    return ih * w + iw


def _check_index(idx, hw):
    if idx.size and (idx.min() < 0 or idx.max() >= hw):
        raise IndexError("max-pool index out of range")


# --------------------------------------------------------------------------
# public API


def maxpool2d_argmax(x, kernel, stride, padding):
    """int64 idx[N,C,OH,OW] of each window's first max (flat h*W+w), e.g. maxpool2d_argmax(x, (2, 2), (2, 2), (0, 0))."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry((h, w), kernel, stride,
                                                    padding)
    if use_numba(x.dtype):
        idx = np.empty((n, c, oh, ow), np.int64)
        if (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0):
            argmax_2x2_nb(x, idx)
        else:
            argmax_nb(x, kh, kw, sh, sw, ph, pw, idx)
        return idx
    return np.ascontiguousarray(
        _argmax_numpy(x, kh, kw, sh, sw, ph, pw, oh, ow), dtype=np.int64)


def maxpool2d_gather(x, idx):
    """y[N,C,OH,OW] = x's (n, c) plane at idx, e.g. maxpool2d_gather(x, maxpool2d_argmax(x, (2, 2), (2, 2), (0, 0)))."""
    x = np.ascontiguousarray(x)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    n, c, h, w = x.shape
    if idx.shape[:2] != (n, c):
        raise ValueError(f"maxpool2d_gather: idx {idx.shape} vs x {x.shape}")
    x3 = x.reshape(n, c, h * w)
    idx3 = idx.reshape(n, c, -1)
    if use_numba(x.dtype):
        y3 = np.empty(idx3.shape, x.dtype)
        gather_nb(x3, idx3, y3)
        return y3.reshape(idx.shape)
    _check_index(idx3, h * w)
    return np.take_along_axis(x3, idx3, axis=2).reshape(idx.shape)


def maxpool2d_scatter(gy, idx, input_hw):
    """gx[N,C,H,W] with gy added (+=) at idx, e.g. maxpool2d_scatter(gy, idx, (24, 24))."""
    gy = np.ascontiguousarray(gy)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if gy.shape != idx.shape:
        raise ValueError(f"maxpool2d_scatter: gy {gy.shape} vs idx {idx.shape}")
    n, c = gy.shape[:2]
    h, w = (int(input_hw[0]), int(input_hw[1]))
    gy3 = gy.reshape(n, c, -1)
    idx3 = idx.reshape(n, c, -1)
    if use_numba(gy.dtype):
        gx3 = np.empty((n, c, h * w), gy.dtype)   # scatter_nb zeroes each plane first
        scatter_nb(gy3, idx3, gx3)
        return gx3.reshape(n, c, h, w)
    _check_index(idx3, h * w)
    # bincount sums repeated indices (overlapping windows); np.add.at would
    # too but is slower. Plane p's slots live at p*H*W + idx.
    planes = np.arange(n * c, dtype=np.int64).reshape(n, c, 1) * (h * w)
    sums = np.bincount((idx3 + planes).ravel(), weights=gy3.ravel(),
                       minlength=n * c * h * w)
    return sums.astype(gy.dtype).reshape(n, c, h, w)
