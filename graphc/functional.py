"""The torch.* functions and Tensor methods, written on top of the op table's primitives.

    graphc.exp(x), x.exp(), x.sum(1, keepdim=True), graphc.where(x > 0, x, 0.)

Every function here is a composition of `apply(primitive, ...)` calls, so eager mode, tracing
and the autodiff pass all see the same primitives.  A function in TENSOR_METHODS is installed
as a Tensor method at the bottom of this module.
"""
from __future__ import annotations

import builtins
import sys
import collections
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
    return where(mask, _t(value, x), x)


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
    return sum(d * d, axes, keepdim) / float(builtins.max(n - ddof, 1))


@method
def std(x, dim=None, unbiased=True, keepdim=False, correction=None):
    return sqrt(var(x, dim, unbiased, keepdim, correction))


@method
def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """The p-norm over `dim` (all elements by default), as torch.norm.   norm(tensor([3., 4.])) -> 5."""
    x = _float(x) if dtype is None else _t(x).to(dtype)
    if p in ("fro", 2, 2.0):
        return sqrt(sum(x * x, dim, keepdim))
    if p in (1, 1.0):
        return sum(abs(x), dim, keepdim)
    if p in (float("inf"), "inf"):
        return amax(abs(x), dim, keepdim)
    if isinstance(p, (int, float)) and p > 0:
        return pow(sum(pow(abs(x), p), dim, keepdim), 1.0 / p)
    raise ValueError(f"norm: p={p!r} is not supported; use 'fro', a positive number or inf")


@method
def log1p(x):
    """log(1 + x), elementwise.   log1p(tensor([0., 1.])) -> [0., 0.6931]"""
    # NOTE: a composite, so it loses digits for |x| below ~1e-7 (float32); a primitive when a program needs them.
    return log(_float(x) + 1.0)


MaxResult = collections.namedtuple("max", ["values", "indices"])


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
    return MaxResult(-values, idx)


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
    m = amax(x, dim, keepdim=True).detach()
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

def _dim(op, dim, ndim):
    """One dim, range-checked as in PyTorch (a 0-d tensor takes 0 and -1).   _dim("cat", -1, 2) -> 1"""
    n = builtins.max(ndim, 1)
    if not -n <= int(dim) < n:
        raise ShapeError(op, f"dim {dim} is out of range for a tensor with {ndim} dimensions",
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


# --- linear algebra -------------------------------------------------------------------------------

@method(names=("matmul", "mm", "bmm"))
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


mm = bmm = matmul


def dot(a, b):
    return sum(a * b)


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
