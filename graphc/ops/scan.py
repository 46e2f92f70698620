"""Scans: the running sum along one dim (torch.cumsum).

    cumsum([1., 2., 3.], axis=0) -> [1., 3., 6.]

A primitive: as a composite it would be a triangular (n x n) matmul, O(n^2) work for O(n).
Integer and bool inputs sum in int64, as in torch.
"""
from __future__ import annotations

import numpy as np

from .gather import check_axis
from .registry import OPAQUE, defop, fn


def _infer_cumsum(x, axis):
    check_axis("cumsum", axis, len(x.shape))
    return tuple(x.shape), (np.dtype(np.int64) if x.dtype.kind in "biu" else x.dtype)


def reverse(t, axis):
    """t flipped along axis, as a basic-indexing getitem (a view in the backends)."""
    index = tuple((n - 1, -1, -1) if d == axis else (0, n, 1) for d, n in enumerate(t.shape))
    return fn.apply_op("getitem", t, index=index)


@defop("cumsum", kind=OPAQUE, infer=_infer_cumsum, attrs=("axis",))
class Cumsum:
    """Running sum along axis.   cumsum([[1., 2.], [3., 4.]], axis=1) -> [[1., 3.], [3., 7.]]"""

    @staticmethod
    def impl(x, axis):
        if x.ndim == 0:
            return np.array(x, dtype=np.int64 if x.dtype.kind in "biu" else x.dtype)
        dtype = np.int64 if x.dtype.kind in "biu" else x.dtype
        return np.cumsum(x, axis=axis % x.ndim, dtype=dtype)

    def vjp(g, ans, x, axis):
        # Each input feeds every later output: the gradient is the reversed running sum of g.
        if not x.shape:
            return (g,)
        axis %= len(x.shape)
        return (reverse(fn.apply_op("cumsum", reverse(g, axis), axis=axis), axis),)
