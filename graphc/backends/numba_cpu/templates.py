"""Source templates for the kernels that are not loop nests of scalar ops: conv, pooling, indexing, RNG.

    conv2d_forward_host(geometry((100, 32, 26, 26), (64, 32, 3, 3), (1, 1), (0, 0)))  -> kernel body text

The conv kernels call the eager conv kernels (im2col / col2im + BLAS GEMM in chunks of images,
measured in graphc/eager_kernels/conv.py) from the host driver; the pooling kernels call the eager
kernels' compiled pool loops, whose source hash is part of the generated module (see pool_helpers).
"""
from __future__ import annotations

import hashlib
import inspect

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
    """The import the host conv kernels need: they call the eager conv kernels.

    Plain Python calls from the host driver, so no numba-cached function of the generated module
    depends on another file; the eager kernels split the batch across graphc's threads with one BLAS
    thread each (eager_kernels/conv.py).
    """
    return "from graphc.eager_kernels import conv as _graphc_conv"


def pool_helpers():
    """The import of the eager kernels' compiled max-pool loops: serial builds for the @njit pooling
    kernels (small inputs), parallel builds (`par_` names) for the host ones (large inputs).

    numba caches a kernel with the loops it calls compiled in, and checks only the kernel's own file;
    so the source hash of eager_kernels/pool.py goes into the generated text, and with it into the
    module's cache key: a changed loop gets a freshly compiled module.
    """
    from ...eager_kernels import pool
    digest = hashlib.sha256(inspect.getsource(pool).encode()).hexdigest()[:16]
    return (f"# graphc/eager_kernels/pool.py {digest}: cached kernels below have these loops compiled in\n"
            "from graphc.eager_kernels.pool import argmax_serial_nb as argmax_loop, "
            "argmax_2x2_serial_nb as argmax_2x2_loop\n"
            "from graphc.eager_kernels.pool import gather_serial_nb as gather_loop, scatter_serial_nb as scatter_loop\n"
            "from graphc.eager_kernels.pool import argmax_nb as par_argmax_loop, argmax_2x2_nb as par_argmax_2x2_loop\n"
            "from graphc.eager_kernels.pool import gather_nb as par_gather_loop, scatter_nb as par_scatter_loop")


def conv2d_forward_host(g):
    return """_graphc_conv.conv2d(x, w2.reshape({O}, {C}, {KH}, {KW}), ({SH}, {SW}), ({PH}, {PW}), out=y3)""".format(**g)


def conv2d_grad_weight_host(g):
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
