"""Op table: getitem/setitem (basic and advanced), index_put, cat/stack, gather/scatter and index_select.

    C("getitem_col", lambda x: x[:, 1], lambda x: x[:, 1], [(3, 4)])
"""
from __future__ import annotations

import numpy as np

import graphc
from graphc.functional import apply_op

from .core import C, _torch, lib
from .references import np_gather, np_index_add, np_index_select, np_scatter, np_setitem


# --- graphc-only ops and their torch counterparts -------------------------------------------------

def t_getitem_grad(index, shape):
    def place(g):
        out = _torch().zeros(shape, dtype=g.dtype)
        out[index] = g
        return out
    return place


def setitem_row(x, v):
    y = x.clone()
    y[1] = v
    return y


def setitem_slice(x, v):
    y = x.clone()
    y[:, 1:3] = v
    return y


def setitem_scalar(x):
    y = x.clone()
    y[0, ::2] = 0.5
    return y


def setitem_range_index(x, j, v):
    y = x.clone()
    y[range(3), j] = v
    return y


def setitem_overlay_max(x, j):
    y = x.clone()
    y[range(3), j] = x.max()
    return y


def setitem_slice_and_list(x, v):
    y = x.clone()
    y[1:, [0, 2]] = v
    return y


def setitem_mask_scalar(x, m):
    y = x.clone()
    y[m] = 0.5
    return y


def ix(like, rows):
    """A fixed int64 index tensor of like's kind (graphc or torch): scatter positions without repeats."""
    return lib(like).tensor(rows)


SCATTER_ROWS = [[2, 0], [1, 3], [0, 1]]            # distinct positions per row of a (3, 4) tensor, along dim 1
SCATTER_COLS = [[1, 0, 2, 0], [2, 1, 0, 1]]       # distinct positions per column of a (3, 4) tensor, along dim 0


def scatter_inplace(x, s):
    y = x.clone()
    y.scatter_(1, ix(x, SCATTER_ROWS), s)
    return y


def scatter_add_inplace(x, i, s):
    y = x * 1.0
    y.scatter_add_(0, i, s)
    return y



INDEXING = [
    # indexing
    C("getitem_int", lambda x: x[1], lambda x: x[1], [(3, 4)]),
    C("getitem_neg_int", lambda x: x[-1], lambda x: x[-1], [(3, 4)]),
    C("getitem_int_int", lambda x: x[1, -2], lambda x: x[1, -2], [(3, 4)]),
    C("getitem_slice", lambda x: x[1:], lambda x: x[1:], [(3, 4)]),
    C("getitem_col", lambda x: x[:, 1], lambda x: x[:, 1], [(3, 4)]),
    C("getitem_step", lambda x: x[::2], lambda x: x[::2], [(5, 2)]),
    C("getitem_slice_none", lambda x: x[1:, None], lambda x: x[1:, None], [(3, 4)]),
    C("getitem_none_first", lambda x: x[None], lambda x: x[None], [(3, 4)]),
    C("getitem_ellipsis", lambda x: x[..., 0], lambda x: x[..., 0], [(2, 3, 4)]),
    C("getitem_ellipsis_mid", lambda x: x[0, ..., 1:3], lambda x: x[0, ..., 1:3], [(2, 3, 4)]),
    C("getitem_int_ellipsis_none", lambda x: x[1, ..., None], lambda x: x[1, ..., None], [(2, 3)]),
    C("getitem_0d_none", lambda x: x[None], lambda x: x[None], [()]),
    C("getitem_0d_ellipsis", lambda x: x[...], lambda x: x[...], [()]),
    C("getitem_empty_slice", lambda x: x[2:1], lambda x: x[2:1], [(3, 4)]),
    C("getitem_rev", lambda x: x[::-1], lambda x: x[::-1], [(4, 3)], torch=lambda x: x.flip(0)),
    C("getitem_rev_step", lambda x: x[-2:, ::-2], lambda x: x[-2:, ::-2], [(3, 5)],
      torch=lambda x: x[-2:].flip(1)[:, ::2]),
    C("getitem_rev_bounds", lambda x: x[:, 3:0:-1], lambda x: x[:, 3:0:-1], [(2, 5)],
      torch=lambda x: x[:, 1:4].flip(1)),
    C("getitem_index_tensor", lambda x, i: x[i], lambda x, i: x[i], [(4, 3), (5,)], ("real", ("label", 4))),
    C("getitem_index_list", lambda x: x[[0, 2, 2]], lambda x: x[[0, 2, 2]], [(3, 2)]),
    C("getitem_bool_mask", lambda x, m: x[m], lambda x, m: x[m], [(3, 4), (3, 4)], ("real", "bool"),
      traceable=False),
    C("setitem_row", setitem_row, lambda x, v: np_setitem(x, 1, v), [(3, 4), (4,)]),
    C("setitem_slice_bcast", setitem_slice, lambda x, v: np_setitem(x, (slice(None), slice(1, 3)), v),
      [(3, 4), (3, 1)]),
    C("setitem_scalar", setitem_scalar, lambda x: np_setitem(x, (0, slice(None, None, 2)), 0.5), [(2, 5)]),
    C("setitem_fn", lambda x, v: graphc.functional.setitem(x, (slice(None), 0), v),
      lambda x, v: np_setitem(x, (slice(None), 0), v), [(3, 4), ()], torch=None),
    # advanced indexing: index tensors, lists and ranges, broadcast together (PyTorch's dim placement)
    C("getitem_two_index_tensors", lambda x, i, j: x[i, j], lambda x, i, j: x[i, j], [(4, 5), (3,), (3,)],
      ("real", ("label", 4), ("label", 5))),
    C("getitem_range_and_tensor", lambda x, j: x[range(3), j], lambda x, j: x[np.arange(3), j], [(3, 5), (3,)],
      ("real", ("label", 5))),
    C("getitem_slice_then_2d_index", lambda x, i: x[:, i], lambda x, i: x[:, i], [(3, 4), (2, 2)],
      ("real", ("label", 4))),
    C("getitem_separated_indices", lambda x, i, j: x[i, :, j], lambda x, i, j: x[i, :, j], [(4, 3, 5), (2,), (2,)],
      ("real", ("label", 4), ("label", 5))),
    # an int is a select in PyTorch, not an index array: [:, 0, :, [1, 2]] keeps the list's dim in place
    C("getitem_int_then_list", lambda x: x[:, 0, :, [1, 2]], lambda x: x[:, 0][:, :, [1, 2]], [(2, 3, 4, 5)]),
    C("getitem_none_and_list", lambda x: x[None, [1, 0]], lambda x: x[None, [1, 0]], [(3, 4)]),
    C("getitem_broadcast_lists", lambda x: x[[[0], [2]], [1, 3]], lambda x: x[[[0], [2]], [1, 3]], [(3, 4)]),
    C("getitem_ellipsis_list", lambda x: x[..., [0, 2, 0]], lambda x: x[..., [0, 2, 0]], [(2, 3, 4)]),
    C("getitem_negative_index", lambda x: x[[-1, 0]], lambda x: x[[-1, 0]], [(3, 2)]),
    C("setitem_range_index", setitem_range_index, lambda x, j, v: np_setitem(x, (np.arange(3), j), v),
      [(3, 5), (3,), (3,)], ("real", ("label", 5), "real")),
    C("setitem_overlay_max", setitem_overlay_max,
      lambda x, j: np_setitem(x, (np.arange(3), j), x.max()), [(3, 5), (3,)], ("real", ("label", 5))),
    C("setitem_slice_and_list", setitem_slice_and_list, lambda x, v: np_setitem(x, (slice(1, None), [0, 2]), v),
      [(3, 4), (2, 2)]),
    C("setitem_bool_mask_scalar", setitem_mask_scalar, lambda x, m: np_setitem(x, m, 0.5), [(3, 4), (3, 4)],
      ("real", "bool")),
    C("index_put_accumulate", lambda x, v, i: apply_op("index_put", x, v, i, dims=(0,), accumulate=True),
      np_index_add, [(4, 3), (5, 3), (5,)], ("real", "real", ("label", 4)),
      torch=lambda x, v, i: x.index_put((i,), v, accumulate=True)),
    C("getitem_grad", lambda g: apply_op("getitem_grad", g, index=((1, 3, 1), 2), shape=(4, 3)),
      lambda g: np_setitem(np.zeros((4, 3)), (slice(1, 3), 2), g), [(2,)],
      torch=t_getitem_grad((slice(1, 3), 2), (4, 3))),
    C("cat", lambda a, b: lib(a).cat([a, b]), lambda a, b: np.concatenate([a, b]), [(2, 3), (4, 3)]),
    C("cat_dim1", lambda a, b, c: lib(a).cat([a, b, c], 1), lambda a, b, c: np.concatenate([a, b, c], 1),
      [(2, 1), (2, 3), (2, 2)]),
    C("cat_neg_dim", lambda a, b: lib(a).cat((a, b), -1), lambda a, b: np.concatenate([a, b], -1),
      [(2, 3, 1), (2, 3, 2)]),
    C("cat_single", lambda a: lib(a).cat([a]), lambda a: a, [(2, 3)]),
    C("stack", lambda a, b: lib(a).stack([a, b]), lambda a, b: np.stack([a, b]), [(2, 3), (2, 3)]),
    C("stack_dim1", lambda a, b, c: lib(a).stack([a, b, c], 1), lambda a, b, c: np.stack([a, b, c], 1),
      [(3,), (3,), (3,)]),
    C("stack_0d", lambda a, b: lib(a).stack([a, b]), lambda a, b: np.stack([a, b]), [(), ()]),
]

GATHER_SCATTER = [
    # gather / scatter / index_select
    C("gather", lambda x, i: lib(x).gather(x, 1, i), lambda x, i: np_gather(x, 1, i), [(3, 4), (3, 5)],
      ("real", ("label", 4))),
    C("gather_smaller_index", lambda x, i: x.gather(0, i), lambda x, i: np_gather(x, 0, i), [(3, 4), (5, 2)],
      ("real", ("label", 3))),
    C("gather_neg_dim_3d", lambda x, i: x.gather(-1, i), lambda x, i: np_gather(x, -1, i), [(2, 3, 4), (2, 3, 2)],
      ("real", ("label", 4))),
    C("scatter", lambda x, s: x.scatter(1, ix(x, SCATTER_ROWS), s), lambda x, s: np_scatter(x, 1, np.array(SCATTER_ROWS), s),
      [(3, 4), (3, 2)]),
    C("scatter_fn_src_larger", lambda x, s: lib(x).scatter(x, 0, ix(x, SCATTER_COLS), s),
      lambda x, s: np_scatter(x, 0, np.array(SCATTER_COLS), s), [(3, 4), (3, 5)],
      torch=lambda x, s: x.scatter(0, ix(x, SCATTER_COLS), s[:2, :4])),   # torch's backward rejects a larger src
    C("scatter_value", lambda x: x.scatter(1, ix(x, SCATTER_ROWS), 0.5),
      lambda x: np_scatter(x, 1, np.array(SCATTER_ROWS), 0.5), [(3, 4)]),
    C("scatter_reduce_add", lambda x, i, s: x.scatter(1, i, s, reduce="add"), lambda x, i, s: np_scatter(x, 1, i, s, True),
      [(3, 4), (3, 5), (3, 5)], ("real", ("label", 4), "real"), torch=None),   # torch has no backward for reduce=
    C("scatter_add", lambda x, i, s: x.scatter_add(1, i, s), lambda x, i, s: np_scatter(x, 1, i, s, True),
      [(3, 4), (3, 5), (3, 5)], ("real", ("label", 4), "real")),
    C("scatter_add_fn_dim0_src_larger", lambda x, i, s: lib(x).scatter_add(x, 0, i, s),
      lambda x, i, s: np_scatter(x, 0, i, s, True), [(3, 4), (4, 3), (5, 4)], ("real", ("label", 3), "real"),
      torch=lambda x, i, s: x.scatter_add(0, i, s[:4, :3])),   # torch's backward rejects a larger src
    C("scatter_inplace", scatter_inplace, lambda x, s: np_scatter(x, 1, np.array(SCATTER_ROWS), s), [(3, 4), (3, 2)]),
    C("scatter_add_inplace", scatter_add_inplace, lambda x, i, s: np_scatter(x, 0, i, s, True), [(3, 4), (2, 4), (2, 4)],
      ("real", ("label", 3), "real")),
    C("index_select", lambda x, i: lib(x).index_select(x, 0, i), lambda x, i: np_index_select(x, 0, i), [(4, 3), (5,)],
      ("real", ("label", 4))),
    C("index_select_dim_neg", lambda x, i: x.index_select(-1, i), lambda x, i: np_index_select(x, -1, i),
      [(2, 3, 4), (6,)], ("real", ("label", 4))),
    C("index_select_int32", lambda x, i: x.index_select(1, i.int()), lambda x, i: np_index_select(x, 1, i), [(2, 4), (3,)],
      ("real", ("label", 4))),
]
