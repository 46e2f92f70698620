"""Per-element code for each elementwise op, read from the op table; shared by the CPU and CUDA emitters.

    expr(add_node, ["t0", "t1"]) -> "(t0 + t1)"                  (the table's template, formatted)
    expr(clamp_node, ["t0"])     -> "(np.float32(0.0) if t0 < np.float32(0.0) else t0)"   (a template function)
    typed("np.float32(t0)", float32) -> "np.float32(t0)"          (a cast is emitted once)

A table template is a string ("{0}", "{1}" for inputs, attributes by name) or a function
`scalar(c, args, out_dtype, **attrs)` whose `c` (NUMBA_TEXT here) writes typed literals and casts.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import BackendError
from ...ops import OPS

NP_TYPE = {"float32": "np.float32", "float64": "np.float64", "float16": "np.float32", "int64": "np.int64",
           "int32": "np.int32", "int16": "np.int16", "int8": "np.int8", "uint8": "np.uint8", "bool": "np.bool_"}

# A backend may replace a template where its compiler differs (CUDA: sigmoid in float32 literals).
CPU_OVERRIDES = {}


def literal(value, dtype):
    """A typed Numba literal.   literal(1.5, float32) -> 'np.float32(1.5)'"""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "True" if bool(value) else "False"
    if dtype.kind == "f":
        v = float(value)
        text = "np.nan" if math.isnan(v) else ("np.inf" if v == math.inf else ("-np.inf" if v == -math.inf else repr(v)))
        return f"{NP_TYPE[dtype.name]}({text})"
    return f"{NP_TYPE[dtype.name]}({int(value)})"


def typed(text, dtype):
    """`text` converted to `dtype`, unless it already is a conversion to it.   typed("t0", f32) -> "np.float32(t0)" """
    name = NP_TYPE[np.dtype(dtype).name]
    if text.startswith(name + "(") and _one_call(text[len(name):]):
        return text
    return f"{name}({text})"


def _one_call(text):
    """Is `text` one parenthesised group, "(...)", rather than "(a) + (b)"?"""
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i == len(text) - 1
    return False


class NumbaText:
    """What a table template function writes with: typed literals and casts in numba's dialect."""
    literal = staticmethod(literal)
    cast = staticmethod(typed)


NUMBA_TEXT = NumbaText()


def literal_of(value):
    """The typed literal of a value made by a `full` or 1-element `const` node."""
    node = value.node
    v = node.attrs["value"]
    v = np.asarray(v).reshape(-1)[0] if node.op == "const" else v
    return literal(v, value.dtype)


def expr(node, args, overrides=CPU_OVERRIDES):
    """The scalar expression computing `node` from argument expressions `args`: a lookup in the table."""
    template = overrides.get(node.op) or OPS[node.op].scalar
    if template is None:
        raise BackendError(node.op, "has no scalar template, so it cannot be lowered inside an elementwise kernel",
                           hint="add `scalar = ...` to its declaration in graphc/ops")
    if callable(template):
        return template(NUMBA_TEXT, args, node.out.dtype, **node.attrs)
    return template.format(*args, **node.attrs)


def identity(op, dtype):
    """The start value of a reduction's accumulator, from the table (wide: float64 / int64 sums).

        identity("sum", float32) -> "0.0";  identity("max", int64) -> "-9223372036854775807"
    """
    value = OPS[op].extra["identity"]
    if np.dtype(dtype).kind == "f":
        v = float(value)
        return "-np.inf" if v == -math.inf else ("np.inf" if v == math.inf else repr(v))
    v = float(value)
    return str(-(2 ** 63 - 1)) if v == -math.inf else (str(2 ** 63 - 1) if v == math.inf else str(int(v)))
