"""Source templates for the kernels that are not loop nests of scalar ops: conv, pooling, indexing, RNG.

    conv2d_forward_host(geometry((100, 32, 26, 26), (64, 32, 3, 3), (1, 1), (0, 0)))  -> kernel body text

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
    """The eager kernels' public im2col/col2im loops, as source for a generated module (which must stay
    self-contained: numba's disk cache checks only the cached function's own file)."""
    from ...eager_kernels import conv
    return _njit_sources(conv.valid_range, conv.im2col_loop, conv.col2im_loop) \
        + "\n\nvalid_range_nb = valid_range   # the name the eager loops call it by"


def pool_helpers():
    """The eager kernels' public max-pool loops, as source for a generated module."""
    from ...eager_kernels import pool
    return _njit_sources(pool.argmax_loop, pool.argmax_2x2_loop, pool.gather_loop, pool.scatter_loop)


def _njit_sources(*fns):
    return "\n\n".join("@njit(cache=True)\n" + textwrap.dedent(inspect.getsource(fn)) for fn in fns)


def conv2d_forward_host(g):
    return """for n0 in range(0, {N}, {NB}):
    im2col_loop(x, n0, {NB}, {KH}, {KW}, {SH}, {SW}, {PH}, {PW}, {OH}, {OW}, cols)
    np.matmul(w2, cols, out=o)
    # o is [O, b, P]; y wants [b, O, P]: a small in-cache transpose
    y3[n0:n0 + {NB}] = o.reshape({O}, {NB}, {P}).transpose(1, 0, 2)""".format(**g)


def conv2d_grad_weight_host(g):
    # gw.T[K, O] += cols_img @ gy[n].T, one GEMM per image (reads gy in place; this orientation ran
    # ~20% faster in OpenBLAS, see graphc/eager_kernels/conv.py)
    return """acc[...] = 0
for n0 in range(0, {N}, {NB}):
    im2col_loop(x, n0, {NB}, {KH}, {KW}, {SH}, {SW}, {PH}, {PW}, {OH}, {OW}, cols)
    for b in range({NB}):
        np.matmul(cols[:, b * {P}:(b + 1) * {P}], gy3[n0 + b].T, out=part)
        acc += part
gw2[...] = acc.T""".format(**g)


def conv2d_grad_input_host(g):
    return """gx[...] = 0
for n0 in range(0, {N}, {NB}):
    gyb.reshape({O}, {NB}, {P})[...] = gy3[n0:n0 + {NB}].transpose(1, 0, 2)
    np.matmul(w2.T, gyb, out=gcols)
    col2im_loop(gcols, n0, {NB}, {KH}, {KW}, {SH}, {SW}, {PH}, {PW}, {OH}, {OW}, gx)""".format(**g)


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
