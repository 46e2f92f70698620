"""Python indexing of Tensors, as PyTorch does it: basic (ints, slices, None, ...) and advanced.

    x[1:, None]            -> getitem
    x[range(n), y]         -> index  (the index tensors broadcast together)
    x[x > 0]               -> index  (eager: the mask's nonzero positions; traced: an error)
    x[idx] = v             -> index_put, written back by Tensor.__setitem__

An index is split in two steps, as in PyTorch: ints, slices and None first (one `getitem`, which
keeps every advanced dim whole), then the integer index tensors (one `index`). PyTorch's rule for
where the indexed dims go then falls out of numpy's on the second step alone: adjacent index
tensors put their shape where they were, separated ones put it in front.
"""
from __future__ import annotations

import numpy as np

from . import _context
from .errors import ShapeError, TraceError
from .ops.movement import normalize_index
from .tensor import Tensor, apply


class AdvancedIndex:
    """An index split into its basic part (for getitem) and index tensors at dims of the result."""

    def __init__(self, basic, dims, tensors, masks):
        self.basic = basic          # a tuple for normalize_index: ints, slices, None
        self.dims = dims            # dims of getitem's result that the index tensors select from
        self.tensors = tensors      # integer Tensors, one per dim in `dims`, or (mask, None) pairs
        self.masks = masks          # True where an entry of `tensors` is a bool mask (spans mask.ndim dims)

    @property
    def is_basic(self):
        return not self.dims

    def basic_is_whole(self, shape):
        return all(isinstance(i, slice) and i == slice(None) for i in self.basic) and len(self.basic) == len(shape)


def _as_index_item(item):
    """Lists, ranges and arrays become Tensors; everything else stays as written."""
    if isinstance(item, range):
        return Tensor._constant(np.arange(item.start, item.stop, item.step, dtype=np.int64))
    if isinstance(item, (list, np.ndarray)):
        arr = np.asarray(item)
        if arr.dtype == object or arr.dtype.kind not in "biu" and arr.size:
            raise ShapeError("getitem", f"an index list must hold ints or bools, got {arr.dtype}",
                             hint="index with ints, e.g. x[[0, 2]], or a bool mask")
        if arr.size == 0:
            arr = arr.astype(np.int64)
        return Tensor._constant(arr.astype(np.int64) if arr.dtype.kind in "iu" else arr)
    if isinstance(item, np.integer):
        return int(item)
    return item


def _dims_taken(item):
    if item is None or item is Ellipsis:
        return 0
    if isinstance(item, Tensor) and item.dtype == np.bool_:
        return max(item.ndim, 1)
    return 1


def split_index(shape, index):
    """Split a Python index.   split_index((4, 5), (slice(None), [0, 2])) -> basic (:, :), dims (1,), one tensor"""
    items = [_as_index_item(i) for i in (index if isinstance(index, tuple) else (index,))]
    if not any(isinstance(i, Tensor) for i in items):
        return AdvancedIndex(tuple(items), (), [], [])
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise ShapeError("getitem", "an index can hold only one Ellipsis (...)")
    taken = sum(_dims_taken(i) for i in items)
    if taken > len(shape):
        raise ShapeError("getitem", f"too many indices for a tensor of shape {tuple(shape)}",
                         hint=f"the tensor has {len(shape)} dimensions")
    basic, dims, tensors, masks = [], [], [], []
    out_dim = 0
    for item in items:
        if item is Ellipsis:
            fill = len(shape) - taken
            basic.extend([slice(None)] * fill)
            out_dim += fill
        elif isinstance(item, Tensor):
            if item.dtype.kind == "f":
                raise ShapeError("getitem", f"tensors used as indices must be long, int or bool, got {item.dtype}",
                                 hint="convert the index with .long()")
            k = _dims_taken(item)
            basic.extend([slice(None)] * k)
            dims.append(out_dim)
            tensors.append(item)
            masks.append(item.dtype == np.bool_)
            out_dim += k
        else:
            basic.append(item)
            if not isinstance(item, (int, bool)):   # slices and None make a dim of getitem's result
                out_dim += 1
    return AdvancedIndex(tuple(basic), dims, tensors, masks)


def _expand_masks(adv, shape):
    """Bool masks as the integer indices of their true elements: (dims, int tensors) for `index`."""
    dims, idx = [], []
    for d, t, is_mask in zip(adv.dims, adv.tensors, adv.masks):
        if not is_mask:
            dims.append(d)
            idx.append(t if t.dtype == np.int64 else t.to(np.int64))
            continue
        mask = t._value
        if t._is_traced() or _context.tracer is not None:
            # Even a known mask breaks: the positions are computed here, in Python, on every call.
            graph_break = getattr(_context.tracer, "graph_break", None)
            if graph_break is None:
                raise TraceError("getitem", "indexing with a bool mask gives a tensor whose shape depends on the "
                                            "mask's values, which a compiled graph cannot know in advance",
                                 hint="keep the shape fixed: graphc.where(mask, x, 0.0) or x.masked_fill(~mask, "
                                      "0.0) (and sum/mean over it), do the masked selection outside the compiled "
                                      "function, or compile with fullgraph=False (a graph break)")
            mask = graph_break(t, "x[mask]: the result's shape depends on the mask's values")
        mask = mask if mask.ndim else mask.reshape(1)
        want = tuple(shape[d:d + mask.ndim])
        if tuple(mask.shape) != want:
            raise ShapeError("getitem", f"the shape of the mask {tuple(mask.shape)} does not match the shape "
                                        f"{want} of the indexed tensor's dims {d}..{d + mask.ndim - 1}",
                             hint="a bool mask must have the shape of the dims it indexes")
        for k, positions in enumerate(np.nonzero(mask)):
            dims.append(d + k)
            idx.append(Tensor._wrap(positions.astype(np.int64)))
    return tuple(dims), idx


def getitem(x, index):
    """x[index] with PyTorch's semantics, basic and advanced."""
    adv = split_index(tuple(x.shape), index)
    if adv.is_basic:
        return apply("getitem", x, index=normalize_index(tuple(x.shape), adv.basic))
    region = x if adv.basic_is_whole(x.shape) else apply("getitem", x, index=normalize_index(tuple(x.shape), adv.basic))
    dims, idx = _expand_masks(adv, tuple(region.shape))
    return apply("index", region, *idx, dims=dims)


def setitem_advanced(x, adv, value, write_basic):
    """x with x[index] = value for an index with tensors; `write_basic(x, norm, region)` puts a region back."""
    from .functional import where
    shape = tuple(x.shape)
    whole = adv.basic_is_whole(shape)
    if not isinstance(value, Tensor):   # a Python number or array takes x's dtype, as in torch
        value = Tensor._constant(np.asarray(value, dtype=x.dtype))
    value = value.to(x.dtype) if value.dtype != x.dtype else value
    # x[mask] = scalar keeps its shape whatever the mask holds: a where, so it also compiles.
    if whole and len(adv.tensors) == 1 and adv.masks[0] and tuple(adv.tensors[0].shape) == shape \
            and value.numel() == 1:
        return where(adv.tensors[0], value.reshape(()), x)
    norm = None if whole else normalize_index(shape, adv.basic)
    region = x if whole else apply("getitem", x, index=norm)
    dims, idx = _expand_masks(adv, tuple(region.shape))
    new_region = apply("index_put", region, value, *idx, dims=dims, accumulate=False)
    return new_region if whole else write_basic(x, norm, new_region)
