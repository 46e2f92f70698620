"""Every node's value, evaluated by the reference interpreter, and the IR lines that name them: what
verify and detect_anomaly both show.

    env = reference_values(graph, inputs)     # {id(value): array} for every input and node
    ir_line(node, printer.value_names(graph)) # '%3: f32[2,3] = exp %2   # model.py:12'
"""
from __future__ import annotations

import numpy as np

from ..backends.interpreter import Interpreter
from ..ir.printer import format_loc, format_node
from ..ops.registry import OPS


def copy_array(a):
    """A copy of an array (None stays None): runs write parameters back in place."""
    return None if a is None else np.array(a, copy=True)


def reference_values(graph, inputs, float64=False):
    """{id(value): array}: every node evaluated with the op table's numpy impl, exactly as eager mode does.

    float64=True evaluates float values in double precision instead: how far that moves a value shows how
    sensitive it is to rounding.
    """
    if float64:
        inputs = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
    env = {id(v): a for v, a in zip(graph.inputs, inputs)}
    with np.errstate(all="ignore"):
        for node in graph.nodes:
            out = np.asarray(OPS[node.op].impl(*[env[id(v)] for v in node.inputs], **node.attrs))
            if out.dtype != node.out.dtype and not (float64 and out.dtype.kind == node.out.dtype.kind == "f"):
                out = out.astype(node.out.dtype)
            env[id(node.out)] = out
    return env


def interpreter_values(graph, inputs):
    """{id(value): array}: every node as the interpreter backend computes it (Interpreter.run_node)."""
    env = {id(v): a for v, a in zip(graph.inputs, inputs)}
    work = {id(v): copy_array(a) for v, a in zip(graph.inputs, inputs)}   # the caller's arrays stay untouched
    with np.errstate(all="ignore"):
        for node in graph.nodes:
            work[id(node.out)] = env[id(node.out)] = Interpreter.run_node(node, [work[id(v)] for v in node.inputs])
    return env


def ir_line(node, names):
    """One node as a (shortened) IR line with its source location."""
    text = format_node(node, names, attr_limit=120)
    return f"{text}   # {format_loc(node)}" if node.loc else text
