"""The torch.* functions and Tensor methods, written on top of the op table's primitives.

    graphc.exp(x), x.exp(), x.sum(1, keepdim=True), graphc.where(x > 0, x, 0.)

Every function here is a composition of `apply(primitive, ...)` calls, so eager mode, tracing
and the autodiff pass all see the same primitives.  A function in TENSOR_METHODS is installed
as a Tensor method at the bottom of this module.
"""
from __future__ import annotations

import builtins
import collections
import math
import sys
import types
import warnings

import numpy as np

from . import _context, indexing
from .errors import DTypeError, ShapeError
from .ops.movement import normalize_index
from .ops.registry import fmt_shape, normalize_axes, register_functions
from .tensor import DEFAULT_DTYPE, Size, Tensor, apply, as_tensor_like

TENSOR_METHODS = {}


def method(fn=None, *, names=None):
    """Register fn as a Tensor method too (under its own name or `names`)."""
    def register(f):
        for name in names or (f.__name__,):
            TENSOR_METHODS[name] = f
        return f
    return register(fn) if fn is not None else register


def apply_op(name, *tensors, **attrs):
    """Run the primitive `name` (VJP rules and composites use this for ops without a method)."""
    return apply(name, *tensors, **attrs)


def _t(x, like=None):
    if isinstance(x, Tensor):
        return x
    if like is not None:
        return as_tensor_like(x, like)
    return Tensor._constant(np.asarray(x, dtype=DEFAULT_DTYPE if isinstance(x, float) else None))


# --- elementwise -------------------------------------------------------------------------------

def _float(x):
    x = _t(x)
    return x if x.dtype.kind == "f" else x.to(DEFAULT_DTYPE)


@method
def exp(x):
    return apply("exp", _float(x))


@method
def log(x):
    return apply("log", _float(x))


@method
def sqrt(x):
    return apply("sqrt", _float(x))


@method
def rsqrt(x):
    return 1.0 / sqrt(x)


@method
def abs(x):
    return apply("abs", _t(x))


@method
def neg(x):
    return apply("neg", _t(x))


negative = neg


@method
def sign(x):
    return apply("sign", _t(x))


@method
def relu(x):
    return apply("relu", _t(x))


@method
def sigmoid(x):
    return apply("sigmoid", _float(x))


@method
def tanh(x):
    return apply("tanh", _float(x))


@method
def square(x):
    return x * x


@method
def erf(x):
    """The Gauss error function.   erf(tensor([0., 1.])) -> [0., 0.8427]"""
    return apply("erf", _float(x))


@method
def sin(x):
    """Elementwise sine.   sin(tensor([0.])) -> [0.]"""
    return apply("sin", _float(x))


@method
def cos(x):
    """Elementwise cosine.   cos(tensor([0.])) -> [1.]"""
    return apply("cos", _float(x))


@method
def isnan(x):
    """Where x is NaN, a bool tensor.   isnan(tensor([1., nan])) -> [False, True]"""
    return apply("isnan", _t(x))


@method
def isinf(x):
    """Where x is +-inf, a bool tensor.   isinf(tensor([1., -inf])) -> [False, True]"""
    return apply("isinf", _t(x))


@method(names=("clamp", "clip"))
def clamp(x, min=None, max=None):
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x
        if min is not None:
            out = maximum(out, _t(min, x))
        if max is not None:
            out = minimum(out, _t(max, x))
        return out
    return apply("clamp", x, min=None if min is None else float(min), max=None if max is None else float(max))


clip = clamp


@method
def pow(x, exponent):
    if isinstance(exponent, Tensor):
        return exp(log(x) * exponent)
    if exponent == 1:
        return x
    if exponent == 2:
        return x * x
    if exponent == 0.5:
        return sqrt(x)
    return apply("pow_scalar", _float(x), exponent=float(exponent))


@method
def maximum(a, b):
    return _t(a)._binary("maximum", b)


@method
def minimum(a, b):
    return _t(a)._binary("minimum", b)


def where(condition, input, other):
    """Pick input where condition holds, else other.   where(x > 0, x, 0.) -> relu(x)"""
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = _t(input)
    like = input if isinstance(input, Tensor) else other
    a, b = _t(input, like), _t(other, like)
    if a.dtype != b.dtype:
        from .tensor import result_dtype
        dtype = result_dtype(a, b)
        a, b = a.to(dtype), b.to(dtype)
    return apply("where", condition, a, b)


@method
def masked_fill(x, mask, value):
    """x with value where mask holds (mask broadcasts to x).   masked_fill(x, x < 0, 0.) -> relu(x)"""
    if not isinstance(mask, Tensor) or mask.dtype != np.bool_:
        raise DTypeError("masked_fill", f"expected a bool mask, got {getattr(mask, 'dtype', type(mask).__name__)}",
                         hint="build the mask with a comparison such as x > 0, or convert it with .bool()")
    value = _t(value, x)
    if value.ndim:
        raise ShapeError("masked_fill", f"value must be a number or a 0-d tensor, got shape {fmt_shape(value.shape)}",
                         hint="use graphc.where(mask, values, x) to fill from a tensor")
    return where(mask, value.to(x.dtype), x)


@method
def logical_and(a, b):
    return apply("logical_and", a, b)


@method
def logical_or(a, b):
    return apply("logical_or", a, b)


@method
def logical_not(a):
    return apply("logical_not", a)


for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    TENSOR_METHODS[_name] = (lambda op: lambda a, b: _t(a)._binary(op, b))(_name)
eq, ne, lt, le, gt, ge = (TENSOR_METHODS[n] for n in ("eq", "ne", "lt", "le", "gt", "ge"))
TENSOR_METHODS["greater"], TENSOR_METHODS["less"] = gt, lt


@method
def add(a, b, alpha=1):
    return _t(a) + (b * alpha if alpha != 1 else b)


@method
def sub(a, b, alpha=1):
    return _t(a) - (b * alpha if alpha != 1 else b)


@method
def mul(a, b):
    return _t(a) * b


@method
def div(a, b):
    return _t(a) / b


# --- dtype ------------------------------------------------------------------------------------

@method
def to(x, *args, dtype=None, **kwargs):
    """Convert dtype; devices other than the CPU are not graphc eager's business (a no-op)."""
    for a in args:
        if isinstance(a, (np.dtype, type)) or (isinstance(a, str) and a not in ("cpu", "cuda", "mps")
                                               and not a.startswith("cuda:")):
            try:
                dtype = np.dtype(a)
            except TypeError:
                pass
        elif isinstance(a, Tensor):
            dtype = a.dtype
    if dtype is None or np.dtype(dtype) == x.dtype:
        return x
    return apply("cast", x, dtype=np.dtype(dtype))


TENSOR_METHODS["float"] = lambda x: to(x, np.float32)
TENSOR_METHODS["double"] = lambda x: to(x, np.float64)
TENSOR_METHODS["long"] = lambda x: to(x, np.int64)
TENSOR_METHODS["int"] = lambda x: to(x, np.int32)
TENSOR_METHODS["bool"] = lambda x: to(x, np.bool_)
TENSOR_METHODS["half"] = lambda x: to(x, np.float16)
TENSOR_METHODS["type_as"] = lambda x, other: to(x, other.dtype)
TENSOR_METHODS["cpu"] = lambda x: x
TENSOR_METHODS["cuda"] = lambda x, *a, **k: x
TENSOR_METHODS["contiguous"] = lambda x, *a, **k: x
TENSOR_METHODS["type"] = lambda x, dtype=None: (f"graphc.{x.dtype}" if dtype is None else to(x, dtype))


@method
def clone(x, memory_format=None):
    if _context.tracer is not None:
        return x + _t(0, x) if x.dtype.kind != "b" else logical_and(x, x)
    out = Tensor._wrap(np.array(x._value, copy=True))
    if x.requires_grad and _context.grad_enabled:
        return x + _t(0, x)
    return out


# --- reductions ---------------------------------------------------------------------------------

def _dims(dim):
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        return tuple(int(d) for d in dim)
    return (int(dim),)


@method
def sum(x, dim=None, keepdim=False, dtype=None, axis=None):
    dim = axis if dim is None else dim
    x = _t(x)
    out = apply("sum", x, axes=normalize_axes("sum", _dims(dim), x.ndim), keepdim=bool(keepdim))
    return out if dtype is None else out.to(dtype)


@method
def mean(x, dim=None, keepdim=False, dtype=None, axis=None):
    dim = axis if dim is None else dim
    x = _float(x)
    axes = normalize_axes("mean", _dims(dim), x.ndim)
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    out = sum(x, axes, keepdim) / float(count)
    return out if dtype is None else out.to(dtype)


@method
def var(x, dim=None, unbiased=True, keepdim=False, correction=None):
    axes = normalize_axes("var", _dims(dim), x.ndim)
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    ddof = (1 if unbiased else 0) if correction is None else correction
    d = x - mean(x, axes, keepdim=True)
    # As torch: fewer elements than the correction gives inf / nan, not a silently biased value.
    return sum(d * d, axes, keepdim) / float(builtins.max(n - ddof, 0))


@method
def std(x, dim=None, unbiased=True, keepdim=False, correction=None):
    return sqrt(var(x, dim, unbiased, keepdim, correction))


# torch.return_types: named (values, indices) pairs, indexable and unpackable like a tuple.
return_types = types.SimpleNamespace(**{name: collections.namedtuple(name, ["values", "indices"])
                                        for name in ("max", "min", "sort", "topk", "cummax")})
MaxResult = return_types.max


@method
def log1p(x):
    """log(1 + x), elementwise.   log1p(tensor([0., 1.])) -> [0., 0.6931]"""
    # NOTE: a composite, so it loses digits for |x| below ~1e-7 (float32); a primitive when a program needs them.
    return log(_float(x) + 1.0)


@method
def amax(x, dim=None, keepdim=False):
    return apply("max", x, axes=normalize_axes("amax", _dims(dim), x.ndim), keepdim=bool(keepdim))


@method
def amin(x, dim=None, keepdim=False):
    return -amax(-x, dim, keepdim)


@method
def max(x, dim=None, keepdim=False):
    """max(x) -> the largest value; max(x, dim) -> (values, indices); max(a, b) -> elementwise maximum."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    if dim is None:
        return amax(x)
    axes = normalize_axes("max", (int(dim),), x.ndim)
    if not axes:                                     # a 0-d tensor is its own maximum
        return MaxResult(x, argmax(x))
    d = axes[0]
    if _context.tracer is None and not (_context.grad_enabled and x.requires_grad):
        return MaxResult(amax(x, d, keepdim), argmax(x, d, keepdim))   # no gradient to route: the cheap way
    idx = argmax(x, d)
    # NOTE: torch.max(x, dim) sends the gradient to the returned index only, where amax would split
    # it over ties; `where`, not a multiply by the one-hot, so -inf entries do not make 0 * inf = nan.
    perm = tuple(i for i in range(x.ndim) if i != d) + (d,)
    pick = apply("one_hot", idx, num_classes=x.shape[d], dtype=np.dtype(np.bool_))
    values = sum(where(pick, permute(x, perm), Tensor._constant(np.zeros((), x.dtype))), -1)
    if keepdim:
        values, idx = unsqueeze(values, d), unsqueeze(idx, d)
    return MaxResult(values, idx)


@method
def min(x, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    if dim is None:
        return amin(x)
    values, idx = max(-x, dim, keepdim)
    return return_types.min(-values, idx)


@method
def argmax(x, dim=None, keepdim=False):
    if dim is not None:
        dim = (normalize_axes("argmax", (int(dim),), x.ndim) or (None,))[0]
    return apply("argmax", x, axis=dim, keepdim=bool(keepdim))


@method
def argmin(x, dim=None, keepdim=False):
    return argmax(-x, dim, keepdim)


@method
def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x), dim)), shifted by the max so exp never overflows.   logsumexp(tensor([0., 0.]), 0) -> 0.6931"""
    x = _float(x)
    m = amax(x, dim, keepdim=True).detach()
    # A slice of all -inf (or a +inf) has max +-inf, and x - m would be nan: shift those by 0 instead.
    m = where(isinf(m), Tensor._constant(np.zeros((), m.dtype)), m)
    out = log(sum(exp(x - m), dim, keepdim=True)) + m
    return out if keepdim else squeeze(out, dim)


@method
def softmax(x, dim=None, dtype=None, _stacklevel=3):
    x = _float(x) if dtype is None else x.to(dtype)
    dim = _implicit_dim(x, dim)
    # Subtracting the (detached) max keeps exp in range; softmax is shift-invariant, so no gradient is lost.
    e = exp(x - amax(x, dim, keepdim=True).detach())
    return e / sum(e, dim, keepdim=True)


@method
def log_softmax(x, dim=None, dtype=None, _stacklevel=3):
    x = _float(x) if dtype is None else x.to(dtype)
    dim = _implicit_dim(x, dim)
    shifted = x - amax(x, dim, keepdim=True).detach()
    return shifted - log(sum(exp(shifted), dim, keepdim=True))


def _implicit_dim(x, dim):
    if dim is None:
        warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call to include dim=X "
                      "as an argument.", stacklevel=4)
        return 0 if x.ndim in (0, 1, 3) else 1
    return dim


# --- shape ------------------------------------------------------------------------------------

def _dim(op, dim, ndim, shape=None):
    """One dim, range-checked as in PyTorch (a 0-d tensor takes 0 and -1).   _dim("cat", -1, 2) -> 1"""
    n = builtins.max(ndim, 1)
    if not -n <= int(dim) < n:
        shown = "" if shape is None else f" (shape {fmt_shape(shape)})"
        raise ShapeError(op, f"dim {dim} is out of range for a tensor with {ndim} dimensions{shown}",
                         hint=f"valid dims are {-n} .. {n - 1}")
    return int(dim) % n


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, Size)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _resolve_shape(x, shape):
    shape = list(shape)
    if shape.count(-1) > 1:
        raise ShapeError("reshape", f"only one dimension can be inferred (-1), got {tuple(shape)}")
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        if known == 0 or x.numel() % known:
            raise ShapeError("reshape", f"shape {tuple(shape)} is invalid for a tensor of shape "
                                        f"{fmt_shape(x.shape)} ({x.numel()} elements)",
                             hint="the known dimensions must divide the number of elements")
        shape[shape.index(-1)] = x.numel() // known
    return tuple(shape)


@method(names=("reshape", "view"))
def reshape(x, *shape):
    shape = _resolve_shape(x, _shape_arg(shape))
    if shape == tuple(x.shape):
        return x
    return apply("reshape", x, shape=shape)


view = reshape
TENSOR_METHODS["view_as"] = TENSOR_METHODS["reshape_as"] = lambda x, other: reshape(x, tuple(other.shape))


@method
def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = _dim("flatten", start_dim, x.ndim), _dim("flatten", end_dim, x.ndim)
    shape = tuple(x.shape[:start]) + (int(np.prod(x.shape[start:end + 1])),) + tuple(x.shape[end + 1:])
    return reshape(x, shape)


@method
def unsqueeze(x, dim):
    dim = _dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, tuple(x.shape[:dim]) + (1,) + tuple(x.shape[dim:]))


@method
def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    dims = {_dim("squeeze", d, x.ndim) for d in _dims(dim)}
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1)))


@method
def permute(x, *dims):
    dims = tuple(_dim("permute", d, x.ndim) for d in _shape_arg(dims))
    if dims == tuple(range(x.ndim)):
        return x
    return apply("permute", x, perm=dims)


@method(names=("transpose", "swapaxes"))
def transpose(x, dim0, dim1):
    perm = list(range(x.ndim))
    dim0, dim1 = _dim("transpose", dim0, x.ndim), _dim("transpose", dim1, x.ndim)
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return permute(x, tuple(perm))


@method
def t(x):
    if x.ndim < 2:
        return x
    return transpose(x, 0, 1)


Tensor.T = property(lambda x: permute(x, tuple(reversed(range(x.ndim)))))
Tensor.mT = property(lambda x: transpose(x, -2, -1))


@method
def broadcast_to(x, shape):
    shape = tuple(int(s) for s in shape)
    if shape == tuple(x.shape):
        return x
    return apply("broadcast_to", x, shape=shape)


@method
def expand(x, *sizes):
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


TENSOR_METHODS["expand_as"] = lambda x, other: broadcast_to(x, tuple(other.shape))


def sum_to(g, shape):
    """Sum g over the dims that broadcasting added or stretched, to get `shape` back.   sum_to(ones(2, 3), (3,)) -> [2., 2., 2.]"""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    out = apply("sum", g, axes=axes, keepdim=True) if axes else g
    return reshape(out, shape)


def getitem(x, index):
    """x[index], basic or advanced, with PyTorch's rules (graphc/indexing.py)."""
    return indexing.getitem(x, index)


def setitem(x, index, value):
    """x with x[index] = value, out of place (Tensor.__setitem__ writes it back)."""
    adv = indexing.split_index(tuple(x.shape), index)
    if not adv.is_basic:
        return indexing.setitem_advanced(x, adv, value, _write_region)
    return _write_region(x, normalize_index(tuple(x.shape), adv.basic), value)


def _write_region(x, norm, value):
    """x with the basic-index region `norm` replaced by value (broadcast)."""
    region = apply("getitem", x, index=norm)
    value = broadcast_to(_t(value, x).to(x.dtype), tuple(region.shape))
    mask_region = Tensor._constant(np.ones(tuple(region.shape), dtype=np.bool_))
    mask = apply("getitem_grad", mask_region, index=norm, shape=tuple(x.shape))
    placed = apply("getitem_grad", value, index=norm, shape=tuple(x.shape))
    return where(mask, placed, x)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if len(tensors) == 1:
        return tensors[0]
    return apply("concat", *tensors, axis=_dim("cat", dim, tensors[0].ndim))


concat = concatenate = cat


def stack(tensors, dim=0):
    tensors = [unsqueeze(t, dim) for t in tensors]
    return cat(tensors, dim)


def _slice_dim(x, dim, start, stop):
    """x[..., start:stop, ...] along dim, one getitem.   _slice_dim(x[4,6], 1, 2, 4) -> x[:, 2:4]"""
    return apply("getitem", x, index=tuple((start, stop, 1) if d == dim else (0, n, 1) for d, n in enumerate(x.shape)))


@method
def split(tensor, split_size_or_sections, dim=0):
    """Pieces of split_size along dim (the last may be shorter), or pieces of the listed sizes.   split(x[5], 2) -> sizes 2, 2, 1"""
    if tensor.ndim == 0:
        raise ShapeError("split", "cannot split a 0-d tensor", hint="reshape it to at least 1 dimension first")
    dim = _dim("split", dim, tensor.ndim, tensor.shape)
    n = tensor.shape[dim]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n or builtins.any(s < 0 for s in sizes):
            raise ShapeError("split", f"split sizes {sizes} do not add up to the size {n} of dim {dim} "
                                      f"(a tensor of shape {fmt_shape(tensor.shape)})",
                             hint=f"give non-negative sizes that sum to {n}, or one int for equal pieces")
    else:
        size = int(split_size_or_sections)
        if size <= 0 and n > 0 or size < 0:
            raise ShapeError("split", f"split_size must be positive, got {size}",
                             hint="give the size of each piece (the last one may be shorter)")
        sizes = [builtins.min(size, n - start) for start in range(0, n, size)] if n else [0]
    pieces, start = [], 0
    for size in sizes:
        pieces.append(_slice_dim(tensor, dim, start, start + size))
        start += size
    return tuple(pieces)


@method
def chunk(input, chunks, dim=0):
    """chunks pieces of equal size ceil(n / chunks) along dim (the last may be shorter, and there may be fewer).   chunk(x[5], 2) -> sizes 3, 2"""
    if int(chunks) <= 0:
        raise ShapeError("chunk", f"chunks must be positive, got {chunks}", hint="ask for 1 or more pieces")
    if input.ndim == 0:
        raise ShapeError("chunk", "cannot chunk a 0-d tensor", hint="reshape it to at least 1 dimension first")
    n = input.shape[_dim("chunk", dim, input.ndim, input.shape)]
    return split(input, builtins.max(-(-n // int(chunks)), 1), dim)


def _index_tensor(op, index, allowed=("int64",)):
    if not isinstance(index, Tensor):
        raise DTypeError(op, f"expected the index to be a tensor, got {type(index).__name__}",
                         hint="wrap it with graphc.tensor([...])")
    if index.dtype.name not in allowed:
        raise DTypeError(op, f"expected an index of dtype {' or '.join(allowed)}, got {index.dtype}",
                         hint="convert the index with .long()")
    return index


@method
def gather(input, dim, index, *, sparse_grad=False):
    """out[i][j] = input[i][index[i][j]] for dim=1.   gather(tensor([[1., 2.], [3., 4.]]), 1, tensor([[1], [0]])) -> [[2.], [3.]]"""
    index = _index_tensor("gather", index)
    return apply("gather", input, index, axis=_dim("gather", dim, input.ndim, input.shape))


def _scatter_src(op, input, index, src, value):
    if src is None:
        src = value
    if src is None:
        raise ShapeError(op, "needs src (a tensor) or value (a number)", hint=f"call {op}(dim, index, src)")
    if not isinstance(src, Tensor):
        return full(tuple(index.shape), src, dtype=input.dtype)
    return src


@method
def scatter(input, dim, index, src=None, value=None, *, reduce=None):
    """input with src written at index along dim.   scatter(zeros(3), 0, tensor([2, 0]), tensor([5., 6.])) -> [6., 0., 5.]"""
    index = _index_tensor("scatter", index)
    src = _scatter_src("scatter", input, index, src, value)
    if reduce == "add":
        return scatter_add(input, dim, index, src)
    if reduce is not None:
        raise ShapeError("scatter", f"reduce={reduce!r} is not supported", hint="use reduce='add' or scatter_add")
    return apply("scatter", input, index, src, axis=_dim("scatter", dim, input.ndim, input.shape))


@method
def scatter_add(input, dim, index, src):
    """input with src added at index along dim, repeats accumulating.   scatter_add(zeros(2), 0, tensor([1, 1]), tensor([2., 3.])) -> [0., 5.]"""
    index = _index_tensor("scatter_add", index)
    src = _scatter_src("scatter_add", input, index, src, None)
    return apply("scatter_add", input, index, src, axis=_dim("scatter_add", dim, input.ndim, input.shape))


def _in_place(x, compute):
    """x = compute(x), written into x's storage.  Under eager autograd the tape follows the write, as
    Tensor.__setitem__ does: compute sees a snapshot of the old version, so the tape has no cycle."""
    if _context.tracer is None and _context.grad_enabled and not x._leaf_wants_grad():
        old = Tensor._wrap(x._value.copy())
        old.requires_grad, old._ctx = x.requires_grad, x._ctx
        new = compute(old)
        if new.requires_grad:
            if x._value.flags.writeable:
                np.copyto(x._value, new._value, casting="unsafe")   # views of x see the write
            else:
                x._value = new._value
            x.requires_grad, x._ctx = True, new._ctx
            return x
        return x._assign(new)
    return x._assign(compute(x))


TENSOR_METHODS["scatter_"] = lambda x, dim, index, src=None, value=None, *, reduce=None: \
    _in_place(x, lambda old: scatter(old, dim, index, src, value, reduce=reduce))
TENSOR_METHODS["scatter_add_"] = lambda x, dim, index, src: _in_place(x, lambda old: scatter_add(old, dim, index, src))


@method
def index_select(input, dim, index):
    """The slices at index along dim.   index_select(x[4,3], 0, tensor([2, 0])) -> rows 2 and 0, shape [2,3]"""
    index = _index_tensor("index_select", index, ("int64", "int32"))
    dim = _dim("index_select", dim, input.ndim, input.shape)
    if index.ndim > 1:
        raise ShapeError("index_select", f"the index must be 1-D, got shape {fmt_shape(index.shape)}",
                         hint="flatten the index, or use gather for an index of the input's rank")
    if input.ndim == 0:
        return reshape(gather(reshape(input, (1,)), 0, reshape(index.long(), (-1,))), tuple(index.shape))
    n = builtins.max(index.numel(), 0)
    if not index._is_traced():      # torch names index_select in this error; gather would say gather
        from .ops.gather import check_index_values
        check_index_values("index_select", index._value.reshape(-1), input.shape[dim], dim, tuple(input.shape))
    shape = tuple(n if d == dim else s for d, s in enumerate(input.shape))
    along = reshape(index.long(), tuple(n if d == dim else 1 for d in range(input.ndim)))
    return gather(input, dim, broadcast_to(along, shape))


@method
def repeat(input, *sizes):
    """Tile along each dim (leading sizes add dims).   repeat(tensor([1., 2.]), 2, 2) -> [[1., 2., 1., 2.], [1., 2., 1., 2.]]"""
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise ShapeError("repeat", f"{len(sizes)} repeat counts for a tensor of {input.ndim} dimensions "
                                   f"(shape {fmt_shape(input.shape)})",
                         hint="give at least one count per dimension")
    if builtins.any(r < 0 for r in sizes):
        raise ShapeError("repeat", f"repeat counts must be non-negative, got {sizes}")
    shape = (1,) * (len(sizes) - input.ndim) + tuple(input.shape)
    # (s0, s1) -> (1, s0, 1, s1) -> broadcast (r0, s0, r1, s1) -> (r0*s0, r1*s1): the copy index is the outer one.
    paired = tuple(v for s in shape for v in (1, s))
    tiled = tuple(v for r, s in zip(sizes, shape) for v in (r, s))
    return reshape(broadcast_to(reshape(input, paired), tiled), tuple(r * s for r, s in zip(sizes, shape)))


def _triangle(op, x, diagonal, lower):
    if x.ndim < 2:
        raise ShapeError(op, f"expected a tensor of 2 or more dimensions, got shape {fmt_shape(x.shape)}",
                         hint="tril/triu act on the last two dims (matrices)")
    rows, cols = x.shape[-2:]
    keep = np.tri(rows, cols, int(diagonal), dtype=np.bool_)   # the iota mask col - row <= diagonal
    keep = keep if lower else ~np.tri(rows, cols, int(diagonal) - 1, dtype=np.bool_)
    return where(Tensor._constant(keep), x, Tensor._constant(np.zeros((), x.dtype)))


@method
def tril(input, diagonal=0):
    """Keep the lower triangle (col - row <= diagonal) of the last two dims.   tril(ones(2, 2)) -> [[1., 0.], [1., 1.]]"""
    return _triangle("tril", input, diagonal, True)


@method
def triu(input, diagonal=0):
    """Keep the upper triangle (col - row >= diagonal) of the last two dims.   triu(ones(2, 2)) -> [[1., 1.], [0., 1.]]"""
    return _triangle("triu", input, diagonal, False)


@method
def cumsum(input, dim, *, dtype=None):
    """Running sum along dim (ints sum in int64).   cumsum(tensor([1., 2., 3.]), 0) -> [1., 3., 6.]"""
    x = _t(input) if dtype is None else _t(input).to(dtype)
    return apply("cumsum", x, axis=_dim("cumsum", dim, x.ndim, x.shape))


# --- sorting ------------------------------------------------------------------------------------

@method
def argsort(input, dim=-1, descending=False, stable=False):
    """Indices that sort along dim (always stable).   argsort(tensor([3., 1., 2.])) -> [1, 2, 0]"""
    return apply("argsort", input, axis=_dim("argsort", dim, input.ndim, input.shape), descending=bool(descending))


@method
def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along dim.   sort(tensor([3., 1.])) -> sort(values=[1., 3.], indices=[1, 0])"""
    if input.ndim == 0:
        return return_types.sort(input, zeros((), dtype=np.int64))
    dim = _dim("sort", dim, input.ndim, input.shape)
    idx = argsort(input, dim, descending)
    return return_types.sort(gather(input, dim, idx), idx)


@method
def topk(input, k, dim=-1, largest=True, sorted=True):
    """The k largest (or smallest) along dim, sorted.   topk(tensor([1., 3., 2.]), 2) -> topk(values=[3., 2.], indices=[1, 2])"""
    if input.ndim == 0:
        if int(k) not in (0, 1):
            raise ShapeError("topk", f"k ({k}) is out of range for a 0-d tensor", hint="k must be 0 or 1")
        return return_types.topk(input, zeros((), dtype=np.int64))
    dim = _dim("topk", dim, input.ndim, input.shape)
    n = input.shape[dim]
    if not 0 <= int(k) <= n:
        raise ShapeError("topk", f"k ({k}) is out of range for dimension {dim} of size {n} "
                                 f"(a tensor of shape {fmt_shape(input.shape)})", hint=f"k must lie in 0 .. {n}")
    idx = _slice_dim(argsort(input, dim, descending=largest), dim, 0, int(k))
    return return_types.topk(gather(input, dim, idx), idx)


# --- norms ----------------------------------------------------------------------------------------

@method
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The p-norm over dim (all elements when dim is None); p = 'fro', a number, inf or -inf.   norm(tensor([3., 4.])) -> 5."""
    x = _float(input) if dtype is None else _t(input).to(dtype)
    if isinstance(p, str) and p != "fro":
        raise ShapeError("norm", f"p={p!r} is not supported", hint="use p='fro', a number, inf or -inf")
    if p == "fro" or p == 2:
        # NOTE: at a zero vector torch's gradient is 0; sqrt's would be g / 0 -> nan, so zeros take sqrt(1) in a
        # branch that `where` then drops.
        squares = sum(x * x, dim, keepdim)
        zero = squares == 0
        return where(zero, 0.0, sqrt(where(zero, 1.0, squares)))
    a = abs(x)
    if p == math.inf:
        return amax(a, dim, keepdim)
    if p == -math.inf:
        return amin(a, dim, keepdim)
    if p == 0:
        return sum((x != 0).to(x.dtype), dim, keepdim)
    if p == 1:
        return sum(a, dim, keepdim)
    return pow(sum(pow(a, p), dim, keepdim), 1.0 / p)


# --- linear algebra -------------------------------------------------------------------------------

@method
def matmul(a, b):
    """a @ b with numpy's rules: 1-D operands are lifted to matrices and the added dim removed again."""
    a, b = _t(a), _t(b, a)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("matmul", f"both operands need at least one dimension, got {fmt_shape(a.shape)} @ "
                                   f"{fmt_shape(b.shape)}", hint="use * to scale by a scalar")
    if a.dtype != b.dtype:
        raise DTypeError("matmul", f"expected both operands to have the same dtype, got {a.dtype} @ {b.dtype}",
                         hint="convert one of them with .to(dtype) / .float()")
    a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    out = apply("matmul", a2, b2)
    if a.ndim == 1:
        out = squeeze(out, -2)
    if b.ndim == 1:
        out = squeeze(out, -1)
    return out


@method
def mm(input, mat2):
    """The product of two matrices (2-D only, as torch.mm).   mm(x[2,3], y[3,4]) -> [2,4]"""
    if input.ndim != 2 or mat2.ndim != 2:
        raise ShapeError("mm", f"expected two matrices, got {fmt_shape(input.shape)} @ {fmt_shape(mat2.shape)}",
                         hint="use matmul (or @) for batched or 1-D operands")
    return matmul(input, mat2)


@method
def bmm(input, mat2):
    """Batched matrix product of two 3-D tensors with the same batch size.   bmm(x[5,2,3], y[5,3,4]) -> [5,2,4]"""
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise ShapeError("bmm", f"expected two 3-D tensors with the same batch size, got {fmt_shape(input.shape)} @ "
                                f"{fmt_shape(mat2.shape)}",
                         hint="use matmul (or @), which broadcasts batch dims and takes any rank")
    return matmul(input, mat2)


def dot(a, b):
    return sum(a * b)


# --- einsum ---------------------------------------------------------------------------------------
# Written on permute/reshape/matmul/sum: each operand first takes its diagonals (a repeated
# subscript) and sums the subscripts nobody else uses; then operands are contracted left to right,
# each pair as one (batch, left, contracted) @ (batch, contracted, right) matmul.  Ellipsis dims are
# labelled 0, 1, ... aligned from the right, and broadcast like any size-1 dim.

def einsum(equation, *operands):
    """Einstein summation.   einsum('ij,jk->ik', a, b) == a @ b;  einsum('bij->bji', x);  einsum('...ii->...i', x)"""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = [_t(o) for o in operands]
    terms, out = _einsum_parse(equation, operands)
    if len({o.dtype for o in operands}) > 1:
        raise DTypeError("einsum", f"operands have different dtypes: {', '.join(str(o.dtype) for o in operands)}",
                         hint="convert them to one dtype with .to(dtype) / .float()")
    _einsum_check_sizes(equation, terms, operands)
    ops = []
    for i, (x, labels) in enumerate(zip(operands, terms)):
        x, labels = _einsum_diagonals(x, labels)
        others = set(out).union(*[set(t) for j, t in enumerate(terms) if j != i])
        alone = [d for d, l in enumerate(labels) if l not in others]
        if alone:
            x = sum(x, tuple(alone))
            labels = [l for l in labels if l in others]
        ops.append((x, labels))
    x, labels = ops[0]
    for i in range(1, len(ops)):
        keep = set(out).union(*[set(l) for _, l in ops[i + 1:]])
        x, labels = _einsum_pair(x, labels, *ops[i], keep)
    return permute(x, tuple(labels.index(l) for l in out)) if labels else x


def _einsum_parse(equation, operands):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    raw = lhs.split(",")
    if len(raw) != len(operands):
        raise ShapeError("einsum", f"the equation {equation!r} has {len(raw)} operand(s) but {len(operands)} "
                                   f"tensor(s) were given", hint="give one comma-separated term per tensor")
    for term in raw + [rhs]:
        if not builtins.all(c.isascii() and c.isalpha() for c in term.replace("...", "")):
            raise ShapeError("einsum", f"invalid subscripts {term!r} in {equation!r}",
                             hint="subscripts are letters a-z / A-Z, with at most one '...' per term")
    n_ell = []
    for term, x in zip(raw, operands):
        named = len(term.replace("...", ""))
        if "..." in term and named <= x.ndim or "..." not in term and named == x.ndim:
            n_ell.append(x.ndim - named)
            continue
        raise ShapeError("einsum", f"the subscripts {term!r} name {named} dimension(s) but the operand has shape "
                                   f"{fmt_shape(x.shape)}", hint="one letter per dimension, or '...' for the rest")
    width = builtins.max(n_ell, default=0)

    def labels(term, k):
        head, _, tail = term.partition("...")
        return list(head) + list(range(width - k, width)) + list(tail) if "..." in term else list(term)
    terms = [labels(t, k) for t, k in zip(raw, n_ell)]
    if arrow:
        out = labels(rhs, width) if "..." in rhs else list(rhs)
        seen = [l for t in terms for l in t]
        bad = [l for l in out if isinstance(l, str) and l not in seen]
        if bad or len(set(out)) != len(out):
            raise ShapeError("einsum", f"the output subscripts {rhs!r} of {equation!r} must be distinct and appear "
                                       f"in the inputs", hint="name each output dimension once, from the inputs")
    else:   # implicit output: the ellipsis dims, then the letters used once, in alphabetical order
        counts = collections.Counter(l for t in terms for l in t if isinstance(l, str))
        out = list(range(width)) + sorted(l for l, c in counts.items() if c == 1)
    return terms, out


def _einsum_check_sizes(equation, terms, operands):
    sizes = {}
    for labels, x in zip(terms, operands):
        for l, n in zip(labels, x.shape):
            if sizes.get(l, 1) == 1:
                sizes[l] = n
            elif n not in (1, sizes[l]):
                name = f"'{l}'" if isinstance(l, str) else "'...'"
                raise ShapeError("einsum", f"subscript {name} has size {sizes[l]} and {n} in {equation!r} with operands "
                                           f"{', '.join(fmt_shape(o.shape) for o in operands)}",
                                 hint="dimensions that share a subscript must have equal sizes (or size 1)")


def _einsum_diagonals(x, labels):
    """Take the diagonal for each repeated subscript: 'ii' -> 'i' (a mask and a sum)."""
    labels = list(labels)
    while len(set(labels)) != len(labels):
        l = next(l for l in labels if labels.count(l) > 1)
        p = labels.index(l)
        q = labels.index(l, p + 1)
        n = x.shape[p]
        shape = [1] * x.ndim
        shape[p] = shape[q] = n
        eye = Tensor._constant(np.eye(n, dtype=np.bool_).reshape(shape))
        x = sum(where(eye, x, Tensor._constant(np.zeros((), x.dtype))), q)
        del labels[q]
    return x, labels


def _einsum_pair(a, la, b, lb, keep):
    """Contract two operands: the shared subscripts nobody needs later are summed by a matmul, whose
    batch dims broadcast size-1 (ellipsis) dims; a contracted size-1 dim is broadcast first."""
    batch = [l for l in la if l in lb and l in keep]
    contract = [l for l in la if l in lb and l not in keep]
    left = [l for l in la if l not in lb]
    right = [l for l in lb if l not in la]
    sa, sb = dict(zip(la, a.shape)), dict(zip(lb, b.shape))
    for l in contract:
        if sa[l] != sb[l]:
            sa[l] = sb[l] = builtins.max(sa[l], sb[l])
    a = broadcast_to(a, tuple(sa[l] for l in la))
    b = broadcast_to(b, tuple(sb[l] for l in lb))

    def n(sizes, ls):
        return int(np.prod([sizes[l] for l in ls], dtype=np.int64))
    a = reshape(permute(a, tuple(la.index(l) for l in batch + left + contract)),
                tuple(sa[l] for l in batch) + (n(sa, left), n(sa, contract)))
    b = reshape(permute(b, tuple(lb.index(l) for l in batch + contract + right)),
                tuple(sb[l] for l in batch) + (n(sb, contract), n(sb, right)))
    if a.dtype.kind == "f":
        out = matmul(a, b)
    else:   # the matmul primitive is float-only: integer einsum multiplies and sums
        out = sum(unsqueeze(a, -1) * unsqueeze(b, -3), -2)
    shape = tuple(out.shape[:len(batch)]) + tuple(sa[l] for l in left) + tuple(sb[l] for l in right)
    return reshape(out, shape), batch + left + right


# --- creation ---------------------------------------------------------------------------------

def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor from data (copied).   graphc.tensor([1, 2]) -> int64; graphc.tensor([1.]) -> float32"""
    if isinstance(data, Tensor):
        data = data._need_value("graphc.tensor(tensor)", "use .clone() or .detach() instead")
    arr = np.array(data, dtype=None if dtype is None else np.dtype(dtype))
    if dtype is None:
        if arr.dtype == np.float64 and not (isinstance(data, np.ndarray) and data.dtype == np.float64):
            arr = arr.astype(DEFAULT_DTYPE)
        elif arr.dtype.kind in "iu" and arr.dtype != np.int64 and not isinstance(data, np.ndarray):
            arr = arr.astype(np.int64)
    return _fresh(arr, requires_grad)


def _fresh(arr, requires_grad=False):
    if _context.tracer is not None:
        t = apply("const", value=arr) if arr.size > 1 or arr.dtype.kind != "f" else \
            apply("full", shape=tuple(arr.shape), value=float(arr.reshape(-1)[0]) if arr.size else 0.0,
                  dtype=arr.dtype)
    else:
        t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    return tensor(data, dtype=dtype)


def from_numpy(array):
    """A tensor sharing memory with the ndarray.   from_numpy(np.zeros(2)) -> float64 tensor"""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return Tensor._wrap(array)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    size = _shape_arg(size if isinstance(size, (tuple, list, Size)) else (size,))
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, bool) else \
            (np.int64 if isinstance(fill_value, (int, np.integer)) else DEFAULT_DTYPE)
    dtype = np.dtype(dtype)
    if _context.tracer is not None:
        t = apply("full", shape=size, value=fill_value, dtype=dtype)
    else:
        t = Tensor._wrap(np.full(size, fill_value, dtype=dtype))
    return t.requires_grad_(True) if requires_grad else t


def zeros(*size, dtype=None, requires_grad=False, device=None):
    return full(_shape_arg(size), 0, dtype=dtype or DEFAULT_DTYPE, requires_grad=requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):
    return full(_shape_arg(size), 1, dtype=dtype or DEFAULT_DTYPE, requires_grad=requires_grad)


empty = zeros


def zeros_like(x, dtype=None, requires_grad=False, device=None):
    return full(tuple(x.shape), 0, dtype=dtype or x.dtype, requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad=False, device=None):
    return full(tuple(x.shape), 1, dtype=dtype or x.dtype, requires_grad=requires_grad)


empty_like = zeros_like


def full_like(x, fill_value, dtype=None, requires_grad=False, device=None):
    return full(tuple(x.shape), fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    if end is None:
        start, end = 0, start
    floats = builtins.any(isinstance(v, float) for v in (start, end, step))
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(DEFAULT_DTYPE if floats else np.int64)
    return _fresh(np.arange(start, end, step, dtype=dtype), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    return _fresh(np.linspace(start, end, steps, dtype=np.dtype(dtype or DEFAULT_DTYPE)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    return _fresh(np.eye(n, m, dtype=np.dtype(dtype or DEFAULT_DTYPE)), requires_grad)


def numel(x):
    return x.numel()


def is_tensor(x):
    return isinstance(x, Tensor)


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=False):
    return bool(np.allclose(_t(a).numpy(), _t(b).numpy(), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(a, b):
    return tuple(a.shape) == tuple(b.shape) and bool(np.array_equal(a.numpy(), b.numpy()))


TENSOR_METHODS["allclose"] = allclose
TENSOR_METHODS["equal"] = equal


for _name, _fn in TENSOR_METHODS.items():
    setattr(Tensor, _name, _fn)


# VJP rules in the op table build their gradients from these functions (see ops.registry.fn).
register_functions(sys.modules[__name__])
