"""Algebraic simplification: small local rewrites, registered per op, run to a fixpoint by one driver.

    graph f(%x: f32[2,3] data) {                                graph f(%x: f32[2,3] data) {
      %0: f32[] = full {dtype=f32, shape=(), value=1.0}           %0: f32[3,2] = permute %x {perm=(1, 0)}
      %1: f32[2,3] = mul %x, %0                                   return %0
      %2: f32[6] = reshape %1 {shape=(6,)}            ->        }
      %3: f32[2,3] = reshape %2 {shape=(2, 3)}
      %4: f32[3,2] = permute %3 {perm=(1, 0)}
      return %4
    }

A rewrite is `fn(node, rw) -> Value or None`: it looks at one node (and the nodes feeding it) and
returns the value that can stand for the node's result, emitting new nodes through `rw.emit`
where it needs them. Every replacement keeps the node's shape and dtype exactly (the driver
checks it), so the verifier passes after. Nodes that became dead are removed at the end.

The rules, where "0" and "1" are a `full` node of that value or a `const` whose elements all are:

    x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1      -> x  (broadcast_to(x) when the literal is bigger)
    x * 0, 0 * x                                  -> full 0, for integer and bool x only: with
                                                     floats nan * 0 and inf * 0 are nan, so it stays
    neg(neg(x))                                   -> x
    reshape(reshape(x)), reshape to x's shape     -> one reshape / x
    permute(permute(x)), identity permute         -> one permute / x
    broadcast_to(broadcast_to(x)), to x's shape   -> one broadcast_to / x
    cast to x's dtype                             -> x
    stop_gradient(x)                              -> x
    sum / max over no axes, or only size-1 axes   -> x  (a reshape when keepdim drops dims)
    where(c, x, x), where(true, x, y), where(false, y, x)  -> x
    permute(matmul(a, b), (1, 0)), 2-D, the permute the product's only reader
                                                  -> matmul(permute(b), permute(a)): the product comes out
                                                     in the layout its readers walk (a weight gradient
                                                     read row-major by the optimizer update), and BLAS
                                                     reads the transposed operands through a flag

A value that a `grad` node differentiates with respect to is left alone, and never read as a
literal: `x * c` with c = ones(3, requires_grad=True) must keep c in the graph.

NOTE: dropping stop_gradient is only right once gradients exist: run simplify AFTER autodiff,
never before it (before, it would let gradients flow where the user cut them).
NOTE: x + 0 -> x is what XLA's simplifier does too; strictly, (-0.0) + 0.0 is +0.0, so the rewrite
may keep a zero's sign that the addition would have cleared. No other value changes.
"""
from __future__ import annotations

import numpy as np

from ..errors import IRError
from ..ir.graph import Node, Value, type_str
from ..ops import OPS
from ..ops.registry import broadcast_shapes, normalize_axes
from .dce import dce, grad_wrt, replace_uses, resolve
from .fold import literal_value

__all__ = ["simplify", "rewrite", "REWRITES"]

REWRITES: dict[str, list] = {}
MAX_SWEEPS = 100


def rewrite(*ops):
    """Register `fn(node, rw) -> Value | None` as a local rewrite of nodes of these ops."""
    def register(fn):
        for op in ops:
            REWRITES.setdefault(op, []).append(fn)
        return fn
    return register


class Rewriter:
    """What a rewrite may do besides looking: emit new nodes in front of the node it replaces."""

    def __init__(self, node, variables=frozenset(), readers=None):
        self.node = node
        self.variables = variables      # ids of grad wrt values: never read as literals
        self.readers = readers or {}    # id(value) -> how many nodes, outputs and updates read it (at sweep start)
        self.emitted: list[Node] = []

    def holds(self, value, number):
        """True when every element of `value` is a literal equal to `number` (see fold.literal_value)."""
        if id(value) in self.variables:
            return False
        lit = literal_value(value)
        return lit is not None and bool(lit == number)

    def emit(self, op, inputs, **attrs):
        shape, dtype = OPS[op].infer(*inputs, **attrs)
        out = Value(shape, dtype)
        node = Node(op, inputs, attrs, out, self.node.loc)
        out.node = node
        self.emitted.append(node)
        return out

    def like_out(self, x):
        """x itself when it has the node's type, broadcast_to(x) when it only needs to grow, else None."""
        out = self.node.out
        if x.dtype != out.dtype:
            return None
        if x.shape == out.shape:
            return x
        try:
            if broadcast_shapes("broadcast_to", x.shape, out.shape) != out.shape:
                return None
        except Exception:
            return None
        return self.emit("broadcast_to", [x], shape=out.shape)


def simplify(graph):
    """Apply the registered rewrites until none fires, then drop dead nodes (see module doc)."""
    for _ in range(MAX_SWEEPS):
        replace = {}
        kept = []
        variables = grad_wrt(graph)     # a grad's wrt value must stay itself
        graph = dce(graph)              # count live readers only: a rule that needs a sole reader
        readers = _readers(graph)       # must see what a second simplify would (a fixpoint)
        for node in graph.nodes:
            node.inputs = [resolve(v, replace) for v in node.inputs]
            for fn in (() if id(node.out) in variables else REWRITES.get(node.op, ())):
                rw = Rewriter(node, variables, readers)
                new = fn(node, rw)
                if new is None:
                    continue
                if (new.shape, new.dtype) != (node.out.shape, node.out.dtype):
                    raise IRError("simplify", f"rewrite {fn.__name__} replaced a {node.out.type_str()} "
                                              f"{node.op} by a {type_str(new.shape, new.dtype)} value", loc=())
                kept.extend(rw.emitted)
                replace[id(node.out)] = new
                break
            else:
                kept.append(node)
        replace_uses(graph, replace)
        graph.nodes = kept
        if not replace:
            break
    return dce(graph)


# --- the rewrites ----------------------------------------------------------------------------------

def _readers(graph):
    counts = {}
    for v in [v for n in graph.nodes for v in n.inputs] + list(graph.outputs) + [v for _, v in graph.updates]:
        counts[id(v)] = counts.get(id(v), 0) + 1
    return counts


def _producer(value, op):
    return value.node if value.node is not None and value.node.op == op else None


@rewrite("add")
def add_zero(node, rw):
    a, b = node.inputs
    if rw.holds(b, 0):
        return rw.like_out(a)
    if rw.holds(a, 0):
        return rw.like_out(b)
    return None


@rewrite("sub")
def sub_zero(node, rw):
    a, b = node.inputs
    return rw.like_out(a) if rw.holds(b, 0) else None


@rewrite("mul")
def mul_one(node, rw):
    a, b = node.inputs
    if rw.holds(b, 1):
        return rw.like_out(a)
    if rw.holds(a, 1):
        return rw.like_out(b)
    return None


@rewrite("mul")
def mul_zero_int(node, rw):
    # Integers and bools only: for floats nan * 0 and inf * 0 are nan, not 0.
    a, b = node.inputs
    if node.out.dtype.kind in "biu" and (rw.holds(a, 0) or rw.holds(b, 0)):
        zero = np.zeros((), node.out.dtype).item()
        return rw.emit("full", [], shape=node.out.shape, value=zero, dtype=node.out.dtype)
    return None


@rewrite("div")
def div_one(node, rw):
    a, b = node.inputs
    return rw.like_out(a) if rw.holds(b, 1) else None


@rewrite("neg")
def neg_neg(node, rw):
    inner = _producer(node.inputs[0], "neg")
    return inner.inputs[0] if inner is not None else None


@rewrite("reshape")
def reshape_reshape(node, rw):
    (x,) = node.inputs
    shape = tuple(node.attrs["shape"])
    if x.shape == shape:
        return x
    inner = _producer(x, "reshape")
    if inner is not None:
        y = inner.inputs[0]
        return y if y.shape == shape else rw.emit("reshape", [y], shape=shape)
    return None


@rewrite("permute")
def permute_permute(node, rw):
    (x,) = node.inputs
    perm = tuple(int(p) for p in node.attrs["perm"])
    if perm == tuple(range(len(perm))):
        return x
    inner = _producer(x, "permute")
    if inner is not None:
        first = tuple(int(p) for p in inner.attrs["perm"])
        composed = tuple(first[p] for p in perm)      # out[j] = x[perm[j]] = y[first[perm[j]]]
        y = inner.inputs[0]
        return y if composed == tuple(range(len(composed))) else rw.emit("permute", [y], perm=composed)
    return None


@rewrite("permute")
def permute_matmul(node, rw):
    (x,) = node.inputs
    inner = _producer(x, "matmul")
    if inner is None or tuple(node.attrs["perm"]) != (1, 0) or rw.readers.get(id(x), 0) != 1:
        return None
    a, b = inner.inputs
    if len(a.shape) != 2 or len(b.shape) != 2 or id(a) in rw.variables or id(b) in rw.variables:
        return None
    return rw.emit("matmul", [rw.emit("permute", [b], perm=(1, 0)), rw.emit("permute", [a], perm=(1, 0))])


@rewrite("broadcast_to")
def broadcast_broadcast(node, rw):
    (x,) = node.inputs
    shape = tuple(node.attrs["shape"])
    if x.shape == shape:
        return x
    inner = _producer(x, "broadcast_to")
    if inner is not None:
        return rw.emit("broadcast_to", [inner.inputs[0]], shape=shape)
    return None


@rewrite("cast")
def cast_same(node, rw):
    (x,) = node.inputs
    return x if x.dtype == node.out.dtype else None


@rewrite("stop_gradient")
def drop_stop_gradient(node, rw):
    # Only valid after autodiff (see the module NOTE).
    return node.inputs[0]


@rewrite("sum", "max")
def reduce_nothing(node, rw):
    (x,) = node.inputs
    if x.dtype != node.out.dtype:
        return None          # an integer sum widens to int64: not the identity
    axes = normalize_axes(node.op, node.attrs.get("axes"), len(x.shape))
    if any(x.shape[a] != 1 for a in axes):
        return None
    if x.shape == node.out.shape:
        return x
    return rw.emit("reshape", [x], shape=node.out.shape)


@rewrite("where")
def where_same(node, rw):
    c, a, b = node.inputs
    if a is b:
        return rw.like_out(a)
    if rw.holds(c, True):
        return rw.like_out(a)
    if rw.holds(c, False):
        return rw.like_out(b)
    return None
