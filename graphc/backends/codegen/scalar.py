"""Per-element code for each elementwise op: the op table's templates, overridden where Numba differs.

    expr("add", ["t0", "t1"], {}) -> "(t0 + t1)"
    expr("maximum", ["a", "b"], {}) -> NaN-propagating select, as numpy.maximum

The CUDA backend reuses `base_template` and its own, smaller, override table.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import BackendError
from ...ops import OPS

NP_TYPE = {"float32": "np.float32", "float64": "np.float64", "float16": "np.float32", "int64": "np.int64",
           "int32": "np.int32", "int16": "np.int16", "int8": "np.int8", "uint8": "np.uint8", "bool": "np.bool_"}

# numpy semantics the op table's plain-Python templates do not give: NaN propagation through
# max/min/relu/clamp/sign (a Python `a if a > b else b` silently drops a NaN).
CPU_OVERRIDES = {
    "relu": "({0} if not ({0} <= 0) else 0.0)",
    "maximum": "({0} if ({0} >= {1} or {0} != {0}) else {1})",
    "minimum": "({0} if ({0} <= {1} or {0} != {0}) else {1})",
    "sign": "(1.0 if {0} > 0 else (-1.0 if {0} < 0 else ({0} * 0.0 if {0} == 0 else {0})))",
    "abs": "abs({0})",
    "logical_not": "(not {0})",
}


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


def literal_of(value):
    """The typed literal of a value made by a `full` or 1-element `const` node."""
    node = value.node
    v = node.attrs["value"]
    v = np.asarray(v).reshape(-1)[0] if node.op == "const" else v
    return literal(v, value.dtype)


def base_template(op):
    return OPS[op].scalar


def expr(node, args, overrides=CPU_OVERRIDES):
    """The scalar expression computing `node` from argument expressions `args`."""
    op = node.op
    attrs = node.attrs
    if op == "cast":
        target = np.dtype(attrs["dtype"])
        if target.kind == "b":
            return f"({args[0]} != 0)"
        return f"{NP_TYPE[target.name]}({args[0]})"
    if op == "clamp":
        lo, hi = attrs.get("min"), attrs.get("max")
        dt = node.out.dtype
        text = args[0]
        if hi is not None:
            text = f"({literal(hi, dt)} if {text} > {literal(hi, dt)} else {text})"
        if lo is not None:
            text = f"({literal(lo, dt)} if {args[0]} < {literal(lo, dt)} else {text})"
        return text
    if op == "pow_scalar":
        e = attrs["exponent"]
        if float(e).is_integer() and abs(e) <= 4:
            e = int(e)
            if e == 0:
                return "1.0"
            body = " * ".join([args[0]] * abs(e))
            return f"({body})" if e > 0 else f"(1.0 / ({body}))"
        return f"({args[0]} ** {float(e)!r})"
    if op == "full":
        return literal(attrs["value"], node.out.dtype)
    if op == "stop_gradient":
        return args[0]
    template = overrides.get(op) or base_template(op)
    if template is None:
        raise BackendError(op, "has no scalar template, so it cannot be lowered inside an elementwise kernel",
                           hint="add `scalar = ...` to its declaration in graphc/ops")
    return template.format(*args, **{k: v for k, v in attrs.items()})
