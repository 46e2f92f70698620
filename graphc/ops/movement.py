"""Movement primitives: they move or repeat elements without arithmetic.

    reshape, permute, broadcast_to, getitem (basic indexing), getitem_grad, concat
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .registry import MOVEMENT, broadcast_shapes, defop, fmt_shape, fn



def _infer_reshape(x, shape):
    if int(np.prod(shape)) != int(np.prod(x.shape)):
        raise ShapeError("reshape", f"cannot reshape a tensor of shape {fmt_shape(x.shape)} "
                                    f"({int(np.prod(x.shape))} elements) to {fmt_shape(shape)}",
                         hint="the number of elements must stay the same; use -1 for one inferred dimension")
    return tuple(shape), x.dtype


@defop("reshape", kind=MOVEMENT, infer=_infer_reshape, attrs=("shape",))
class Reshape:
    """Same elements, new shape.   reshape([1., 2., 3., 4.], shape=(2, 2)) -> [[1., 2.], [3., 4.]]"""
    fuse = "view"   # row-major data keeps its order: the output aliases the input

    @staticmethod
    def impl(x, shape):
        return x.reshape(shape)

    def vjp(g, ans, x, shape):
        return (g.reshape(tuple(x.shape)),)


def _infer_permute(x, perm):
    if sorted(perm) != list(range(len(x.shape))):
        raise ShapeError("permute", f"{tuple(perm)} is not a permutation of the {len(x.shape)} dims "
                                    f"of a tensor of shape {fmt_shape(x.shape)}",
                         hint="name every dimension exactly once")
    return tuple(x.shape[p] for p in perm), x.dtype


@defop("permute", kind=MOVEMENT, infer=_infer_permute, attrs=("perm",))
class Permute:
    """Reorder dimensions.   permute(x[2,3], perm=(1, 0)) -> x.T, shape [3,2]"""
    fuse = "view"   # a strided view of the input's storage

    @staticmethod
    def impl(x, perm):
        return np.transpose(x, perm)

    def vjp(g, ans, x, perm):
        return (g.permute(tuple(int(i) for i in np.argsort(perm))),)


def _infer_broadcast_to(x, shape):
    out = broadcast_shapes("broadcast_to", tuple(x.shape), tuple(shape))
    if out != tuple(shape):
        raise ShapeError("broadcast_to", f"cannot broadcast {fmt_shape(x.shape)} to {fmt_shape(shape)}",
                         hint="dimensions of size 1 can grow; others must match")
    return tuple(shape), x.dtype


@defop("broadcast_to", kind=MOVEMENT, infer=_infer_broadcast_to, attrs=("shape",))
class BroadcastTo:
    """Repeat along size-1 (or new leading) dims.   broadcast_to([1., 2.], shape=(2, 2)) -> [[1., 2.], [1., 2.]]"""
    fuse = "loop"   # reads its input at a broadcast of the output index

    @staticmethod
    def impl(x, shape):
        return np.broadcast_to(x, shape)

    def vjp(g, ans, x, shape):
        return (fn.sum_to(g, tuple(x.shape)),)


# --- basic indexing --------------------------------------------------------------------------
# An index is normalised to a tuple whose items are ints, (start, stop, step) triples, or None
# (a new axis of size 1), one int/triple per indexed dim, so it prints and parses as plain data.

def normalize_index(shape, index):
    """Normalise a Python index for a tensor of this shape.   normalize_index((4, 5), (1, slice(None))) -> (1, (0, 5, 1))"""
    if not isinstance(index, tuple):
        index = (index,)
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise ShapeError("getitem", "an index can hold only one Ellipsis (...)")
    out, dim = [], 0
    for item in index:
        if item is Ellipsis:
            for _ in range(len(shape) - n_real):
                out.append((0, shape[dim], 1))
                dim += 1
            continue
        if item is None:
            out.append(None)
            continue
        if dim >= len(shape):
            raise ShapeError("getitem", f"too many indices for a tensor of shape {fmt_shape(shape)}",
                             hint=f"the tensor has {len(shape)} dimensions")
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer, slice)):
            raise ShapeError("getitem", f"unsupported index {item!r} of type {type(item).__name__}",
                             hint="graphc supports ints, slices, None and ...; use index_select/gather-style "
                                  "ops (one_hot, where) for tensor indices")
        if isinstance(item, slice):
            out.append(tuple(int(v) for v in item.indices(shape[dim])))
        else:
            i = int(item)
            if not -shape[dim] <= i < shape[dim]:
                raise ShapeError("getitem", f"index {i} is out of bounds for dimension {dim} with size {shape[dim]} "
                                            f"(a tensor of shape {fmt_shape(shape)})",
                                 hint=f"valid indices for dimension {dim} are {-shape[dim]} .. {shape[dim] - 1}")
            out.append(i % shape[dim])
        dim += 1
    for d in range(dim, len(shape)):
        out.append((0, shape[d], 1))
    return tuple(out)


def to_numpy_index(index):
    return tuple(_slice(*i) if isinstance(i, tuple) else i for i in index)


def _slice(start, stop, step):
    # slice.indices() gives stop -1 for a reversed slice that runs through element 0, but as a
    # slice bound -1 means "the last element": None says "through the start".
    return slice(start, None if stop < 0 else stop, step)


def _infer_getitem(x, index):
    shape = []
    dim = 0
    for item in index:
        if item is None:
            shape.append(1)
            continue
        if isinstance(item, tuple):
            shape.append(len(range(*item)))
        dim += 1
    return tuple(shape), x.dtype


@defop("getitem", kind=MOVEMENT, infer=_infer_getitem, attrs=("index",))
class GetItem:
    """Basic indexing: ints, slices, None.   getitem([[1., 2.], [3., 4.]], index=(1, (0, 2, 1))) -> [3., 4.]"""

    @staticmethod
    def impl(x, index):
        return np.asarray(x[to_numpy_index(index)])

    def vjp(g, ans, x, index):
        return (fn.apply_op("getitem_grad", g, index=index, shape=tuple(x.shape)),)


def _infer_getitem_grad(g, index, shape):
    return tuple(shape), g.dtype


@defop("getitem_grad", kind=MOVEMENT, infer=_infer_getitem_grad, attrs=("index", "shape"))
class GetItemGrad:
    """Zeros of `shape` with g written at `index` (getitem's adjoint).   getitem_grad([5.], index=((1, 2, 1),), shape=(3,)) -> [0., 5., 0.]"""

    @staticmethod
    def impl(g, index, shape):
        out = np.zeros(shape, dtype=g.dtype)
        out[to_numpy_index(index)] = g.reshape(out[to_numpy_index(index)].shape)
        return out

    def vjp(gg, ans, g, index, shape):
        return (fn.apply_op("getitem", gg, index=index).reshape(tuple(g.shape)),)


def _infer_concat(*xs, axis):
    first = xs[0]
    nd = len(first.shape)
    if not -nd <= axis < nd:
        raise ShapeError("cat", f"dim {axis} is out of range for tensors with {nd} dimensions")
    axis %= nd
    for x in xs[1:]:
        if len(x.shape) != nd or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            raise ShapeError("cat", "tensors must have the same shape except in the concatenated dim; got "
                             + ", ".join(fmt_shape(t.shape) for t in xs))
        if x.dtype != first.dtype:
            raise ShapeError("cat", "tensors must have one dtype; got " + ", ".join(str(t.dtype) for t in xs))
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return tuple(shape), first.dtype


@defop("concat", kind=MOVEMENT, infer=_infer_concat, attrs=("axis",))
class Concat:
    """Join tensors along an existing dim.   concat([1.], [2., 3.], axis=0) -> [1., 2., 3.]"""

    @staticmethod
    def impl(*xs, axis):
        return np.concatenate(xs, axis=axis)

    def vjp(g, ans, *xs, axis):
        axis %= len(ans.shape)
        grads, start = [], 0
        for x in xs:
            stop = start + x.shape[axis]
            index = tuple((start, stop, 1) if d == axis else (0, n, 1) for d, n in enumerate(ans.shape))
            grads.append(fn.apply_op("getitem", g, index=index))
            start = stop
        return tuple(grads)
