"""Op table: shape and view ops (reshape, permute, expand), split/chunk/repeat, tril/triu and cumsum.

    C("reshape", lambda x: x.reshape(2, 6), lambda x: x.reshape(2, 6), [(3, 4)])
"""
from __future__ import annotations

import numpy as np

from .core import SUM_TOL, C, lib
from .references import np_repeat, np_split_piece


SHAPE = [
    # shape
    C("reshape", lambda x: x.reshape(2, 6), lambda x: x.reshape(2, 6), [(3, 4)]),
    C("reshape_fn_tuple", lambda x: lib(x).reshape(x, (4, 3)), lambda x: x.reshape(4, 3), [(3, 4)]),
    C("reshape_infer", lambda x: x.reshape(-1), lambda x: x.reshape(-1), [(2, 3, 2)]),
    C("reshape_0d_to_2d", lambda x: x.reshape(1, 1), lambda x: x.reshape(1, 1), [()]),
    C("reshape_to_0d", lambda x: x.reshape(()), lambda x: x.reshape(()), [(1,)]),
    C("view", lambda x: x.view(2, -1), lambda x: x.reshape(2, -1), [(3, 4)]),
    C("view_as", lambda x, y: x.view_as(y), lambda x, y: x.reshape(y.shape), [(3, 4), (6, 2)],
      ("real", ("fixed", "real"))),
    C("flatten", lambda x: x.flatten(), lambda x: x.reshape(-1), [(2, 3, 4)]),
    C("flatten_fn_start", lambda x: lib(x).flatten(x, 1), lambda x: x.reshape(2, -1), [(2, 3, 4)]),
    C("flatten_0d", lambda x: x.flatten(), lambda x: x.reshape(1), [()]),
    C("squeeze_all", lambda x: x.squeeze(), np.squeeze, [(3, 1, 4, 1)]),
    C("squeeze_dim", lambda x: lib(x).squeeze(x, 1), lambda x: np.squeeze(x, 1), [(3, 1, 4)]),
    C("squeeze_noop_dim", lambda x: x.squeeze(0), lambda x: x, [(3, 4)]),
    C("unsqueeze", lambda x: x.unsqueeze(0), lambda x: x[None], [(3, 4)]),
    C("unsqueeze_fn_neg", lambda x: lib(x).unsqueeze(x, -1), lambda x: x[..., None], [(3, 4)]),
    C("unsqueeze_0d", lambda x: x.unsqueeze(0), lambda x: x.reshape(1), [()]),
    C("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1), [(2, 3, 4)]),
    C("permute_fn_tuple", lambda x: lib(x).permute(x, (1, 0, 2)), lambda x: x.transpose(1, 0, 2), [(2, 3, 4)]),
    C("transpose", lambda x: x.transpose(0, 1), lambda x: x.T, [(3, 4)]),
    C("transpose_fn_neg", lambda x: lib(x).transpose(x, -1, -2), lambda x: np.swapaxes(x, -1, -2), [(2, 3, 4)]),
    C("T", lambda x: x.T, lambda x: x.T, [(3, 4)]),
    C("t", lambda x: x.t(), lambda x: x.T, [(3, 4)]),
    C("t_1d", lambda x: x.t(), lambda x: x, [(3,)]),
    C("mT", lambda x: x.mT, lambda x: np.swapaxes(x, -1, -2), [(2, 3, 4)]),
    C("expand", lambda x: x.expand(3, 4), lambda x: np.broadcast_to(x, (3, 4)), [(3, 1)]),
    C("expand_new_dims", lambda x: x.expand(2, -1, -1), lambda x: np.broadcast_to(x, (2, 3, 4)), [(3, 4)]),
    C("expand_0d", lambda x: x.expand(2, 3), lambda x: np.broadcast_to(x, (2, 3)), [()]),
    C("expand_as", lambda x, y: x.expand_as(y), lambda x, y: np.broadcast_to(x, y.shape), [(4,), (3, 4)],
      ("real", ("fixed", "real"))),
    C("broadcast_to", lambda x: x.broadcast_to((2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4)), [(3, 1)]),
]

SPLIT_CUMSUM = [
    # split / chunk / repeat / tril / triu / cumsum
    C("chunk_last_shorter", lambda x: x.chunk(3, 1)[2], lambda x: x[:, 4:], [(2, 5)]),
    C("chunk_fn_first", lambda x: lib(x).chunk(x, 2)[0], lambda x: x[:2], [(3, 4)]),
    C("chunk_fewer_pieces", lambda x: len(x.chunk(4)) * x.chunk(4)[-1], lambda x: 3 * x[2:], [(3, 2)]),
    C("split_size", lambda x: x.split(2, -1)[1], lambda x: x[..., 2:4], [(2, 3, 5)]),
    C("split_sections_fn", lambda x: lib(x).split(x, [1, 3, 1], 1)[1], lambda x: np_split_piece(x, [1, 3, 1], 1, 1),
      [(2, 5)]),
    C("split_sum_of_pieces", lambda x: sum(p.sum() for p in x.split([2, 1])), np.sum, [(3, 2)]),
    C("repeat", lambda x: x.repeat(2, 3), lambda x: np_repeat(x, 2, 3), [(2, 3)]),
    C("repeat_new_dims", lambda x: x.repeat(2, 1, 2), lambda x: np_repeat(x, 2, 1, 2), [(3,)]),
    C("repeat_int", lambda i: i.repeat(3), lambda i: np_repeat(i, 3), [(2,)], "int", out="int64"),
    C("tril", lambda x: lib(x).tril(x), np.tril, [(3, 4)]),
    C("tril_diag_batched", lambda x: x.tril(-1), lambda x: np.tril(x, -1), [(2, 3, 3)]),
    C("triu", lambda x: lib(x).triu(x, 1), lambda x: np.triu(x, 1), [(4, 3)]),
    C("triu_int", lambda i: i.triu(), np.triu, [(3, 3)], "int", out="int64"),
    C("cumsum", lambda x: lib(x).cumsum(x, 1), lambda x: np.cumsum(x, 1), [(3, 4)]),
    C("cumsum_neg_dim", lambda x: x.cumsum(-1), lambda x: np.cumsum(x, -1), [(2, 3, 4)], **SUM_TOL),
    C("cumsum_dim0", lambda x: x.cumsum(0), lambda x: np.cumsum(x, 0), [(5,)]),
    C("cumsum_int", lambda i: i.cumsum(0), lambda i: np.cumsum(i, 0), [(5,)], "int", out="int64"),
    C("cumsum_bool", lambda b: lib(b).cumsum(b, 1), lambda b: np.cumsum(b, 1), [(2, 4)], "bool", out="int64"),
    C("cumsum_dtype", lambda x: x.cumsum(0, dtype=lib(x).float64), lambda x: np.cumsum(x, 0), [(3,)], out="float64"),
]
