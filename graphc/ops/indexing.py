"""Advanced indexing primitives: gather by integer index tensors, and its adjoint, a scatter.

    index, index_put

`dims` names the dims of `x` that integer index tensors select from, in order; every other dim is
taken whole (the frontend applies ints, slices and None first, with `getitem`). The index tensors
broadcast together, and their shape replaces the indexed dims: where those dims were, when they are
adjacent, else in front (numpy's and PyTorch's rule).
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from .registry import OPAQUE, broadcast_shapes, defop, fmt_shape, fn


def index_result_shape(op, x_shape, dims, index_shapes):
    """The shape x[..] takes.   index_result_shape('index', (5, 6, 7), (0, 2), [(3,), (3,)]) -> (3, 6)"""
    if len(set(dims)) != len(dims) or any(not 0 <= d < len(x_shape) for d in dims):
        raise ShapeError(op, f"dims {tuple(dims)} do not name distinct dims of a tensor of shape {fmt_shape(x_shape)}")
    if len(index_shapes) != len(dims):
        raise ShapeError(op, f"{len(index_shapes)} index tensors for {len(dims)} indexed dims")
    bshape = broadcast_shapes(op, *index_shapes) if index_shapes else ()
    rest = [n for d, n in enumerate(x_shape) if d not in dims]
    adjacent = list(dims) == list(range(dims[0], dims[0] + len(dims))) if dims else True
    at = dims[0] if adjacent and dims else 0
    return tuple(rest[:at]) + tuple(bshape) + tuple(rest[at:])


def _check_index_types(op, idx):
    for i in idx:
        if i.dtype.kind not in "iu":
            raise DTypeError(op, f"index tensors must be integers, got {i.dtype}",
                             hint="convert with .long(); a bool mask becomes integer indices with mask.nonzero()")


def numpy_index(ndim, dims, idx):
    """The numpy index tuple: each index array at its dim, whole slices elsewhere."""
    out = [slice(None)] * ndim
    for d, i in zip(dims, idx):
        out[d] = i
    return tuple(out)


def check_bounds(op, shape, dims, idx):
    """Raise a ShapeError for the first index outside its dim (negative ones count from the end)."""
    for d, i in zip(dims, idx):
        if i.size and (i.min() < -shape[d] or i.max() >= shape[d]):
            bad = int(i.max()) if i.max() >= shape[d] else int(i.min())
            raise ShapeError(op, f"index {bad} is out of bounds for dimension {d} with size {shape[d]} "
                                 f"(a tensor of shape {fmt_shape(shape)})",
                             hint=f"valid indices for dimension {d} are {-shape[d]} .. {shape[d] - 1}")


def _infer_index(x, *idx, dims):
    _check_index_types("index", idx)
    return index_result_shape("index", tuple(x.shape), dims, [tuple(i.shape) for i in idx]), x.dtype


@defop("index", kind=OPAQUE, infer=_infer_index, attrs=("dims",))
class Index:
    """Gather by integer index tensors (advanced indexing).   index([[1., 2.], [3., 4.]], [1, 0], [0, 1], dims=(0, 1)) -> [3., 2.]"""

    @staticmethod
    def impl(x, *idx, dims):
        check_bounds("index", x.shape, dims, idx)
        return np.asarray(x[numpy_index(x.ndim, dims, idx)])

    def vjp(g, ans, x, *idx, dims):
        # A repeated index gathers one element twice, so its gradient is the sum: accumulate.
        zeros = fn.zeros_like(x)
        return (fn.apply_op("index_put", zeros, g, *idx, dims=dims, accumulate=True),) + (None,) * len(idx)


def _infer_index_put(x, v, *idx, dims, accumulate):
    _check_index_types("index_put", idx)
    region = index_result_shape("index_put", tuple(x.shape), dims, [tuple(i.shape) for i in idx])
    if broadcast_shapes("index_put", tuple(v.shape), region) != region:
        raise ShapeError("index_put", f"values of shape {fmt_shape(v.shape)} cannot be written into the "
                                      f"{fmt_shape(region)} indexed elements",
                         hint="the values must broadcast to the shape x[index] has")
    if v.dtype != x.dtype:
        raise DTypeError("index_put", f"values have dtype {v.dtype} but the tensor has {x.dtype}",
                         hint="convert the values with .to(x.dtype)")
    return tuple(x.shape), x.dtype


@defop("index_put", kind=OPAQUE, infer=_infer_index_put, attrs=("dims", "accumulate"))
class IndexPut:
    """x with v written (or added, accumulate=True) at integer indices.   index_put([0., 0., 0.], [5.], [2], dims=(0,), accumulate=False) -> [0., 0., 5.]"""

    @staticmethod
    def impl(x, v, *idx, dims, accumulate):
        check_bounds("index_put", x.shape, dims, idx)
        out = np.array(x, copy=True)
        where = numpy_index(x.ndim, dims, idx)
        if accumulate:
            np.add.at(out, where, np.broadcast_to(v, out[where].shape))
        else:
            out[where] = v
        return out

    def vjp(g, ans, x, v, *idx, dims, accumulate):
        gx = g if accumulate else fn.apply_op("index_put", g, fn.zeros_like(v), *idx, dims=dims, accumulate=False)
        gv = fn.apply_op("index", g, *idx, dims=dims)
        return (gx, gv) + (None,) * len(idx)
