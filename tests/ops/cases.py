"""The op parity table: one line per case, every primitive in OPS and the composites of
graphc.functional, each through the public API where one exists.

    C("add_bcast", lambda a, b: a + b, np.add, [(3, 1), (4,)])

A case is `fn(*tensors) -> tensor` (graphc tensors here, torch tensors in the parity suite when
`torch` is SAME, graphc-traced tensors under @graphc.compile in a backend suite), a numpy
reference over the same inputs as ndarrays, the input shapes, and a domain per input that
keeps the inputs where the op is smooth (positive for log, away from 0 for abs/relu, no ties
for max).  test_forward, test_gradients and test_torch_parity run every line; test_registry
checks that the table exercises every primitive in OPS.
"""
from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

import graphc
from graphc.functional import apply_op

SAME = "same"   # the case's fn also runs on torch tensors, unchanged

F32 = np.dtype(np.float32)


def lib(t):
    """The module whose functions take t: graphc for graphc tensors, torch for torch tensors."""
    return graphc if isinstance(t, graphc.Tensor) else sys.modules["torch"]


def nnf(t):
    """graphc.nn.functional or torch.nn.functional, for t's kind of tensor."""
    if isinstance(t, graphc.Tensor):
        import graphc.nn.functional as F
        return F
    return _tF()


def _torch():
    import torch
    return torch


def _tF():
    import torch.nn.functional as tF
    return tF


# --- input domains ------------------------------------------------------------------------------
# A float domain follows the dtype under test (float32 forward, float64 gradients); the others
# give fixed dtypes.  ("fixed", d) draws floats from d that the case does not differentiate against
# (a shape donor, the input that picks max-pool's argmax).

def _uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def _nonzero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)


def _distinct(rng, shape):
    # Values at least 0.08 apart, so a finite-difference step never swaps two of them (max, pools).
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.02, n)).reshape(shape)


FLOAT_DOMAINS = {
    "real": lambda rng, shape: rng.standard_normal(shape),
    "pos": _uniform(0.5, 2.0),
    "nonzero": _nonzero,
    "wide": _uniform(-60.0, 60.0),
    "distinct": _distinct,
    "intfloat": lambda rng, shape: rng.integers(-2, 3, shape).astype(np.float64),   # ties on purpose
    "nonfinite": lambda rng, shape: rng.choice([np.nan, np.inf, -np.inf, 0.5, -2.0], shape),
}

OTHER_DOMAINS = {
    "int": lambda rng, shape: rng.integers(-4, 5, shape).astype(np.int64),
    "nzint": lambda rng, shape: (rng.choice([-1, 1], shape) * rng.integers(1, 5, shape)).astype(np.int64),
    "bool": lambda rng, shape: rng.random(shape) < 0.5,
}


def is_float_domain(domain):
    """Whether the input is a float the case differentiates against (("fixed", d) is a float held constant)."""
    return domain in FLOAT_DOMAINS or (isinstance(domain, tuple) and domain[0] == "uniform")


def draw(domain, shape, float_dtype, rng):
    """One input array.   draw("pos", (2,), float32, rng) -> 2 floats in [0.5, 2)"""
    if isinstance(domain, tuple):
        kind, *args = domain
        if kind == "uniform":
            return np.asarray(_uniform(*args)(rng, shape), dtype=float_dtype)
        if kind == "label":                      # class indices in [0, n)
            return np.asarray(rng.integers(0, args[0], shape), dtype=np.int64)
        if kind == "value":                      # a fixed int64 value (seeds, offsets)
            return np.full(shape, args[0], dtype=np.int64)
        if kind == "fixed":                      # floats that only steer the op (pool argmax input, shape donor)
            return draw(args[0], shape, float_dtype, rng)
        raise ValueError(f"unknown domain {domain!r}")
    if domain in FLOAT_DOMAINS:
        return np.asarray(FLOAT_DOMAINS[domain](rng, shape), dtype=float_dtype)
    return np.asarray(OTHER_DOMAINS[domain](rng, shape))


@dataclass(frozen=True)
class Case:
    """One line of the table; see C() for the meaning of each field."""

    name: str
    fn: Callable
    ref: Callable
    shapes: tuple
    domains: tuple
    torch: Optional[Callable]
    out: str
    grad: bool
    rtol: float
    atol: float
    traceable: bool = True

    def __repr__(self):
        return f"<case {self.name}>"

    def inputs(self, float_dtype=F32, seed=0):
        """The case's input arrays, the same on every run (seeded by name)."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()) + seed)
        return [draw(d, s, np.dtype(float_dtype), rng) for d, s in zip(self.domains, self.shapes)]

    def float_inputs(self):
        """Positions of the inputs that are floats (those a gradient is taken against)."""
        return [i for i, d in enumerate(self.domains) if is_float_domain(d)]

    def out_dtype(self, float_dtype=F32):
        return np.dtype(float_dtype) if self.out == "float" else np.dtype(self.out)

    def run_torch(self, *tensors):
        return (self.fn if self.torch == SAME else self.torch)(*tensors)


def C(name, fn, ref, shapes, dom="real", *, torch=SAME, out="float", grad=None, rtol=1e-5, atol=1e-6, traceable=True):
    """A case.   name: unique id; fn(*tensors); ref(*ndarrays) (numpy, float64 values);
    shapes: one per input; dom: one domain for all inputs or a tuple, one per input;
    torch: SAME (fn runs on torch tensors too), a torch function, or None;
    out: result dtype, "float" = the float inputs' dtype; grad: differentiable (default: a float
    result of float inputs); rtol/atol: forward tolerance against the float64 reference;
    traceable: False for eager-only cases (a result shape that depends on the data).
    """
    shapes = tuple(tuple(s) for s in shapes)
    single = isinstance(dom, str) or (isinstance(dom, tuple) and dom[:1] in (("uniform",), ("label",), ("value",),
                                                                               ("fixed",)))
    domains = (dom,) * len(shapes) if single else tuple(dom)
    assert len(domains) == len(shapes), f"{name}: {len(shapes)} shapes but {len(domains)} domains"
    if grad is None:
        grad = out == "float" and any(is_float_domain(d) for d in domains)
    return Case(name, fn, ref, shapes, domains, torch, out, grad, rtol, atol, traceable)


# --- numpy references ---------------------------------------------------------------------------

def np_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def np_logsumexp(x, axis, keepdims=False):
    m = x.max(axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis)


def np_log_softmax(x, axis):
    return x - np_logsumexp(x, axis, keepdims=True)


def np_one_hot(y, n, dtype=np.float32):
    return (y[..., None] == np.arange(n)).astype(dtype)


def np_cross_entropy(x, y):
    return -np_log_softmax(x, 1)[np.arange(len(y)), y].mean()


def np_setitem(x, index, v):
    y = x.copy()
    y[index] = v
    return y


def _windows(hw, k, s, p):
    return (hw + 2 * p - k) // s + 1


def np_conv2d(x, w, stride=(1, 1), padding=(0, 0)):
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, _, kh, kw = w.shape
    oh, ow = _windows(x.shape[2], kh, sh, ph), _windows(x.shape[3], kw, sw, pw)
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw], w[:, :, i, j])
    return out


def np_conv2d_grad_input(gy, w, input_hw, stride, padding):
    (sh, sw), (ph, pw), (h, wd) = stride, padding, input_hw
    _, c, kh, kw = w.shape
    oh, ow = gy.shape[2:]
    gxp = np.zeros((gy.shape[0], c, h + 2 * ph, wd + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += np.einsum("nohw,oc->nchw", gy, w[:, :, i, j])
    return gxp[:, :, ph:ph + h, pw:pw + wd]


def np_conv2d_grad_weight(gy, x, kernel_hw, stride, padding):
    (sh, sw), (ph, pw), (kh, kw) = stride, padding, kernel_hw
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = gy.shape[2:]
    gw = np.zeros((gy.shape[1], x.shape[1], kh, kw))
    for i in range(kh):
        for j in range(kw):
            gw[:, :, i, j] = np.einsum("nohw,nchw->oc", gy, xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
    return gw


def np_pool_argmax(x, kernel, stride, padding):
    """Flat index (h*W + w, unpadded) of each window's first maximum, -inf padding."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = _windows(h, kh, sh, ph), _windows(w, kw, sw, pw)
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            a = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, c, -1).argmax(-1)
            idx[:, :, i, j] = (a // kw + i * sh - ph) * w + (a % kw + j * sw - pw)
    return idx


def np_pool_gather(x, idx):
    n, c = x.shape[:2]
    return np.take_along_axis(x.reshape(n, c, -1), idx.reshape(n, c, -1), -1).reshape(idx.shape)


def np_pool_scatter(gy, idx, input_hw):
    n, c = gy.shape[:2]
    out = np.zeros((n, c, input_hw[0] * input_hw[1]))
    for b in range(n):
        for ch in range(c):
            np.add.at(out[b, ch], idx[b, ch].ravel(), gy[b, ch].ravel())
    return out.reshape((n, c) + tuple(input_hw))


def np_cnn_block(x, w):
    y = np.maximum(np_conv2d(x, w, padding=(1, 1)), 0)
    return np_pool_gather(y, np_pool_argmax(y, (2, 2), (2, 2), (0, 0)))


def np_uniform(seed, offset, shape):
    """splitmix64's finaliser over (seed * golden) ^ (offset + i), top 24 bits -> [0, 1), in Python ints."""
    m64, golden = 2 ** 64 - 1, 0x9E3779B97F4A7C15
    out = []
    for i in range(int(np.prod(shape))):
        z = ((int(seed) * golden) & m64) ^ (int(offset) + i)
        z = (z + golden) & m64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
        z ^= z >> 31
        out.append((z >> 40) / 2 ** 24)
    return np.array(out).reshape(shape)


# --- graphc-only ops and their torch counterparts -------------------------------------------------

def conv2d(x, w, stride=(1, 1), padding=(0, 0)):
    return apply_op("conv2d", x, w, stride=stride, padding=padding)


def t_conv2d(stride=(1, 1), padding=(0, 0)):
    return lambda x, w: _tF().conv2d(x, w, stride=stride, padding=padding)


def pool_argmax(x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return apply_op("maxpool2d_argmax", x, kernel=kernel, stride=stride, padding=padding)


def max_pool(x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return apply_op("maxpool2d_gather", x, pool_argmax(x, kernel, stride, padding))


def pool_scatter(gy, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return apply_op("maxpool2d_scatter", gy, pool_argmax(x, kernel, stride, padding), input_hw=tuple(x.shape[2:]))


def t_pool_argmax(kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return lambda x: _tF().max_pool2d(x, kernel, stride, padding, return_indices=True)[1]


def t_max_pool(kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return lambda x: _tF().max_pool2d(x, kernel, stride, padding)


def t_pool_scatter(kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    def scatter(gy, x):     # max_pool2d's input gradient for output gradient gy, itself differentiable in gy
        x = x.detach().requires_grad_(True)
        y = _tF().max_pool2d(x, kernel, stride, padding)
        return _torch().autograd.grad(y, x, gy, create_graph=True)[0]
    return scatter


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


def np_index_add(x, v, i):
    y = x.copy()
    np.add.at(y, i, v)
    return y


def one_hot(y, n=4):
    return apply_op("one_hot", y, num_classes=n, dtype=F32)


def cross_entropy(x, y):
    """The composite nn.functional.cross_entropy is built from: -mean(sum(log_softmax * one_hot))."""
    return -(x.log_softmax(1) * one_hot(y, x.shape[1])).sum(1).mean()


def ix(like, rows):
    """A fixed int64 index tensor of like's kind (graphc or torch): scatter positions without repeats."""
    return lib(like).tensor(rows)


SCATTER_ROWS = [[2, 0], [1, 3], [0, 1]]            # distinct positions per row of a (3, 4) tensor, along dim 1
SCATTER_COLS = [[1, 0, 2, 0], [2, 1, 0, 1]]       # distinct positions per column of a (3, 4) tensor, along dim 0


def np_erf(x):
    from scipy import special
    return special.erf(x)


def np_gather(x, dim, i):
    return np.take_along_axis(x[tuple(slice(0, n) if d != dim % x.ndim else slice(None)
                                      for d, n in enumerate(i.shape))], i, dim)


def np_scatter(x, dim, i, src, add=False):
    out = x.copy()
    grids = list(np.indices(i.shape, sparse=True))
    grids[dim % x.ndim] = i
    src = np.broadcast_to(src, i.shape) if np.ndim(src) == 0 else src[tuple(slice(0, n) for n in i.shape)]
    if add:
        np.add.at(out, tuple(grids), src)
    else:
        out[tuple(grids)] = src
    return out


def np_index_select(x, dim, i):
    return np.take(x, i, axis=dim)


def np_repeat(x, *sizes):
    return np.tile(x, sizes)


def np_sort(x, dim=-1, descending=False):
    order = np.argsort(-x if descending else x, axis=dim, kind="stable")
    return np.take_along_axis(x, order, dim), order


def np_topk(x, k, dim=-1, largest=True):
    values, order = np_sort(x, dim, largest)
    keep = tuple(slice(0, k) if d == dim % x.ndim else slice(None) for d in range(x.ndim))
    return values[keep], order[keep]


def np_norm(x, p=2, dim=None, keepdim=False):
    a = np.abs(x)
    if p == np.inf:
        return a.max(dim, keepdims=keepdim)
    if p == 0:
        return (x != 0).sum(dim, keepdims=keepdim).astype(x.dtype)
    return (a ** p).sum(dim, keepdims=keepdim) ** (1 / p)


def np_split_piece(x, sizes, k, dim=0):
    return np.split(x, np.cumsum(sizes)[:-1], axis=dim)[k]


def scatter_inplace(x, s):
    y = x.clone()
    y.scatter_(1, ix(x, SCATTER_ROWS), s)
    return y


def scatter_add_inplace(x, i, s):
    y = x * 1.0
    y.scatter_add_(0, i, s)
    return y


SUM_TOL = dict(rtol=1e-5, atol=1e-5)   # sums of a few dozen float32 terms


# --- the table -----------------------------------------------------------------------------------

CASES = [
    # unary elementwise
    C("neg", lambda x: -x, np.negative, [(3, 4)]),
    C("neg_fn_0d", lambda x: lib(x).neg(x), np.negative, [()]),
    C("neg_int", lambda i: -i, np.negative, [(5,)], "int", out="int64"),
    C("exp", lambda x: lib(x).exp(x), np.exp, [(3, 4)]),
    C("exp_method_0d", lambda x: x.exp(), np.exp, [()]),
    C("exp_int", lambda i: lib(i).exp(i), np.exp, [(5,)], "int", out="float32"),
    C("log", lambda x: lib(x).log(x), np.log, [(3, 4)], "pos"),
    C("log_method_0d", lambda x: x.log(), np.log, [()], "pos"),
    C("sqrt", lambda x: lib(x).sqrt(x), np.sqrt, [(2, 3)], "pos"),
    C("sqrt_0d", lambda x: x.sqrt(), np.sqrt, [()], "pos"),
    C("rsqrt", lambda x: lib(x).rsqrt(x), lambda x: 1 / np.sqrt(x), [(4,)], "pos"),
    C("abs", lambda x: abs(x), np.abs, [(3, 4)], "nonzero"),
    C("abs_fn_0d", lambda x: lib(x).abs(x), np.abs, [()], "nonzero"),
    C("abs_int", lambda i: i.abs(), np.abs, [(5,)], "int", out="int64"),
    C("sign", lambda x: lib(x).sign(x), np.sign, [(3, 4)], "intfloat", grad=False),
    C("sign_int", lambda i: i.sign(), np.sign, [(5,)], "int", out="int64"),
    C("relu", lambda x: lib(x).relu(x), lambda x: np.maximum(x, 0), [(3, 4)], "nonzero"),
    C("relu_method_0d", lambda x: x.relu(), lambda x: np.maximum(x, 0), [()], "nonzero"),
    C("relu_bcast_input", lambda x, y: (x * y).relu(), lambda x, y: np.maximum(x * y, 0), [(3, 1), (4,)], "nonzero"),
    C("sigmoid", lambda x: lib(x).sigmoid(x), np_sigmoid, [(3, 4)]),
    C("sigmoid_wide", lambda x: x.sigmoid(), np_sigmoid, [(8,)], "wide"),
    C("sigmoid_0d", lambda x: x.sigmoid(), np_sigmoid, [()]),
    C("tanh", lambda x: lib(x).tanh(x), np.tanh, [(3, 4)]),
    C("tanh_0d", lambda x: x.tanh(), np.tanh, [()]),
    C("square", lambda x: lib(x).square(x), np.square, [(3,)]),
    C("pow_2", lambda x: x ** 2, np.square, [(3, 4)]),
    C("pow_3", lambda x: x ** 3, lambda x: x ** 3, [(3, 4)]),
    C("pow_3_0d", lambda x: x ** 3, lambda x: x ** 3, [()]),
    C("pow_half", lambda x: x ** 0.5, np.sqrt, [(4,)], "pos"),
    C("pow_fn_frac", lambda x: lib(x).pow(x, 2.5), lambda x: x ** 2.5, [(2, 3)], "pos"),
    C("pow_method_neg", lambda x: x.pow(-1.5), lambda x: x ** -1.5, [(2, 3)], "pos"),
    C("pow_tensor_exponent", lambda x, y: x ** y, np.power, [(3, 1), (4,)], ("pos", "real")),
    C("rpow", lambda x: 2 ** x, lambda x: 2.0 ** x, [(3,)]),
    C("clamp", lambda x: x.clamp(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), [(4, 5)]),
    C("clamp_fn_min", lambda x: lib(x).clamp(x, min=0.1), lambda x: np.maximum(x, 0.1), [(3, 4)]),
    C("clamp_max_0d", lambda x: x.clamp(max=0.3), lambda x: np.minimum(x, 0.3), [()], ("uniform", -1.0, 0.2)),
    C("clip", lambda x: x.clip(-1, 1), lambda x: np.clip(x, -1, 1), [(6,)], "wide"),
    C("clamp_tensor_bounds", lambda x, lo, hi: x.clamp(lo, hi), lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
      [(3, 4), (4,), (3, 1)], ("real", ("uniform", -1.5, -0.2), ("uniform", 0.2, 1.5))),
    C("cast_long", lambda x: x.long(), lambda x: x.astype(np.int64), [(3, 4)], "wide", out="int64"),
    C("cast_double", lambda x: x.double() * 2, lambda x: x * 2, [(3,)], out="float64"),
    C("cast_int_to_float", lambda i: i.float(), lambda i: i.astype(np.float32), [(4,)], "int", out="float32"),
    C("cast_bool_to_float", lambda b: b.float(), lambda b: b.astype(np.float32), [(2, 3)], "bool", out="float32"),
    C("cast_to_bool", lambda x: x.bool(), lambda x: x != 0, [(5,)], "intfloat", out="bool"),
    C("cast_long_sum", lambda x: (x > 0).long().sum(), lambda x: (x > 0).sum(), [(3, 4)], out="int64"),
    C("logical_not", lambda b: ~b, np.logical_not, [(3, 4)], "bool", out="bool"),
    C("logical_not_fn", lambda b: lib(b).logical_not(b), np.logical_not, [()], "bool", out="bool"),

    # binary elementwise, broadcasting
    C("add", lambda a, b: a + b, np.add, [(3, 4), (3, 4)]),
    C("add_bcast", lambda a, b: a + b, np.add, [(3, 1), (4,)]),
    C("add_bcast_3d", lambda a, b: a + b, np.add, [(2, 1, 3), (4, 1)]),
    C("add_0d_left", lambda a, b: a + b, np.add, [(), (3,)]),
    C("add_0d_0d", lambda a, b: a + b, np.add, [(), ()]),
    C("add_size1_dims", lambda a, b: a + b, np.add, [(1, 3, 1), (2, 1, 4)]),
    C("add_scalar", lambda a: a + 2.0, lambda a: a + 2.0, [(3,)]),
    C("radd_scalar", lambda a: 2.0 + a, lambda a: 2.0 + a, [(3,)]),
    C("add_fn_alpha", lambda a, b: lib(a).add(a, b, alpha=2), lambda a, b: a + 2 * b, [(3, 4), (4,)]),
    C("add_int", lambda i, j: i + j, np.add, [(3,), (3,)], "int", out="int64"),
    C("add_int_float", lambda i, x: i + x, np.add, [(3,), (2, 3)], ("int", "real")),
    C("sub", lambda a, b: a - b, np.subtract, [(3, 4), (3, 4)]),
    C("sub_bcast", lambda a, b: a - b, np.subtract, [(4,), (3, 1)]),
    C("sub_0d_right", lambda a, b: a - b, np.subtract, [(2, 3), ()]),
    C("rsub_scalar", lambda a: 1 - a, lambda a: 1 - a, [(3,)]),
    C("sub_fn", lambda a, b: lib(a).sub(a, b), np.subtract, [(2, 3), (3,)]),
    C("mul", lambda a, b: a * b, np.multiply, [(3, 4), (3, 4)]),
    C("mul_bcast", lambda a, b: a * b, np.multiply, [(3, 1), (1, 4)]),
    C("mul_0d", lambda a, b: a * b, np.multiply, [(2, 3), ()]),
    C("mul_scalar", lambda a: 3.0 * a, lambda a: 3.0 * a, [(3,)]),
    C("mul_fn_same_input", lambda a: lib(a).mul(a, a), np.square, [(4,)]),
    C("div", lambda a, b: a / b, np.divide, [(3, 4), (3, 4)], ("real", "nonzero")),
    C("div_bcast", lambda a, b: a / b, np.divide, [(2, 3), (3,)], ("real", "nonzero")),
    C("div_0d", lambda a, b: a / b, np.divide, [(), (3,)], ("real", "nonzero")),
    C("rdiv_scalar", lambda a: 1 / a, lambda a: 1 / a, [(3,)], "nonzero"),
    C("div_fn", lambda a, b: lib(a).div(a, b), np.divide, [(3,), (2, 1)], ("real", "nonzero")),
    C("div_int_true", lambda i, j: i / j, np.divide, [(4,), (4,)], ("int", "nzint"), out="float32"),
    C("maximum", lambda a, b: lib(a).maximum(a, b), np.maximum, [(3, 4), (4,)]),
    C("max_binary", lambda a, b: lib(a).max(a, b), np.maximum, [(3, 1), (3, 4)]),
    C("maximum_0d", lambda a, b: lib(a).maximum(a, b), np.maximum, [(), (3,)]),
    C("minimum", lambda a, b: lib(a).minimum(a, b), np.minimum, [(2, 3), ()]),
    C("min_binary", lambda a, b: lib(a).min(a, b), np.minimum, [(2, 3), (2, 3)]),
    C("eq", lambda a, b: a == b, np.equal, [(3, 4), (4,)], "intfloat", out="bool"),
    C("ne", lambda a, b: a != b, np.not_equal, [(3, 4), (3, 1)], "intfloat", out="bool"),
    C("lt", lambda a, b: a < b, np.less, [(3, 4), (4,)], "intfloat", out="bool"),
    C("le", lambda a, b: a <= b, np.less_equal, [(3, 4), ()], "intfloat", out="bool"),
    C("gt", lambda a, b: a > b, np.greater, [(2, 3), (2, 3)], "intfloat", out="bool"),
    C("ge", lambda a, b: a >= b, np.greater_equal, [(), ()], "intfloat", out="bool"),
    C("gt_scalar", lambda a: a > 0.5, lambda a: a > 0.5, [(3, 4)], out="bool"),
    C("eq_method", lambda a, b: a.eq(b), np.equal, [(5,), (5,)], "intfloat", out="bool"),
    C("lt_fn", lambda a, b: lib(a).lt(a, b), np.less, [(2, 3), (3,)], "intfloat", out="bool"),
    C("eq_int", lambda i, j: i == j, np.equal, [(6,), (6,)], "int", out="bool"),
    C("ge_int_scalar", lambda i: i >= 0, lambda i: i >= 0, [(6,)], "int", out="bool"),
    C("logical_and", lambda a, b: a & b, np.logical_and, [(3, 4), (4,)], "bool", out="bool"),
    C("logical_or", lambda a, b: a | b, np.logical_or, [(3, 1), (3, 4)], "bool", out="bool"),
    C("logical_and_fn", lambda a, b: lib(a).logical_and(a, b), np.logical_and, [(3,), ()], "bool", out="bool"),
    C("logical_or_fn", lambda a, b: lib(a).logical_or(a, b), np.logical_or, [(3,), (3,)], "bool", out="bool"),
    C("where", lambda c, a, b: lib(a).where(c, a, b), np.where, [(3, 4), (3, 4), (3, 4)], ("bool", "real", "real")),
    C("where_bcast", lambda c, a, b: lib(a).where(c, a, b), np.where, [(3, 1), (4,), ()], ("bool", "real", "real")),
    C("where_scalar", lambda x: lib(x).where(x > 0, x, 0.0), lambda x: np.where(x > 0, x, 0.0), [(3, 4)], "nonzero"),
    C("masked_fill", lambda x, m: x.masked_fill(m, 0.5), lambda x, m: np.where(m, 0.5, x), [(3, 4), (4,)],
      ("real", "bool")),
    C("masked_fill_0d_tensor_value", lambda x, m, v: x.masked_fill(m, v), lambda x, m, v: np.where(m, v, x),
      [(2, 3), (2, 1), ()], ("real", "bool", ("fixed", "real")), grad=True),
    C("masked_fill_int", lambda i, m: i.masked_fill(m, 7), lambda i, m: np.where(m, 7, i), [(2, 3), (2, 3)],
      ("int", "bool"), out="int64"),

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
    C("softmax", lambda x: x.softmax(-1), lambda x: np_softmax(x, -1), [(3, 5)]),
    C("softmax_fn_dim0", lambda x: lib(x).softmax(x, 0), lambda x: np_softmax(x, 0), [(2, 3, 4)]),
    C("softmax_wide", lambda x: x.softmax(1), lambda x: np_softmax(x, 1), [(2, 4)], "wide"),
    C("softmax_0d", lambda x: x.softmax(0), lambda x: np.ones_like(x), [()]),
    C("log_softmax", lambda x: x.log_softmax(1), lambda x: np_log_softmax(x, 1), [(3, 5)]),
    C("log_softmax_fn_wide", lambda x: lib(x).log_softmax(x, -1), lambda x: np_log_softmax(x, -1), [(2, 4)], "wide",
      atol=1e-4),
    C("cross_entropy", cross_entropy, np_cross_entropy, [(4, 5), (4,)], ("real", ("label", 5)),
      torch=lambda x, y: _tF().cross_entropy(x, y)),

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

    # norms (positional p and dim, as torch.norm takes them), log1p (composites)
    C("norm_dim_keepdim", lambda x: x.norm(2, 1, keepdim=True), lambda x: np.linalg.norm(x, axis=1, keepdims=True),
      [(3, 4)]),
    C("norm_p1_dim0", lambda x: x.norm(1, 0), lambda x: np.abs(x).sum(0), [(3, 4)]),
    C("log1p", lambda x: lib(x).log1p(x), np.log1p, [(3,)], "pos"),

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

    # conv2d and max-pool (tiny: x[2,3,5,5])
    C("conv2d", conv2d, np_conv2d, [(2, 3, 5, 5), (4, 3, 3, 3)], torch=t_conv2d(), atol=1e-5),
    C("conv2d_stride_pad", lambda x, w: conv2d(x, w, (2, 2), (1, 1)), lambda x, w: np_conv2d(x, w, (2, 2), (1, 1)),
      [(2, 3, 5, 5), (2, 3, 3, 3)], torch=t_conv2d((2, 2), (1, 1)), atol=1e-5),
    C("conv2d_rect", lambda x, w: conv2d(x, w, (1, 2), (0, 1)), lambda x, w: np_conv2d(x, w, (1, 2), (0, 1)),
      [(1, 2, 4, 5), (3, 2, 2, 3)], torch=t_conv2d((1, 2), (0, 1)), atol=1e-5),
    C("conv2d_1x1", conv2d, np_conv2d, [(2, 3, 2, 2), (2, 3, 1, 1)], torch=t_conv2d()),
    C("conv2d_grad_input",
      lambda gy, w: apply_op("conv2d_grad_input", gy, w, input_hw=(5, 5), stride=(2, 2), padding=(1, 1)),
      lambda gy, w: np_conv2d_grad_input(gy, w, (5, 5), (2, 2), (1, 1)), [(2, 4, 3, 3), (4, 3, 3, 3)],
      torch=lambda gy, w: _torch().nn.grad.conv2d_input((2, 3, 5, 5), w, gy, (2, 2), (1, 1)), atol=1e-5),
    C("conv2d_grad_weight",
      lambda gy, x: apply_op("conv2d_grad_weight", gy, x, kernel_hw=(3, 3), stride=(1, 1), padding=(0, 0)),
      lambda gy, x: np_conv2d_grad_weight(gy, x, (3, 3), (1, 1), (0, 0)), [(2, 4, 3, 3), (2, 3, 5, 5)],
      torch=lambda gy, x: _torch().nn.grad.conv2d_weight(x, (4, 3, 3, 3), gy, (1, 1), (0, 0)), atol=1e-5),
    C("maxpool2d_argmax", pool_argmax, lambda x: np_pool_argmax(x, (2, 2), (2, 2), (0, 0)), [(2, 3, 5, 5)],
      "distinct", out="int64", torch=t_pool_argmax()),
    C("maxpool2d_argmax_overlap_pad", lambda x: pool_argmax(x, (3, 3), (2, 2), (1, 1)),
      lambda x: np_pool_argmax(x, (3, 3), (2, 2), (1, 1)), [(1, 2, 5, 5)], "distinct", out="int64",
      torch=t_pool_argmax((3, 3), (2, 2), (1, 1))),
    C("maxpool2d_argmax_ties", pool_argmax, lambda x: np_pool_argmax(x, (2, 2), (2, 2), (0, 0)), [(1, 2, 4, 4)],
      "intfloat", out="int64", torch=t_pool_argmax()),
    C("max_pool2d", max_pool, lambda x: np_pool_gather(x, np_pool_argmax(x, (2, 2), (2, 2), (0, 0))),
      [(2, 3, 5, 5)], "distinct", torch=t_max_pool()),
    C("max_pool2d_overlap_pad", lambda x: max_pool(x, (3, 3), (2, 2), (1, 1)),
      lambda x: np_pool_gather(x, np_pool_argmax(x, (3, 3), (2, 2), (1, 1))), [(1, 2, 5, 5)], "distinct",
      torch=t_max_pool((3, 3), (2, 2), (1, 1))),
    C("maxpool2d_scatter", pool_scatter,
      lambda gy, x: np_pool_scatter(gy, np_pool_argmax(x, (2, 2), (2, 2), (0, 0)), (5, 5)),
      [(2, 3, 2, 2), (2, 3, 5, 5)], ("real", ("fixed", "distinct")), torch=t_pool_scatter()),
    C("maxpool2d_scatter_overlap", lambda gy, x: pool_scatter(gy, x, (3, 3), (2, 2), (1, 1)),
      lambda gy, x: np_pool_scatter(gy, np_pool_argmax(x, (3, 3), (2, 2), (1, 1)), (5, 5)),
      [(1, 2, 3, 3), (1, 2, 5, 5)], ("real", ("fixed", "distinct")), torch=t_pool_scatter((3, 3), (2, 2), (1, 1))),
    C("cnn_block", lambda x, w: max_pool(conv2d(x, w, padding=(1, 1)).relu()), np_cnn_block,
      [(1, 2, 4, 4), (3, 2, 3, 3)], "distinct", atol=1e-5,
      torch=lambda x, w: _tF().max_pool2d(_tF().conv2d(x, w, padding=1).relu(), 2)),
    C("F_conv2d_bias", lambda x, w, b: nnf(x).conv2d(x, w, b, stride=2, padding=1),
      lambda x, w, b: np_conv2d(x, w, (2, 2), (1, 1)) + b[:, None, None], [(2, 3, 5, 5), (4, 3, 3, 3), (4,)],
      atol=1e-5),
    C("F_max_pool2d", lambda x: nnf(x).max_pool2d(x, 2),
      lambda x: np_pool_gather(x, np_pool_argmax(x, (2, 2), (2, 2), (0, 0))), [(2, 3, 5, 5)], "distinct"),
    C("F_max_pool2d_indices", lambda x: nnf(x).max_pool2d(x, 3, 2, 1, return_indices=True)[1],
      lambda x: np_pool_argmax(x, (3, 3), (2, 2), (1, 1)), [(1, 2, 5, 5)], "distinct", out="int64"),
    C("F_cross_entropy", lambda x, y: nnf(x).cross_entropy(x, y), np_cross_entropy, [(4, 5), (4,)],
      ("real", ("label", 5))),

    # special functions and float tests
    C("erf", lambda x: lib(x).erf(x), np_erf, [(3, 4)]),
    C("sin", lambda x: lib(x).sin(x), np.sin, [(3, 4)]),
    C("cos_method", lambda x: x.cos(), np.cos, [(2, 3)]),
    C("erf_method_0d", lambda x: x.erf(), np_erf, [()]),
    C("erf_wide", lambda x: x.erf(), np_erf, [(6,)], ("uniform", -4.0, 4.0)),
    C("isnan", lambda x: lib(x).isnan(x), np.isnan, [(3, 4)], "nonfinite", out="bool"),
    C("isnan_int", lambda i: i.isnan(), np.isnan, [(4,)], "int", out="bool"),
    C("isinf", lambda x: lib(x).isinf(x), np.isinf, [(3, 4)], "nonfinite", out="bool"),
    C("isinf_method_0d", lambda x: x.isinf(), np.isinf, [()], "nonfinite", out="bool"),
    C("logsumexp_dims", lambda x: lib(x).logsumexp(x, (0, 2)), lambda x: np_logsumexp(x, (0, 2)), [(2, 3, 4)]),
    C("logsumexp_neg_inf_row", lambda x: (x + lib(x).tensor([[float("-inf")], [0.0]])).logsumexp(1),
      lambda x: np.array([-np.inf, np_logsumexp(x[1], 0)]), [(2, 3)], grad=False),

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

    # source ops, one_hot, stop_gradient
    C("one_hot", one_hot, lambda y: np_one_hot(y, 4), [(5,)], ("label", 4), out="float32",
      torch=lambda y: _tF().one_hot(y, 4).float()),
    C("one_hot_2d", lambda y: one_hot(y, 3), lambda y: np_one_hot(y, 3), [(2, 3)], ("label", 3), out="float32",
      torch=lambda y: _tF().one_hot(y, 3).float()),
    C("const", lambda: apply_op("const", value=np.array([[1.5, -2.0]], dtype=np.float32)),
      lambda: np.array([[1.5, -2.0]]), [], out="float32", torch=None),
    C("full", lambda: apply_op("full", shape=(2, 3), value=0.25, dtype=F32), lambda: np.full((2, 3), 0.25), [],
      out="float32", torch=lambda: _torch().full((2, 3), 0.25)),
    C("uniform", lambda s, o: apply_op("uniform", s, o, shape=(3, 4)), lambda s, o: np_uniform(s, o, (3, 4)),
      [(), ()], (("value", 1234), ("value", 77)), out="float32", torch=None, rtol=0, atol=0),
    C("uniform_seed0", lambda s, o: apply_op("uniform", s, o, shape=(5,)), lambda s, o: np_uniform(s, o, (5,)),
      [(), ()], (("value", 0), ("value", 0)), out="float32", torch=None, rtol=0, atol=0),
    C("stop_gradient", lambda x: apply_op("stop_gradient", x), lambda x: x, [(3,)], grad=False,
      torch=lambda x: x.detach()),
    C("detach_in_expr", lambda x: x * x.detach(), lambda x: x * x, [(3,)], grad=False),
]

CASES_BY_NAME = {c.name: c for c in CASES}


# --- known graphc bugs -------------------------------------------------------------------------------
# Reported to the lead with a fix each.  The tests stay in the table as strict xfails: once the
# fix lands they XPASS, which fails the run, and the entry below is deleted.

SUITES = ("forward", "gradcheck", "grad_shape", "torch_forward", "torch_grad")
KNOWN_BUGS = {}   # case name -> {suite: reason}


def _bug(reason, suites, *names):
    for name in names:
        assert name in CASES_BY_NAME, name
        KNOWN_BUGS.setdefault(name, {}).update({suite: "graphc bug: " + reason for suite in suites})



def params(cases, suite):
    """pytest params for one suite (see SUITES), known graphc bugs marked xfail(strict=True)."""
    import pytest
    assert suite in SUITES, suite
    out = []
    for c in cases:
        reason = KNOWN_BUGS.get(c.name, {}).get(suite)
        out.append(pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=reason)] if reason else []))
    return out
