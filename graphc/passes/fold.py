"""Constant folding: evaluate, at compile time, nodes whose operands are all literals.

    graph f(%x: f32[2] data) {                              graph f(%x: f32[2] data) {
      %0: f32[2] = full {dtype=f32, shape=(2,), value=2.0}    %0: f32[2] = full {dtype=f32, shape=(2,), value=4.0}
      %1: f32[2] = mul %0, %0                       ->        %1: f32[2] = add %x, %0
      %2: f32[2] = add %x, %1                                 return %1
      return %2                                             }
    }

A node folds when every operand comes from a `const` or `full` node (the literals: SOURCE ops
without operands) and its op is neither `grad` (the autodiff pass must see it) nor `uniform`.
A literal that some `grad` differentiates with respect to counts as a variable, not a literal.
It becomes `full {shape, value, dtype}` when all its elements are equal (bit for bit, so -0.0
stays apart from 0.0), else a `const` of at most MAX_CONST_ELEMENTS elements; bigger results
stay in the graph. Elementwise and movement ops over `full` operands are computed on one
element, so `broadcast_to(full 0, (4096, 4096))` folds without building the array. The literals
left unused are removed (dce), like MLIR's folder erases dead constants.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Value
from ..ops import AUTODIFF, ELEMENTWISE, OPS
from ..ops.registry import broadcast_shapes
from .dce import dce, grad_wrt

__all__ = ["fold_constants", "literal_value", "MAX_CONST_ELEMENTS"]

MAX_CONST_ELEMENTS = 4096     # a folded const never holds more; graphs stay small to print and hash
MAX_EVAL_ELEMENTS = 1 << 16   # never evaluate anything bigger at compile time
NEVER_FOLD = frozenset({"grad", "uniform"})
# Movement ops that copy one repeated value into every element of the result.
_SPREADING = frozenset({"reshape", "permute", "broadcast_to", "getitem", "concat"})


def is_literal(value):
    """True for the result of a `const` or `full` node (a SOURCE op without operands)."""
    node = value.node
    return node is not None and node.op in ("const", "full") and not node.inputs


def literal_value(value):
    """The one element every entry of a literal holds, as a 0-d array of its dtype, else None.

    literal_value(<full value=1.0 f32>) -> array(1., f32);  a const [1., 2.] -> None
    """
    if not is_literal(value):
        return None
    node = value.node
    if node.op == "full":
        with np.errstate(all="ignore"):
            try:
                return np.full((), node.attrs["value"], dtype=value.dtype)
            except (TypeError, ValueError, OverflowError):
                return None
    array = np.asarray(node.attrs["value"])
    if array.size == 0 or not _all_equal(array):
        return None
    return array.reshape(-1)[:1].reshape(())


def _all_equal(array):
    """Every element bit-identical to the first (nan == nan, but -0.0 != 0.0)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if flat.size <= 1:
        return True
    if flat.dtype.itemsize not in (1, 2, 4, 8):
        return False
    bits = flat.view(f"u{flat.dtype.itemsize}")
    return bool(np.all(bits == bits[0]))


def _literal_array(value):
    node = value.node
    return OPS[node.op].impl(**node.attrs)


def _as_literal(result, out: Value):
    """(op, attrs) of the literal holding `result`, or None when it is too big to keep."""
    result = np.asarray(result)
    if tuple(result.shape) != out.shape or result.dtype != out.dtype:
        return None     # the impl disagrees with the declared type: leave it for the verifier/runtime
    if result.size == 0:
        return "full", {"shape": out.shape, "value": np.zeros((), out.dtype).item(), "dtype": out.dtype}
    if _all_equal(result):
        return "full", {"shape": out.shape, "value": result.reshape(-1)[0].item(), "dtype": out.dtype}
    if result.size > MAX_CONST_ELEMENTS:
        return None
    return "const", {"value": np.array(result, copy=True, order="C")}


def _fold_repeated(node):
    """Fold an elementwise/movement op over `full` operands from one element per operand."""
    if not all(v.node.op == "full" for v in node.inputs):
        return None
    values = [literal_value(v) for v in node.inputs]
    if any(v is None for v in values):
        return None
    out = node.out
    opdef = OPS[node.op]
    if node.op in _SPREADING:
        first = values[0]
        if any(v.tobytes() != first.tobytes() for v in values):
            return None
        return "full", {"shape": out.shape, "value": first.item(), "dtype": out.dtype}
    if opdef.kind != ELEMENTWISE or any(len(v.shape) > len(out.shape) for v in node.inputs):
        return None
    try:
        if broadcast_shapes(node.op, *[v.shape for v in node.inputs]) != out.shape:
            return None     # e.g. one_hot grows a dim: its elements are not all the same
    except Exception:
        return None
    one = opdef.impl(*[v.reshape(1) for v in values], **node.attrs)
    one = np.asarray(one)
    if one.shape != (1,) or one.dtype != out.dtype:
        return None
    return "full", {"shape": out.shape, "value": one[0].item(), "dtype": out.dtype}


def _evaluate(node):
    total = node.out.size + sum(v.size for v in node.inputs)
    folded = _fold_repeated(node)
    if folded is not None or total > MAX_EVAL_ELEMENTS:
        return folded
    result = OPS[node.op].impl(*[_literal_array(v) for v in node.inputs], **node.attrs)
    return _as_literal(result, node.out)


def fold_constants(graph):
    """Replace each node computed from literals alone by the literal it computes (see module doc)."""
    # A literal that a grad differentiates with respect to is a variable: what reads it stays.
    variables = grad_wrt(graph)
    for node in graph.nodes:
        opdef = OPS.get(node.op)
        if (not node.inputs or opdef is None or node.op in NEVER_FOLD or opdef.kind == AUTODIFF
                or opdef.impl is None
                or not all(is_literal(v) and id(v) not in variables for v in node.inputs)):
            continue
        with np.errstate(all="ignore"):
            try:
                folded = _evaluate(node)
            except Exception:   # e.g. one_hot out of range: the runtime reports it with the user's line
                folded = None
        if folded is not None:
            # In place: the result Value (and so every use of it) and the source location stay.
            node.op, node.attrs = folded
            node.inputs = []
    return dce(graph)
