"""The op table: every primitive declared once, with all its facets side by side.

    @defop("exp", kind=ELEMENTWISE, infer=unary_float)
    class Exp:
        '''Elementwise e**x.   exp([0., 1.]) -> [1., 2.71828]'''
        impl = staticmethod(np.exp)
        scalar = "math.exp({0})"
        def vjp(g, ans, x):
            return (g * ans,)

Eager mode, the tracer, the autodiff pass, the interpreter and the code generators all read
``OPS``; nothing else holds an op's semantics.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import DTypeError, ShapeError

# Kernel kinds: they drive fusion and lowering in the backends.
ELEMENTWISE = "elementwise"
REDUCE = "reduce"
MATMUL = "matmul"
CONV = "conv"
MOVEMENT = "movement"
SOURCE = "source"      # produces a value from attributes alone (constants, fills, random bits)
OPAQUE = "opaque"      # anything a backend lowers by hand
AUTODIFF = "autodiff"  # a gradient request; the autodiff pass replaces it

KINDS = (ELEMENTWISE, REDUCE, MATMUL, CONV, MOVEMENT, SOURCE, OPAQUE, AUTODIFF)


@dataclass
class OpDef:
    """One primitive: name, kernel kind, shape/dtype rule, numpy impl, VJP rule, scalar template."""

    name: str
    kind: str
    infer: Callable                      # infer(*types, **attrs) -> (shape, dtype); raises ShapeError/DTypeError
    impl: Optional[Callable]             # impl(*ndarrays, **attrs) -> ndarray
    vjp: Optional[Callable] = None       # vjp(g, ans, *inputs, **attrs) -> tuple of grads (Tensor or None)
    nondiff: bool = False                # no gradient flows through (comparisons, argmax, one_hot...)
    scalar: object = None                # per-element template: "{0}" ... for inputs, attrs by name; or a
    #                                      function scalar(c, args, out_dtype, **attrs) -> text, where c
    #                                      writes typed literals and casts (c.literal, c.cast)
    attrs: tuple = ()                    # attribute names, in the order the printer writes them
    effect: bool = False                 # observable beyond its result (collectives): DCE keeps it, CSE never merges
    fuse: str = ""                       # how fusion groups it: "loop" (joins an elementwise loop nest: it reads
    #                                      its inputs at a broadcast of the output index), "view" (aliases its
    #                                      input's storage), or "" (a kernel of its own)
    source_file: str = ""
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def __repr__(self):
        return f"<op {self.name} ({self.kind})>"


OPS: dict[str, OpDef] = {}


def defop(name, *, kind, infer, nondiff=False, attrs=()):
    """Class decorator that turns an op declaration into an OpDef in OPS."""
    assert kind in KINDS, kind

    def register(cls):
        if name in OPS:
            raise ValueError(f"op {name!r} declared twice ({OPS[name].source_file} and {inspect.getfile(cls)})")
        extra = {k: v for k, v in vars(cls).items()
                 if not k.startswith("__") and k not in ("impl", "vjp", "scalar", "effect", "fuse")}
        op = OpDef(
            name=name, kind=kind, infer=infer,
            impl=getattr(cls, "impl", None),
            vjp=getattr(cls, "vjp", None),
            nondiff=nondiff, scalar=getattr(cls, "scalar", None), attrs=tuple(attrs),
            effect=bool(getattr(cls, "effect", False)),
            fuse=getattr(cls, "fuse", "loop" if kind == ELEMENTWISE else ""),
            source_file=inspect.getfile(cls), doc=(cls.__doc__ or "").strip(), extra=extra)
        if op.vjp is not None:
            # A rule that takes `needs` is told which inputs want a gradient, so that eager mode skips
            # the expensive ones nobody asked for (matmul's and conv's input gradients).
            op.extra["vjp_needs"] = "needs" in inspect.signature(op.vjp).parameters
        if not nondiff and op.vjp is None and kind not in (SOURCE, AUTODIFF):
            raise ValueError(f"op {name!r} has no vjp: declare it nondiff=True or add a vjp")
        OPS[name] = op
        return op

    return register


def get_op(name):
    """OPS[name], with an error that lists what exists."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no op named {name!r}; the op table has: {', '.join(sorted(OPS))}") from None


class FunctionLayer:
    """The composite functions (graphc.functional), as VJP rules see them: `fn.where(m, g, 0.0)`.

    The function layer sits above this table and registers itself here when it is imported
    (`register_functions`), so a VJP rule can build gradients from graphc functions while the
    table never imports the layer above it.
    """

    _module = None

    def __getattr__(self, name):
        if FunctionLayer._module is None:
            raise RuntimeError("graphc.functional is not loaded yet: import graphc before running a VJP rule")
        return getattr(FunctionLayer._module, name)


fn = FunctionLayer()


def register_functions(module):
    """Called once by graphc.functional: VJP rules reach it through `fn`."""
    FunctionLayer._module = module


def run_vjp(op, g, ans, inputs, attrs):
    """One op's input gradients, each summed back to its input's shape (None where no grad flows).

        run_vjp(OPS["mul"], g, ans, [x, w], {}) -> [g * w, g * x]

    Eager autograd calls it on Tensors; the autodiff pass on proxy Tensors whose values are IR values,
    so the very same rule computes in one and appends graph nodes in the other.
    """
    if op.extra.get("vjp_needs"):
        grads = op.vjp(g, ans, *inputs, needs=tuple(inp.requires_grad for inp in inputs), **attrs)
    else:
        grads = op.vjp(g, ans, *inputs, **attrs)
    out = []
    for inp, gi in zip(inputs, grads):
        if gi is None or not inp.requires_grad:
            out.append(None)
            continue
        if tuple(gi.shape) != tuple(inp.shape):
            gi = fn.sum_to(gi, tuple(inp.shape))
        out.append(gi)
    return out


# --- shape and dtype rules shared by many ops -------------------------------------------------

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16))


def fmt_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast_shapes(op, *shapes):
    """numpy's broadcasting rule, with graphc's error.  broadcast_shapes('add', (3,1), (4,)) -> (3, 4)"""
    if len(shapes) == 2 and shapes[0] == shapes[1]:   # the common case, on every eager op: skip the axis walk
        return tuple(shapes[0])
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        dims = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(dims) > 1:
            shown = " and ".join(fmt_shape(s) for s in shapes)
            raise ShapeError(op, f"shapes {shown} cannot be broadcast together "
                                 f"(dimension {axis}: {' vs '.join(str(s[axis]) for s in shapes if len(s) >= -axis)})",
                             hint="broadcasting matches trailing dimensions; each pair must be equal or 1. "
                                  "Use reshape/unsqueeze to line them up")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def require_float(op, *types):
    for t in types:
        if t.dtype not in FLOAT_DTYPES:
            raise DTypeError(op, f"expected a floating-point tensor, got {t.dtype}",
                             hint="convert with .float() first")


def same_dtype(op, *types):
    if len(types) == 2 and types[0].dtype == types[1].dtype:   # fast path for eager dispatch
        return types[0].dtype
    dtypes = {t.dtype for t in types}
    if len(dtypes) > 1:
        raise DTypeError(op, f"operands have different dtypes: {', '.join(str(t.dtype) for t in types)}",
                         hint="convert one operand with .to(dtype) / .float() / .long()")
    return types[0].dtype


def unary_same(op):
    def infer(x, **attrs):
        return tuple(x.shape), x.dtype
    return infer


def unary_float(op):
    def infer(x, **attrs):
        require_float(op, x)
        return tuple(x.shape), x.dtype
    return infer


def binary_same(op):
    def infer(a, b):
        return broadcast_shapes(op, tuple(a.shape), tuple(b.shape)), same_dtype(op, a, b)
    return infer


def binary_bool(op):
    def infer(a, b):
        same_dtype(op, a, b)
        return broadcast_shapes(op, tuple(a.shape), tuple(b.shape)), np.dtype(np.bool_)
    return infer


def normalize_axes(op, axes, ndim):
    """Turn dim/axes (int, tuple or None) into a sorted tuple of non-negative axes."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ShapeError(op, f"dim {a} is out of range for a tensor with {ndim} dimensions",
                             hint=f"valid dims are {-max(ndim, 1)} .. {max(ndim, 1) - 1}")
        if ndim:   # a 0-d tensor takes dim 0 / -1, as in PyTorch, and reduces over nothing
            out.append(a % ndim)
    return tuple(sorted(set(out)))
