"""Reduction primitives: sum, max (amax) and argmax over a set of axes.

    sum(x[2,3], axes=(1,), keepdim=False) -> [2]
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .registry import REDUCE, defop, fn, normalize_axes



def reduced_shape(shape, axes, keepdim):
    """Shape after reducing axes.   reduced_shape((2, 3, 4), (1,), True) -> (2, 1, 4)"""
    if keepdim:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _infer_reduce(op, result_dtype=None):
    def infer(x, axes=None, keepdim=False):
        axes = normalize_axes(op, axes, len(x.shape))
        if op in ("max", "argmax") and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(op, f"cannot reduce an empty dimension of a tensor of shape {tuple(x.shape)}",
                             hint="max/argmax need at least one element along the reduced dims")
        dtype = result_dtype or x.dtype
        if op == "sum" and x.dtype.kind in "biu":
            dtype = np.dtype(np.int64)   # as in PyTorch: integer and bool sums are int64
        return reduced_shape(tuple(x.shape), axes, keepdim), np.dtype(dtype)
    return infer


def expand_back(g, shape, axes, keepdim):
    """Broadcast a reduced gradient back to the input shape (a VJP helper)."""
    if not keepdim:
        g = g.reshape(reduced_shape(shape, axes, True))
    return fn.broadcast_to(g, shape)


@defop("sum", kind=REDUCE, infer=_infer_reduce("sum"), attrs=("axes", "keepdim"))
class Sum:
    """Sum over axes.   sum([[1., 2.], [3., 4.]], axes=(1,)) -> [3., 7.]"""
    scalar = "({acc} + {0})"
    identity = 0

    @staticmethod
    def impl(x, axes=None, keepdim=False):
        dtype = np.int64 if x.dtype.kind in "biu" else x.dtype
        return np.asarray(np.sum(x, axis=axes, keepdims=keepdim, dtype=dtype))

    def vjp(g, ans, x, axes=None, keepdim=False):
        return (expand_back(g, tuple(x.shape), axes, keepdim),)


@defop("max", kind=REDUCE, infer=_infer_reduce("max"), attrs=("axes", "keepdim"))
class Max:
    """Largest element over axes (amax).   max([[1., 5.], [7., 2.]], axes=(1,)) -> [5., 7.]"""
    scalar = "({0} if ({0} > {acc} or {0} != {0}) else {acc})"   # a NaN wins, as in numpy
    identity = "-inf"

    @staticmethod
    def impl(x, axes=None, keepdim=False):
        return np.asarray(np.max(x, axis=axes, keepdims=keepdim))

    def vjp(g, ans, x, axes=None, keepdim=False):
        # Ties share the gradient evenly, as torch.amax does.
        shape = tuple(x.shape)
        hit = (x == expand_back(ans, shape, axes, keepdim)).to(x.dtype)
        count = hit.sum(axes, keepdim=True)
        return (expand_back(g, shape, axes, keepdim) * hit / count,)


def _infer_argmax(x, axis=None, keepdim=False):
    axes = (None if axis is None else (axis,))
    shape, _ = _infer_reduce("argmax")(x, axes, keepdim and axis is not None)
    return shape, np.dtype(np.int64)


@defop("argmax", kind=REDUCE, infer=_infer_argmax, nondiff=True, attrs=("axis", "keepdim"))
class Argmax:
    """Index of the first largest element along axis (flat index when axis is None).   argmax([1., 7., 7.]) -> 1"""

    @staticmethod
    def impl(x, axis=None, keepdim=False):
        return np.asarray(np.argmax(x, axis=axis, keepdims=keepdim and axis is not None)).astype(np.int64)
