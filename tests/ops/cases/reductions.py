"""Op table: reductions (sum, mean, var/std, max/min, argmax, logsumexp), norms, sort and topk.

    C("sum_dim", lambda x: x.sum(1), lambda x: x.sum(1), [(3, 4)])
"""
from __future__ import annotations

import numpy as np

from .core import SUM_TOL, C, lib
from .references import np_logsumexp, np_norm, np_sort, np_topk


REDUCTIONS = [
    # reductions
    C("sum_all", lambda x: x.sum(), np.sum, [(3, 4)]),
    C("sum_fn_all", lambda x: lib(x).sum(x), np.sum, [(2, 3, 4)], **SUM_TOL),
    C("sum_dim", lambda x: x.sum(1), lambda x: x.sum(1), [(3, 4)]),
    C("sum_neg_dim", lambda x: x.sum(-1), lambda x: x.sum(-1), [(2, 3, 4)]),
    C("sum_keepdim", lambda x: x.sum(1, keepdim=True), lambda x: x.sum(1, keepdims=True), [(3, 4)]),
    C("sum_dims", lambda x: x.sum((0, 2)), lambda x: x.sum((0, 2)), [(2, 3, 4)]),
    C("sum_dims_keepdim", lambda x: x.sum((0, 2), keepdim=True), lambda x: x.sum((0, 2), keepdims=True), [(2, 3, 4)]),
    C("sum_0d", lambda x: x.sum(), np.sum, [()]),
    C("sum_0d_dim", lambda x: x.sum(0), np.sum, [()]),
    C("sum_size1", lambda x: x.sum(1), lambda x: x.sum(1), [(3, 1, 2)]),
    C("sum_int", lambda i: i.sum(), np.sum, [(3, 4)], "int", out="int64"),
    C("sum_bool", lambda b: b.sum(0), lambda b: b.sum(0), [(3, 4)], "bool", out="int64"),
    C("mean_all", lambda x: x.mean(), np.mean, [(3, 4)]),
    C("mean_dim", lambda x: lib(x).mean(x, 0), lambda x: x.mean(0), [(3, 4)]),
    C("mean_keepdim", lambda x: x.mean((1, 2), keepdim=True), lambda x: x.mean((1, 2), keepdims=True), [(2, 3, 4)]),
    C("mean_int", lambda i: i.mean(), np.mean, [(5,)], "int", out="float32", torch=None),
    C("var_all", lambda x: x.var(), lambda x: np.var(x, ddof=1), [(3, 4)]),
    C("var_dim", lambda x: lib(x).var(x, 1), lambda x: np.var(x, 1, ddof=1), [(3, 4)]),
    C("var_biased_keepdim", lambda x: x.var(0, keepdim=True, correction=0),
      lambda x: np.var(x, 0, keepdims=True), [(4, 3)]),
    C("std_all", lambda x: lib(x).std(x), lambda x: np.std(x, ddof=1), [(3, 4)]),
    C("std_dim", lambda x: x.std(-1), lambda x: np.std(x, -1, ddof=1), [(2, 5)]),
    C("amax_all", lambda x: x.amax(), np.max, [(3, 4)], "distinct"),
    C("amax_dim", lambda x: lib(x).amax(x, 1), lambda x: x.max(1), [(3, 4)], "distinct"),
    C("amax_keepdim", lambda x: x.amax((0, 2), keepdim=True), lambda x: x.max((0, 2), keepdims=True), [(2, 3, 4)],
      "distinct"),
    C("amax_0d", lambda x: x.amax(), np.max, [()]),
    C("amax_0d_dim", lambda x: x.amax(0), np.max, [()]),
    C("amin_dim", lambda x: lib(x).amin(x, 0), lambda x: x.min(0), [(3, 4)], "distinct"),
    C("max_all", lambda x: x.max(), np.max, [(3, 4)], "distinct"),
    C("min_fn_all", lambda x: lib(x).min(x), np.min, [(5,)], "distinct"),
    C("max_dim_values", lambda x: x.max(1).values, lambda x: x.max(1), [(3, 4)], "distinct"),
    C("max_dim_keepdim", lambda x: x.max(-1, keepdim=True)[0], lambda x: x.max(-1, keepdims=True), [(2, 3, 4)],
      "distinct"),
    C("max_dim_indices", lambda x: x.max(1).indices, lambda x: x.argmax(1), [(3, 4)], "distinct", out="int64"),
    C("min_dim_values", lambda x: lib(x).min(x, 0).values, lambda x: x.min(0), [(3, 4)], "distinct"),
    C("min_dim_indices", lambda x: x.min(0)[1], lambda x: x.argmin(0), [(3, 4)], "distinct", out="int64"),
    C("argmax_all", lambda x: x.argmax(), np.argmax, [(3, 4)], "distinct", out="int64"),
    C("argmax_dim", lambda x: lib(x).argmax(x, 1), lambda x: x.argmax(1), [(3, 4)], "distinct", out="int64"),
    C("argmax_keepdim", lambda x: x.argmax(0, keepdim=True), lambda x: x.argmax(0)[None], [(3, 4)], "distinct",
      out="int64"),
    C("argmax_ties", lambda x: x.argmax(1), lambda x: x.argmax(1), [(4, 5)], "intfloat", out="int64"),
    C("argmax_0d_dim", lambda x: x.argmax(0), np.argmax, [()], out="int64"),
    C("argmin_dim", lambda x: lib(x).argmin(x, -1), lambda x: x.argmin(-1), [(2, 3, 4)], "distinct", out="int64"),
    C("logsumexp", lambda x: lib(x).logsumexp(x, 1), lambda x: np_logsumexp(x, 1), [(3, 4)]),
    C("logsumexp_keepdim", lambda x: x.logsumexp(0, keepdim=True), lambda x: np_logsumexp(x, 0, True), [(3, 4)]),
    C("logsumexp_wide", lambda x: x.logsumexp(-1), lambda x: np_logsumexp(x, -1), [(2, 5)], "wide", rtol=1e-5,
      atol=1e-4),
]

NORMS_POSITIONAL = [
    # norms (positional p and dim, as torch.norm takes them), log1p (composites)
    C("norm_dim_keepdim", lambda x: x.norm(2, 1, keepdim=True), lambda x: np.linalg.norm(x, axis=1, keepdims=True),
      [(3, 4)]),
    C("norm_p1_dim0", lambda x: x.norm(1, 0), lambda x: np.abs(x).sum(0), [(3, 4)]),
    C("log1p", lambda x: lib(x).log1p(x), np.log1p, [(3,)], "pos"),
]

SORT = [
    # sort / argsort / topk
    C("sort_values", lambda x: lib(x).sort(x).values, lambda x: np_sort(x)[0], [(3, 5)], "distinct"),
    C("sort_indices", lambda x: x.sort(0)[1], lambda x: np_sort(x, 0)[1], [(4, 3)], "distinct", out="int64"),
    C("sort_descending", lambda x: x.sort(-1, descending=True).values, lambda x: np_sort(x, -1, True)[0], [(2, 3, 4)],
      "distinct"),
    C("sort_stable_ties", lambda x: x.sort(stable=True).indices, lambda x: np_sort(x)[1], [(3, 6)], "intfloat",
      out="int64"),
    C("sort_stable_ties_descending", lambda x: x.sort(descending=True, stable=True).indices,
      lambda x: np_sort(x, -1, True)[1], [(3, 6)], "intfloat", out="int64"),
    C("argsort", lambda x: lib(x).argsort(x), lambda x: np_sort(x)[1], [(3, 5)], "distinct", out="int64"),
    C("argsort_descending_dim0", lambda x: x.argsort(0, descending=True), lambda x: np_sort(x, 0, True)[1], [(4, 3)],
      "distinct", out="int64"),
    C("argsort_int", lambda i: i.argsort(stable=True), lambda i: np_sort(i)[1], [(6,)], "int", out="int64"),
    C("topk_values", lambda x: lib(x).topk(x, 2).values, lambda x: np_topk(x, 2)[0], [(3, 5)], "distinct"),
    C("topk_indices", lambda x: x.topk(3, 0)[1], lambda x: np_topk(x, 3, 0)[1], [(4, 3)], "distinct", out="int64"),
    C("topk_smallest", lambda x: x.topk(2, largest=False).values, lambda x: np_topk(x, 2, -1, False)[0], [(2, 3, 4)],
      "distinct"),
    C("topk_k0", lambda x: x.topk(0).values, lambda x: x[:, :0], [(2, 3)], "distinct"),
]

NORMS_VAR_STD = [
    # norms, var/std
    C("norm_all", lambda x: lib(x).norm(x), lambda x: np_norm(x), [(3, 4)]),
    C("norm_dim", lambda x: x.norm(dim=1), lambda x: np_norm(x, 2, 1), [(3, 4)]),
    C("norm_p1_keepdim", lambda x: x.norm(1, dim=0, keepdim=True), lambda x: np_norm(x, 1, 0, True), [(3, 4)], "nonzero"),
    C("norm_p3", lambda x: x.norm(3, dim=-1), lambda x: np_norm(x, 3, -1), [(2, 5)], "nonzero"),
    C("norm_inf", lambda x: x.norm(float("inf")), lambda x: np_norm(x, np.inf), [(3, 4)], "distinct"),
    C("norm_p0", lambda x: x.norm(0, dim=1), lambda x: np_norm(x, 0, 1), [(3, 4)], "int", out="float32",
      torch=lambda x: x.float().norm(0, dim=1)),
    C("var_dims_correction", lambda x: x.var((0, 2), correction=2, keepdim=True),
      lambda x: np.var(x, (0, 2), ddof=2, keepdims=True), [(2, 3, 4)]),
    C("var_unbiased_false", lambda x: lib(x).var(x, 1, False), lambda x: np.var(x, 1), [(3, 4)]),
    C("std_dims_keepdim", lambda x: x.std((1, 2), keepdim=True), lambda x: np.std(x, (1, 2), ddof=1, keepdims=True),
      [(2, 3, 4)]),
    C("std_correction0", lambda x: lib(x).std(x, 0, correction=0), lambda x: np.std(x, 0), [(4, 3)]),
]
