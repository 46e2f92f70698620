"""conv2d and its gradients: im2col / col2im + one BLAS GEMM per chunk.

Layout: NCHW input x[N,C,H,W], weight w[O,C,KH,KW], groups=1, dilation=1,
zero padding, floor output size (as PyTorch). Results are C-contiguous and
have the first argument's dtype (the second argument is cast to it).

Why this shape of algorithm (measured on the 2-core dev machine, conv2 of
the MNIST CNN, x[100,32,26,26], w[64,32,3,3], float32):

* The GEMM is the bulk of the work (~12 ms per direction) and numpy's
  OpenBLAS sgemm already uses both cores; nothing hand-written gets close.
* The batch goes through in chunks of a few images whose column matrix
  cols[C*KH*KW, b*OH*OW] plus GEMM output is ~4 MB, so it is still in cache
  when the GEMM reads it. One whole-batch cols (66 MB) makes every GEMM
  memory bound: 48 ms instead of 12 ms for the forward GEMM.
* im2col / col2im are serial numba kernels, faster than numpy's strided
  copies: im2col 3.6 vs 5.5 ms, col2im 3.5 vs 14 ms per batch. They stay
  serial because a prange kernel between OpenBLAS calls fights OpenBLAS's
  spinning threads for the two cores (forward went from 20 ms to 200 ms).
* The numba kernels index flat arrays with uint64 offsets: with signed
  offsets numba adds a negative-index wraparound select to every access,
  which blocks vectorisation (that copy loop ran ~9x slower; per-row array
  views avoid it too but cost ~2x in view set-up for 24-element rows).
* graphc's numba backend calls conv2d, conv2d_grad_weight and
  conv2d_grad_input from its host conv kernels (with out= where it has
  planned the output's storage).
"""

import numpy as np

from .jit import njit, use_numba

# Bytes of one chunk's working set (column matrix + GEMM output). 2-6 MB all
# measured within ~5% on conv2; 1 MB is ~15% slower.
_CHUNK_BYTES = 4 << 20


# --------------------------------------------------------------------------
# shapes


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _pair(v, name):
    h, w = (int(v[0]), int(v[1]))
    if name == "stride" and (h < 1 or w < 1):
        raise ValueError(f"stride must be >= 1, got {v}")
    if name == "padding" and (h < 0 or w < 0):
        raise ValueError(f"padding must be >= 0, got {v}")
    return h, w


def _out_hw(hw, khw, stride, padding):
    oh = _out_size(hw[0], khw[0], stride[0], padding[0])
    ow = _out_size(hw[1], khw[1], stride[1], padding[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"conv2d output would be empty: input {tuple(hw)}, kernel "
            f"{tuple(khw)}, stride {stride}, padding {padding}"
        )
    return oh, ow


def _chunk_images(k, o, p, itemsize, n):
    """Images per chunk so that cols[k, b*p] + out[o, b*p] is ~_CHUNK_BYTES."""
    return max(1, min(n, _CHUNK_BYTES // max(1, (k + o) * p * itemsize)))


def _c_array(a, dtype=None):
    return np.ascontiguousarray(a, dtype=dtype)


class _Scratch:
    """Flat buffer handing out C-contiguous [rows, cols] matrices.

    Chunk matrices must be contiguous even for the short last chunk: a column
    slice of a bigger matrix would not be, and numba would compile (and run)
    a slower non-contiguous specialisation of each kernel for it.
    """

    def __init__(self, rows, max_cols, dtype):
        self.rows = rows
        self.flat = np.empty(rows * max_cols, dtype)

    def get(self, n_cols):
        return self.flat[:self.rows * n_cols].reshape(self.rows, n_cols)


# --------------------------------------------------------------------------
# numba kernels (serial; see the module docstring)


def valid_range(n_out, stride, pad, offset, size):
    """Outputs o in [lo, hi) whose input o*stride - pad + offset is in range."""
    lo = 0
    while lo < n_out and lo * stride - pad + offset < 0:
        lo += 1
    hi = n_out
    while hi > lo and (hi - 1) * stride - pad + offset >= size:
        hi -= 1
    return lo, hi


valid_range_nb = njit(valid_range)


def im2col_loop(x, n0, nb, kh, kw, sh, sw, ph, pw, oh_n, ow_n, cols):
    # cols[(c*kh + i)*kw + j, b*P + oh*OW + ow] = x[n0+b, c, oh*sh-ph+i, ow*sw-pw+j]
    # (0 where that input position is padding). Offsets into the flat
    # arrays are uint64 so numba emits no wraparound check and LLVM
    # vectorises the copy (see the module docstring).
    n_c, h, w = x.shape[1], x.shape[2], x.shape[3]
    p = oh_n * ow_n
    xf, cf = x.ravel(), cols.ravel()
    row_len = cols.shape[1]
    u_ow, u_sw = np.uint64(ow_n), np.uint64(sw)
    for c in range(n_c):
        for i in range(kh):
            oh_lo, oh_hi = valid_range_nb(oh_n, sh, ph, i, h)
            for j in range(kw):
                ow_lo, ow_hi = valid_range_nb(ow_n, sw, pw, j, w)
                n_valid = np.uint64(ow_hi - ow_lo)
                partial = ow_lo > 0 or ow_hi < ow_n
                k = (c * kh + i) * kw + j
                for b in range(nb):
                    for oh in range(oh_n):
                        dst = k * row_len + b * p + oh * ow_n
                        inside = oh_lo <= oh < oh_hi
                        if partial or not inside:
                            u_dst = np.uint64(dst)
                            for t in range(u_ow):
                                cf[u_dst + t] = 0
                        if not inside:
                            continue
                        d = np.uint64(dst + ow_lo)
                        ih = oh * sh - ph + i
                        s = np.uint64((((n0 + b) * n_c + c) * h + ih) * w
                                      + ow_lo * sw - pw + j)
                        if sw == 1:
                            for t in range(n_valid):
                                cf[d + t] = xf[s + t]
                        else:
                            for t in range(n_valid):
                                cf[d + t] = xf[s + t * u_sw]


def col2im_loop(cols, n0, nb, kh, kw, sh, sw, ph, pw, oh_n, ow_n, gx):
    # Adjoint of im2col_loop: gx[n0+b, c, ih, iw] += cols[k, b*P + ...],
    # skipping padding positions; gx is the unpadded input gradient.
    n_c, h, w = gx.shape[1], gx.shape[2], gx.shape[3]
    p = oh_n * ow_n
    gf, cf = gx.ravel(), cols.ravel()
    row_len = cols.shape[1]
    u_sw = np.uint64(sw)
    for c in range(n_c):
        for i in range(kh):
            oh_lo, oh_hi = valid_range_nb(oh_n, sh, ph, i, h)
            for j in range(kw):
                ow_lo, ow_hi = valid_range_nb(ow_n, sw, pw, j, w)
                n_valid = np.uint64(ow_hi - ow_lo)
                k = (c * kh + i) * kw + j
                for b in range(nb):
                    for oh in range(oh_lo, oh_hi):
                        d = np.uint64(k * row_len + b * p + oh * ow_n + ow_lo)
                        ih = oh * sh - ph + i
                        s = np.uint64((((n0 + b) * n_c + c) * h + ih) * w
                                      + ow_lo * sw - pw + j)
                        if sw == 1:
                            for t in range(n_valid):
                                gf[s + t] += cf[d + t]
                        else:
                            for t in range(n_valid):
                                gf[s + t * u_sw] += cf[d + t]


_im2col_nb = njit(im2col_loop)
_col2im_nb = njit(col2im_loop)


# --------------------------------------------------------------------------
# numpy fallbacks: one strided copy / add per kernel offset (i, j), on a
# zero-padded input


def _pad(x, ph, pw):
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _window(a, i, j, sh, sw, oh_n, ow_n):
    """a[..., i + sh*oh, j + sw*ow] for all (oh, ow): a strided view."""
    return a[..., i:i + sh * (oh_n - 1) + 1:sh, j:j + sw * (ow_n - 1) + 1:sw]


def _im2col_numpy(xp, kh, kw, sh, sw, oh_n, ow_n, cols):
    nb, n_c = xp.shape[:2]
    cols6 = cols.reshape(n_c, kh, kw, nb, oh_n, ow_n)
    for i in range(kh):
        for j in range(kw):
            win = _window(xp, i, j, sh, sw, oh_n, ow_n)
            cols6[:, i, j] = win.transpose(1, 0, 2, 3)


def _col2im_numpy(cols, gxp, kh, kw, sh, sw, oh_n, ow_n):
    nb, n_c = gxp.shape[:2]
    cols6 = cols.reshape(n_c, kh, kw, nb, oh_n, ow_n)
    for i in range(kh):
        for j in range(kw):
            win = _window(gxp, i, j, sh, sw, oh_n, ow_n)
            win += cols6[:, i, j].transpose(1, 0, 2, 3)


# --------------------------------------------------------------------------
# chunked drivers


class _Geometry:
    """Sizes of one convolution, shared by the three entry points."""

    def __init__(self, n, c, hw, o, khw, stride, padding):
        self.n, self.c, self.o = n, c, o
        self.h, self.w = hw
        self.kh, self.kw = khw
        self.sh, self.sw = _pair(stride, "stride")
        self.ph, self.pw = _pair(padding, "padding")
        self.oh, self.ow = _out_hw(hw, khw, (self.sh, self.sw), (self.ph, self.pw))
        self.k = c * self.kh * self.kw
        self.p = self.oh * self.ow


class _Im2col:
    """Fills one chunk's column matrix from x, with numba or numpy."""

    def __init__(self, x, g):
        self.g = g
        self.numba = use_numba(x.dtype)
        # The numpy path reads a zero-padded copy; numba handles borders.
        self.x = x if self.numba else _pad(x, g.ph, g.pw)

    def __call__(self, n0, nb, cols):
        g = self.g
        if self.numba:
            _im2col_nb(self.x, n0, nb, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw,
                       g.oh, g.ow, cols)
        else:
            _im2col_numpy(self.x[n0:n0 + nb], g.kh, g.kw, g.sh, g.sw,
                          g.oh, g.ow, cols)


def _chunks(g, itemsize):
    """(n0, nb) pairs covering the batch, nb images at a time."""
    step = _chunk_images(g.k, g.o, g.p, itemsize, g.n)
    return [(n0, min(step, g.n - n0)) for n0 in range(0, g.n, step)], step


# Below this many FLOPs a conv runs its chunks in the calling thread: handing work to another thread
# costs ~0.1 ms on a quiet machine and a scheduler slice on a loaded one (conv1 of the seed CNN, 39
# MFLOP, ran 1.3 ms in one thread against 28 ms split, with other processes busy).
_SPLIT_MIN_FLOPS = 1 << 28


def _run_chunks(chunks, make_scratch, body, flops, nogil):
    """body(n0, nb, work) for every chunk, its GEMMs on one BLAS thread; big convs split across threads.

    Batch split: each worker thread takes every T-th chunk with its own scratch. Multi-threaded
    OpenBLAS on skinny conv GEMMs waits for its threads after every call; one image range per thread
    has no such wait. Measured on conv2's forward (2 cores, the other busy): 112 ms split against
    1.6 s for one multi-threaded GEMM per chunk. Returns each worker's scratch.
    """
    from ..threadpool import get_num_threads, one_blas_thread, thread_pool
    workers = min(get_num_threads(), len(chunks))
    split = workers >= 2 and flops >= _SPLIT_MIN_FLOPS and nogil
    if not split:
        workers = 1

    def run(i):
        work = make_scratch()
        for n0, nb in chunks[i::workers]:
            body(n0, nb, work)
        return work

    one_blas_thread()   # process-wide, set once here rather than by each worker
    return list(thread_pool(workers).map(run, range(workers))) if split else [run(0)]


def conv2d(x, w, stride, padding, out=None):
    """y[N,O,OH,OW] = conv of x[N,C,H,W] with w[O,C,KH,KW], e.g. conv2d(x, w, (1, 1), (0, 0)).

    out: a C-contiguous array of y's size and dtype to write into (compiled steps pass their buffer)."""
    x = _c_array(x)
    w = _c_array(w, x.dtype)
    n, c, h, wd = x.shape
    o, c_w, kh, kw = w.shape
    if c_w != c:
        raise ValueError(f"conv2d: input has {c} channels, weight expects {c_w}")
    g = _Geometry(n, c, (h, wd), o, (kh, kw), stride, padding)
    y = np.empty((n, o, g.p), x.dtype) if out is None else out.reshape(n, o, g.p)
    chunks, step = _chunks(g, x.itemsize)
    w2 = w.reshape(o, g.k)
    im2col = _Im2col(x, g)

    def scratch():
        return _Scratch(g.k, step * g.p, x.dtype), _Scratch(o, step * g.p, x.dtype)

    def body(n0, nb, work):
        cols_b, out_b = work[0].get(nb * g.p), work[1].get(nb * g.p)
        im2col(n0, nb, cols_b)
        np.matmul(w2, cols_b, out=out_b)
        # out is [O, b, P]; y wants [b, O, P]. A small in-cache transpose.
        y[n0:n0 + nb] = out_b.reshape(o, nb, g.p).transpose(1, 0, 2)

    _run_chunks(chunks, scratch, body, 2 * n * o * g.p * g.k, im2col.numba)
    return y.reshape(n, o, g.oh, g.ow)


def conv2d_grad_weight(gy, x, kernel_hw, stride, padding):
    """gw[O,C,KH,KW] of conv2d for output grad gy, e.g. conv2d_grad_weight(gy, x, (3, 3), (1, 1), (0, 0))."""
    gy = _c_array(gy)
    x = _c_array(x, gy.dtype)
    n, c, h, wd = x.shape
    o = gy.shape[1]
    g = _Geometry(n, c, (h, wd), o, tuple(kernel_hw), stride, padding)
    if gy.shape != (n, o, g.oh, g.ow):
        raise ValueError(f"conv2d_grad_weight: gy shape {gy.shape} does not "
                         f"match {(n, o, g.oh, g.ow)}")
    chunks, step = _chunks(g, x.itemsize)
    gy3 = gy.reshape(n, o, g.p)
    im2col = _Im2col(x, g)

    def scratch():   # each worker sums its own images' gw.T; the partial sums are added at the end
        return _Scratch(g.k, step * g.p, x.dtype), np.empty((g.k, o), x.dtype), np.zeros((g.k, o), x.dtype)

    def body(n0, nb, work):
        cols_b, part, acc = work[0].get(nb * g.p), work[1], work[2]
        im2col(n0, nb, cols_b)
        # One GEMM per image, gw.T += cols_img @ gy[n].T, reads gy in place.
        # A GEMM per chunk would need gy transposed to [O, b*P] first: same
        # speed on conv2, 2x slower on conv1 (C=1, the transpose dominates).
        # This orientation (output [K, O]) runs ~20% faster in OpenBLAS
        # than gy[n] @ cols_img.T. numpy has no GEMM beta=1: add the parts.
        for b in range(nb):
            np.matmul(cols_b[:, b * g.p:(b + 1) * g.p], gy3[n0 + b].T, out=part)
            acc += part

    works = _run_chunks(chunks, scratch, body, 2 * n * o * g.p * g.k, im2col.numba)
    gw_t = works[0][2]
    for work in works[1:]:
        gw_t += work[2]
    return np.ascontiguousarray(gw_t.T).reshape(o, c, g.kh, g.kw)


def conv2d_grad_input(gy, w, input_hw, stride, padding, out=None):
    """gx[N,C,H,W] of conv2d for output grad gy, e.g. conv2d_grad_input(gy, w, (28, 28), (1, 1), (0, 0)).

    out: a C-contiguous [N,C,H,W] array of gy's dtype to write into (used when numba runs the kernels)."""
    gy = _c_array(gy)
    w = _c_array(w, gy.dtype)
    n, o = gy.shape[:2]
    o_w, c, kh, kw = w.shape
    if o_w != o:
        raise ValueError(f"conv2d_grad_input: gy has {o} channels, weight {o_w}")
    g = _Geometry(n, c, tuple(input_hw), o, (kh, kw), stride, padding)
    if gy.shape != (n, o, g.oh, g.ow):
        raise ValueError(f"conv2d_grad_input: gy shape {gy.shape} does not "
                         f"match {(n, o, g.oh, g.ow)}")
    numba = use_numba(gy.dtype)
    # numba's col2im skips padding; numpy's adds into a padded buffer.
    if numba and out is not None:
        gx = out
        gx[...] = 0
    elif numba:
        gx = np.zeros((n, c, g.h, g.w), gy.dtype)
    else:
        gx = np.zeros((n, c, g.h + 2 * g.ph, g.w + 2 * g.pw), gy.dtype)
    chunks, step = _chunks(g, gy.itemsize)
    w_t = w.reshape(o, g.k).T
    gy3 = gy.reshape(n, o, g.p)

    def scratch():
        return _Scratch(g.k, step * g.p, gy.dtype), _Scratch(o, step * g.p, gy.dtype)

    def body(n0, nb, work):   # chunks write disjoint images of gx: workers never touch the same rows
        gcols_b, gy_b = work[0].get(nb * g.p), work[1].get(nb * g.p)
        gy_b.reshape(o, nb, g.p)[...] = gy3[n0:n0 + nb].transpose(1, 0, 2)
        np.matmul(w_t, gy_b, out=gcols_b)
        if numba:
            _col2im_nb(gcols_b, n0, nb, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw,
                       g.oh, g.ow, gx)
        else:
            _col2im_numpy(gcols_b, gx[n0:n0 + nb], g.kh, g.kw, g.sh, g.sw,
                          g.oh, g.ow)

    _run_chunks(chunks, scratch, body, 2 * n * o * g.p * g.k, numba)
    if numba:
        return gx
    gx = gx[:, :, g.ph:g.ph + g.h, g.pw:g.pw + g.w]
    if out is not None:
        out[...] = gx
        return out
    return np.ascontiguousarray(gx)
