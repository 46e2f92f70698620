"""Op table: matmul of any rank, mm/bmm/dot and einsum.

    C("matmul_2d", lambda a, b: a @ b, np.matmul, [(3, 4), (4, 5)])
"""
from __future__ import annotations

import numpy as np

from .core import SUM_TOL, C, lib


MATMUL = [
    # matmul
    C("matmul_2d", lambda a, b: a @ b, np.matmul, [(3, 4), (4, 5)]),
    C("matmul_fn", lambda a, b: lib(a).matmul(a, b), np.matmul, [(2, 3), (3, 2)]),
    C("matmul_1d_2d", lambda a, b: a @ b, np.matmul, [(4,), (4, 5)]),
    C("matmul_2d_1d", lambda a, b: a @ b, np.matmul, [(3, 4), (4,)]),
    C("matmul_1d_1d", lambda a, b: a @ b, np.matmul, [(4,), (4,)]),
    C("matmul_batched", lambda a, b: a @ b, np.matmul, [(2, 3, 4), (2, 4, 5)]),
    C("matmul_batch_bcast", lambda a, b: a @ b, np.matmul, [(2, 1, 3, 4), (5, 4, 2)]),
    C("matmul_batched_2d", lambda a, b: a @ b, np.matmul, [(2, 3, 4), (4, 5)]),
    C("matmul_1d_batched", lambda a, b: a @ b, np.matmul, [(4,), (2, 4, 3)]),
    C("matmul_batched_1d", lambda a, b: a @ b, np.matmul, [(2, 3, 4), (4,)]),
    C("matmul_transposed_w", lambda x, w: x @ w.T, lambda x, w: x @ w.T, [(3, 4), (5, 4)]),
    C("rmatmul_ndarray", lambda a: np.eye(3, dtype=a.dtype) @ a, lambda a: a, [(3, 2)], torch=None),
    C("mm", lambda a, b: a.mm(b), np.matmul, [(3, 4), (4, 2)]),
    C("bmm", lambda a, b: a.bmm(b), np.matmul, [(2, 3, 4), (2, 4, 2)]),
    C("dot", lambda a, b: lib(a).dot(a, b), np.dot, [(5,), (5,)]),
    C("linear_composite", lambda x, w, b: x @ w.T + b, lambda x, w, b: x @ w.T + b, [(4, 3), (2, 3), (2,)]),
]

EINSUM = [
    # einsum, bmm, matmul of any rank
    C("einsum_mm", lambda a, b: lib(a).einsum("ij,jk->ik", a, b), np.matmul, [(3, 4), (4, 2)]),
    C("einsum_batched", lambda a, b: lib(a).einsum("bij,bjk->bik", a, b), np.matmul, [(2, 3, 4), (2, 4, 5)]),
    C("einsum_attention", lambda q, k: lib(q).einsum("bhqd,bhkd->bhqk", q, k),
      lambda q, k: np.einsum("bhqd,bhkd->bhqk", q, k), [(2, 2, 3, 4), (2, 2, 5, 4)]),
    C("einsum_implicit_transpose", lambda a: lib(a).einsum("ji", a), lambda a: np.einsum("ji", a), [(2, 3)]),
    C("einsum_implicit_dot", lambda a, b: lib(a).einsum("i,i", a, b), np.dot, [(4,), (4,)]),
    C("einsum_trace", lambda a: lib(a).einsum("ii", a), np.trace, [(3, 3)]),
    C("einsum_diag", lambda a: lib(a).einsum("ii->i", a), np.diagonal, [(3, 3)]),
    C("einsum_sum_all", lambda a: lib(a).einsum("ijk->", a), np.sum, [(2, 3, 4)], **SUM_TOL),
    C("einsum_outer", lambda a, b: lib(a).einsum("i,j->ij", a, b), np.outer, [(3,), (4,)]),
    C("einsum_three", lambda a, b, c: lib(a).einsum("ij,jk,kl->il", a, b, c), lambda a, b, c: a @ b @ c,
      [(2, 3), (3, 4), (4, 2)], **SUM_TOL),
    C("einsum_bilinear", lambda a, w, b: lib(a).einsum("bi,oij,bj->bo", a, w, b),
      lambda a, w, b: np.einsum("bi,oij,bj->bo", a, w, b), [(2, 3), (4, 3, 5), (2, 5)], **SUM_TOL),
    C("einsum_ellipsis_bcast", lambda a, b: lib(a).einsum("...ij,...jk", a, b), np.matmul, [(2, 1, 3, 4), (5, 4, 2)]),
    C("einsum_ellipsis_out", lambda a: lib(a).einsum("...ii->...i", a), lambda a: np.einsum("...ii->...i", a),
      [(2, 3, 3)]),
    C("einsum_list_operands", lambda a, b: lib(a).einsum("ij,ij->i", [a, b]), lambda a, b: (a * b).sum(1),
      [(3, 4), (3, 4)]),
    C("einsum_int", lambda i, j: lib(i).einsum("ij,jk->ik", i, j), np.matmul, [(2, 3), (3, 2)], "int", out="int64"),
    C("bmm_fn", lambda a, b: lib(a).bmm(a, b), np.matmul, [(3, 2, 4), (3, 4, 5)]),
    C("mm_fn", lambda a, b: lib(a).mm(a, b), np.matmul, [(2, 4), (4, 3)]),
    C("matmul_4d_2d", lambda a, b: a @ b, np.matmul, [(2, 3, 4, 5), (5, 2)]),
    C("matmul_1d_4d", lambda a, b: lib(a).matmul(a, b), np.matmul, [(4,), (2, 1, 4, 3)]),
    C("matmul_4d_bcast_both", lambda a, b: a @ b, np.matmul, [(2, 1, 3, 4), (1, 3, 4, 2)]),
    C("max_dim_namedtuple", lambda x: x.max(dim=1, keepdim=True).values * 1.0 + lib(x).min(x, 1, True).values,
      lambda x: x.max(1, keepdims=True) + x.min(1, keepdims=True), [(3, 4)], "distinct"),
    C("argmin_keepdim", lambda x: x.argmin(1, keepdim=True), lambda x: x.argmin(1)[:, None], [(3, 4)], "distinct",
      out="int64"),
]
