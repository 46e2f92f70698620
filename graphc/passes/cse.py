"""Common-subexpression elimination: one node per distinct (op, operands, attributes).

    graph f(%x: f32[2] data) {              graph f(%x: f32[2] data) {
      %0: f32[2] = exp %x                     %0: f32[2] = exp %x
      %1: f32[2] = exp %x           ->        %1: f32[2] = add %0, %0
      %2: f32[2] = add %0, %1                 return %1
      return %2                             }
    }

Every graphc op is a pure function of its operands and attributes, so equal keys mean equal
values. That includes `uniform`: its bits are a function of (seed, offset, shape), so two draws
from the same seed and offset ARE the same numbers. `grad` requests merge only when loss, wrt
and seed are the same values; a value that a `grad` differentiates with respect to never merges
(two equal `ones(3, requires_grad=True)` are still two variables with two gradients), and
neither does an op with an effect: two allreduces of one value are two collectives.
"""
from __future__ import annotations

import numpy as np

from ..ops import OPS
from .dce import grad_wrt, replace_uses, resolve

__all__ = ["cse", "attr_key"]

# Operand order does not change these results (exactly, in IEEE arithmetic too), so
# add(a, b) and add(b, a) are one expression. maximum/minimum are left out: with -0.0 and 0.0
# numpy returns whichever operand comes first.
COMMUTATIVE = frozenset({"add", "mul", "eq", "ne", "logical_and", "logical_or"})


def attr_key(value):
    """A hashable key that is equal exactly when two attribute values mean the same thing.

    Unlike ==, it tells 0.0 from -0.0 and 1 from 1.0 from True, matches nan with nan, and
    compares arrays by dtype, shape and bytes.   attr_key(nan) == attr_key(nan) -> True
    """
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    if isinstance(value, type) and issubclass(value, np.generic):
        return ("dtype", np.dtype(value).str)
    if isinstance(value, np.generic):
        return ("scalar", value.dtype.str, value.tobytes())
    if isinstance(value, float):
        return ("float", repr(value))          # repr keeps the sign of zero and spells nan 'nan'
    if isinstance(value, (tuple, list)):
        return (type(value).__name__,) + tuple(attr_key(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple(sorted((repr(k), attr_key(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def node_key(node):
    """(op, operand identities, attribute key) of a node whose operands are already merged."""
    operands = [id(v) for v in node.inputs]
    if node.op in COMMUTATIVE:
        operands.sort()
    attrs = dict(node.attrs)
    if node.op == "full" and "value" in attrs and "dtype" in attrs:
        # full {value=1} and full {value=1.0} of one dtype hold the same bits: key on those bits.
        with np.errstate(all="ignore"):
            try:
                attrs["value"] = np.full((), attrs["value"], dtype=attrs["dtype"])
            except (TypeError, ValueError, OverflowError):
                pass
    attrs = tuple(sorted((k, attr_key(v)) for k, v in attrs.items()))
    return node.op, tuple(operands), attrs


def cse(graph):
    """Merge each node into the first earlier node with the same op, operands and attributes."""
    seen = {}
    replace = {}
    kept = []
    variables = grad_wrt(graph)
    for node in graph.nodes:
        node.inputs = [resolve(v, replace) for v in node.inputs]
        if id(node.out) in variables or OPS[node.op].effect:
            kept.append(node)       # a grad's wrt is a variable of its own; an effect happens once per node
            continue
        key = node_key(node)
        first = seen.get(key)
        if first is not None and (first.out.shape, first.out.dtype) == (node.out.shape, node.out.dtype):
            replace[id(node.out)] = first.out
            continue
        seen.setdefault(key, node)
        kept.append(node)
    replace_uses(graph, replace)
    graph.nodes = kept      # after the rewiring, so no replaced value is freed while its id is a key
    return graph
