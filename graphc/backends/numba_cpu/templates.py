"""Source templates for the kernels that are not loop nests of scalar ops: conv, pooling, indexing, RNG.

    conv2d_forward_body(geometry((100, 32, 26, 26), (64, 32, 3, 3), (1, 1), (0, 0)))  -> kernel body text

The conv kernels are im2col / col2im + BLAS GEMM in chunks of images (the eager kernels' design,
measured in graphc/eager_kernels/conv.py); their im2col/col2im loops are copied into each
generated module so that module stays self-contained, as numba's on-disk cache requires.
"""
from __future__ import annotations

import inspect
import textwrap

from ...ops.source import GOLDEN, MIX1, MIX2

CHUNK_BYTES = 4 << 20

UNIFORM = f'''@njit(cache=True, inline="always")
def _graphc_uniform(seed, counter):
    """graphc's counter-based uniform [0, 1): the same function as graphc.ops.source.uniform_bits."""
    z = (np.uint64(seed) * np.uint64({GOLDEN:#x})) ^ np.uint64(counter)
    z = z + np.uint64({GOLDEN:#x})
    z = (z ^ (z >> np.uint64(30))) * np.uint64({MIX1:#x})
    z = (z ^ (z >> np.uint64(27))) * np.uint64({MIX2:#x})
    z = z ^ (z >> np.uint64(31))
    return np.float32(z >> np.uint64(40)) * np.float32(1.0 / 16777216.0)'''


def conv_helpers():
    """The eager kernels' im2col/col2im loops, as source for a generated module."""
    from ...eager_kernels import conv
    parts = []
    for fn in (conv._valid_range, conv._im2col_kernel, conv._col2im_kernel):
        src = textwrap.dedent(inspect.getsource(fn)).replace("_valid_range_nb(", "_valid_range(")
        parts.append("@njit(cache=True)\n" + src)
    # The host conv kernels call the eager kernels (plain Python: no numba cache to go stale), which
    # split the batch across graphc's threads with one BLAS thread each (see eager_kernels/conv.py).
    parts.append("from graphc.eager_kernels import conv as _graphc_conv")
    return "\n\n".join(parts)


def pool_helpers():
    """The eager kernels' max-pool loops, as source for a generated module."""
    from ...eager_kernels import pool
    parts = []
    for fn in (pool._argmax_kernel, pool._argmax_2x2_kernel, pool._gather_kernel, pool._scatter_kernel):
        parts.append("@njit(cache=True)\n" + textwrap.dedent(inspect.getsource(fn)))
    return "\n\n".join(parts)


def conv2d_forward_host(g):
    return """_graphc_conv.conv2d(x, w2.reshape({O}, {C}, {KH}, {KW}), ({SH}, {SW}), ({PH}, {PW}), out=y3)""".format(**g)


def conv2d_grad_weight_host(g):
    # gw.T[K, O] += cols_img @ gy[n].T, one GEMM per image (reads gy in place; this orientation ran
    # ~20% faster in OpenBLAS, see graphc/eager_kernels/conv.py)
    return """gw2[...] = _graphc_conv.conv2d_grad_weight(gy3.reshape({N}, {O}, {OH}, {OW}), x, ({KH}, {KW}), ({SH}, {SW}),
                                           ({PH}, {PW})).reshape({O}, {K})""".format(**g)


def conv2d_grad_input_host(g):
    return """_graphc_conv.conv2d_grad_input(gy3.reshape({N}, {O}, {OH}, {OW}), w2.reshape({O}, {C}, {KH}, {KW}), ({H}, {W}),
                               ({SH}, {SW}), ({PH}, {PW}), out=gx)""".format(**g)


def geometry(x_shape, w_shape, stride, padding):
    """Sizes of one convolution, and the images per chunk: the largest divisor of the batch whose
    column matrix stays within CHUNK_BYTES (equal chunks let every work array have one fixed shape)."""
    n, c, h, w = x_shape
    o, _, kh, kw = w_shape
    sh, sw = stride
    ph, pw = padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    k, p = c * kh * kw, oh * ow
    budget = max(1, min(n, CHUNK_BYTES // max(1, (k + o) * p * 4)))
    nb = max(d for d in range(1, budget + 1) if n % d == 0)
    return dict(N=n, C=c, H=h, W=w, O=o, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, OH=oh, OW=ow, K=k, P=p, NB=nb)


# Copies and fills are written as loops: numba's array-slice assignment and in-place ufuncs carry
# shape-checking error paths whose string formatting costs seconds of compile time.

def conv2d_forward_body(g):
    return """for n0 in range(0, {N}, {NB}):
    _im2col_kernel(x, n0, {NB}, {KH}, {KW}, {SH}, {SW}, {PH}, {PW}, {OH}, {OW}, cols)
    np.dot(w2, cols, o)
    for b in range({NB}):
        for oc in range({O}):
            for p in range({P}):
                y3[n0 + b, oc, p] = o[oc, b * {P} + p]""".format(**g)


def conv2d_grad_weight_body(g):
    # gw[O, K] += gy_chunk[O, b*P] @ cols[K, b*P].T: one GEMM per chunk on C- / F-ordered operands
    # (numba copies operands of any other layout before calling BLAS).
    return """for oc in range({O}):
    for k in range({K}):
        gw2[oc, k] = 0
for n0 in range(0, {N}, {NB}):
    _im2col_kernel(x, n0, {NB}, {KH}, {KW}, {SH}, {SW}, {PH}, {PW}, {OH}, {OW}, cols)
    for b in range({NB}):
        for oc in range({O}):
            for p in range({P}):
                gyb[oc, b * {P} + p] = gy3[n0 + b, oc, p]
    np.dot(gyb, cols.T, part)
    for oc in range({O}):
        for k in range({K}):
            gw2[oc, k] += part[oc, k]""".format(**g)


def conv2d_grad_input_body(g):
    return """for n in range({N}):
    for c in range({C}):
        for h in range({H}):
            for w in range({W}):
                gx[n, c, h, w] = 0
for n0 in range(0, {N}, {NB}):
    for b in range({NB}):
        for oc in range({O}):
            for p in range({P}):
                gyb[oc, b * {P} + p] = gy3[n0 + b, oc, p]
    np.dot(w2.T, gyb, gcols)
    _col2im_kernel(gcols, n0, {NB}, {KH}, {KW}, {SH}, {SW}, {PH}, {PW}, {OH}, {OW}, gx)""".format(**g)


def maxpool_argmax_body(kernel, stride, padding, size):
    from ...config import settings
    loop = "prange" if settings.parallel and size >= (1 << 17) else "range"
    return f"""N, C, H, W = x.shape
OH, OW = idx.shape[2], idx.shape[3]
for nc in {loop}(N * C):
    n = nc // C
    c = nc % C
    for oh in range(OH):
        for ow in range(OW):
            besti = -1
            best = x[n, c, 0, 0]
            for i in range({kernel[0]}):
                ih = oh * {stride[0]} - {padding[0]} + i
                if ih < 0 or ih >= H:
                    continue
                for j in range({kernel[1]}):
                    iw = ow * {stride[1]} - {padding[1]} + j
                    if iw < 0 or iw >= W:
                        continue
                    v = x[n, c, ih, iw]
                    # first maximum wins ties; a NaN wins, as in numpy's argmax
                    if besti < 0 or v > best or (v != v and best == best):
                        best = v
                        besti = ih * W + iw
            idx[n, c, oh, ow] = besti"""


POOL_GATHER = """N, C, OH, OW = idx.shape
W = x.shape[3]
for n in range(N):
    for c in range(C):
        for oh in range(OH):
            for ow in range(OW):
                k = idx[n, c, oh, ow]
                y[n, c, oh, ow] = x[n, c, k // W, k % W]"""

POOL_SCATTER = """N, C, OH, OW = idx.shape
H, W = gx.shape[2], gx.shape[3]
for n in range(N):
    for c in range(C):
        for h in range(H):
            for w in range(W):
                gx[n, c, h, w] = 0
for n in range(N):
    for c in range(C):
        for oh in range(OH):
            for ow in range(OW):
                k = idx[n, c, oh, ow]
                gx[n, c, k // W, k % W] += gy[n, c, oh, ow]"""


def index_text(index):
    """A normalised getitem index as slice text, new axes dropped.   ((0, 5, 2), 3) -> '0:5:2, 3'"""
    parts = []
    for item in index:
        if item is None:
            continue
        if isinstance(item, tuple):
            start, stop, step = item
            if step < 0 and stop < 0:
                parts.append(f"{start}::{step}")
            else:
                parts.append(f"{start}:{stop}:{step}")
        else:
            parts.append(str(item))
    return ", ".join(parts) if parts else "()"   # numba cannot index a 0-d array with ...


def shape_without_new_axes(index, in_shape):
    """The shape x[index] has before new axes (None) are inserted."""
    return tuple(len(range(*item)) for item in index if isinstance(item, tuple))
