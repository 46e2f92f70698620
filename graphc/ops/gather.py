"""Gather and scatter along one dim, with an int64 index tensor (torch.gather / scatter / scatter_add).

    gather(x, index, axis=1):       out[i][j] = x[i][index[i][j]]
    scatter_add(x, index, src, axis=1): out = x;  out[i][index[i][j]] += src[i][j]

Primitives: they read or write at data-dependent positions, which no composition of
elementwise/movement ops expresses without an (n x n) one-hot.  They are opaque to fusion;
a backend without its own kernel runs the impl below on the host.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from .registry import OPAQUE, defop, fmt_shape, fn

INDEX_DTYPE = np.dtype(np.int64)


def check_index_dtype(op, index, what="index"):
    if index.dtype != INDEX_DTYPE:
        raise DTypeError(op, f"expected an int64 {what} tensor, got {index.dtype}",
                         hint="convert the index with .long()")


def check_axis(op, axis, ndim):
    n = max(ndim, 1)
    if not -n <= axis < n:
        raise ShapeError(op, f"dim {axis} is out of range for a tensor with {ndim} dimensions",
                         hint=f"valid dims are {-n} .. {n - 1}")
    return axis % n


def check_index_fits(op, index_shape, axis, **others):
    """index must have the same rank as each named tensor and be no larger in every dim but `axis`
    (for a scatter's src: in every dim)."""
    for name, (shape, every_dim) in others.items():
        if len(shape) != len(index_shape):
            raise ShapeError(op, f"index {fmt_shape(index_shape)} and {name} {fmt_shape(shape)} must have the same "
                                 f"number of dimensions", hint="unsqueeze the index to the tensor's rank")
        for d, (i, s) in enumerate(zip(index_shape, shape)):
            if i > s and (every_dim or d != axis):
                raise ShapeError(op, f"index {fmt_shape(index_shape)} is larger than {name} {fmt_shape(shape)} "
                                     f"in dimension {d} ({i} > {s})",
                                 hint=f"the index may not exceed the {name}'s size in dims other than dim {axis}"
                                 if not every_dim else f"the index may not exceed the {name}'s size in any dim")


def check_index_values(op, index, size, axis, shape):
    """Data-dependent: every index lies in [0, size), as in torch (no negative indices; checked where the values are known)."""
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index[(index < 0) | (index >= size)].ravel()[0]
        raise ShapeError(op, f"index {int(bad)} is out of bounds for dimension {axis} with size {size} "
                             f"(a tensor of shape {fmt_shape(shape)})",
                         hint=f"valid indices are 0 .. {size - 1}")


def coordinates(index, axis):
    """Full coordinate arrays for every element of index, with `index` itself along axis (for fancy indexing)."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[axis] = index
    return tuple(grids)


def leading_block(shape):
    """The numpy index of the block [:shape[0], :shape[1], ...].   leading_block((2, 3)) -> (slice(0, 2), slice(0, 3))"""
    return tuple(slice(0, s) for s in shape)


def pad_to(g, shape):
    """g placed in the leading block of zeros(shape) (the adjoint of taking that block)."""
    if tuple(g.shape) == tuple(shape):
        return g
    return fn.apply_op("getitem_grad", g, index=tuple((0, s, 1) for s in g.shape), shape=tuple(shape))


def _infer_gather(x, index, axis):
    check_index_dtype("gather", index)
    axis = check_axis("gather", axis, len(x.shape))
    check_index_fits("gather", tuple(index.shape), axis, input=(tuple(x.shape), False))
    return tuple(index.shape), x.dtype


@defop("gather", kind=OPAQUE, infer=_infer_gather, attrs=("axis",))
class Gather:
    """Pick along axis by index.   gather([[1., 2.], [3., 4.]], [[1], [0]], axis=1) -> [[2.], [3.]]"""

    @staticmethod
    def impl(x, index, axis):
        axis %= max(x.ndim, 1)
        check_index_values("gather", index, x.shape[axis] if x.ndim else 1, axis, x.shape)
        if x.ndim == 0:
            return x.copy()
        return x[coordinates(index, axis)]

    def vjp(g, ans, x, index, axis):
        return (fn.apply_op("scatter_add", fn.zeros_like(x), index, g, axis=axis), None)


def _infer_scatter(op):
    def infer(x, index, src, axis):
        check_index_dtype(op, index)
        axis = check_axis(op, axis, len(x.shape))
        if src.dtype != x.dtype:
            raise DTypeError(op, f"src has dtype {src.dtype} but the tensor has {x.dtype}",
                             hint="convert src with .to(x.dtype)")
        check_index_fits(op, tuple(index.shape), axis, input=(tuple(x.shape), False), src=(tuple(src.shape), True))
        return tuple(x.shape), x.dtype
    return infer


def _scatter_positions(op, x, index, axis):
    axis %= max(x.ndim, 1)
    size = x.shape[axis] if x.ndim else 1
    check_index_values(op, index, size, axis, x.shape)
    return coordinates(index, axis) if x.ndim else ()


@defop("scatter", kind=OPAQUE, infer=_infer_scatter("scatter"), attrs=("axis",))
class Scatter:
    """x with src written at index along axis.   scatter([0., 0., 0.], [2, 0], [5., 6.], axis=0) -> [6., 0., 5.]"""

    @staticmethod
    def impl(x, index, src, axis):
        out = np.array(x, copy=True)
        out[_scatter_positions("scatter", x, index, axis)] = src[leading_block(index.shape)]
        return out

    def vjp(g, ans, x, index, src, axis):
        # As torch: the overwritten positions pass no gradient to x; src gets g read back at its index.
        zeros = fn.zeros(tuple(index.shape), dtype=g.dtype)
        return (fn.apply_op("scatter", g, index, zeros, axis=axis), None,
                pad_to(fn.apply_op("gather", g, index, axis=axis), tuple(src.shape)))


@defop("scatter_add", kind=OPAQUE, infer=_infer_scatter("scatter_add"), attrs=("axis",))
class ScatterAdd:
    """x with src added at index along axis (repeats accumulate).   scatter_add([0., 0.], [1, 1], [2., 3.], axis=0) -> [0., 5.]"""

    @staticmethod
    def impl(x, index, src, axis):
        out = np.array(x, copy=True)
        np.add.at(out, _scatter_positions("scatter_add", x, index, axis), src[leading_block(index.shape)])
        return out

    def vjp(g, ans, x, index, src, axis):
        return (g, None, pad_to(fn.apply_op("gather", g, index, axis=axis), tuple(src.shape)))
