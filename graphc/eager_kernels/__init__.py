"""Eager array kernels behind graphc's conv2d / max_pool2d ops.

Pure functions on numpy arrays (NCHW, float32 / float64), no graphc types.
numba is optional and is imported only inside this package (graphc's import
boundary): without it, or with ``GRAPHC_EAGER_NUMBA=0`` in the environment,
every function takes its numpy fallback and gives the same results.
"""

from .jit import HAVE_NUMBA, njit, use_numba  # noqa: F401  (njit, use_numba: what conv and pool use)
from .conv import conv2d, conv2d_grad_input, conv2d_grad_weight
from .pool import maxpool2d_argmax, maxpool2d_gather, maxpool2d_scatter

__all__ = [
    "HAVE_NUMBA",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "maxpool2d_argmax",
    "maxpool2d_gather",
    "maxpool2d_scatter",
]
