"""The canonical text form of a graph: renumbered values, sorted attributes, one node per line.

    graph f(%x: f32[2,3] data) {
      %0: f32[2] = sum %x {axes=(1,), keepdim=False}    # model.py:12
      return %0
    }
"""
from __future__ import annotations

import os

import numpy as np

from .types import DTYPE_NAMES


def format_attr(value):
    """An attribute value as parseable text.   format_attr((1, 2)) -> '(1, 2)'"""
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return DTYPE_NAMES.get(np.dtype(value).name, np.dtype(value).name)
    if isinstance(value, np.ndarray):
        return f"array({format_attr(value.tolist())}, {format_attr(value.dtype)})"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return format_attr(value.item())
    if isinstance(value, tuple):
        inner = ", ".join(format_attr(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    return repr(value)


def value_names(graph):
    """The printer's names of every value: inputs by name, node results by position.   {id(v): '%3'}

    Every other text about a graph (fused kernels, memory plans, generated-code comments) uses these.
    """
    names = {id(v): "%" + v.name for v in graph.inputs}
    for i, node in enumerate(graph.nodes):
        names[id(node.out)] = f"%{i}"
    return names


def format_node(node, names, *, elide_arrays=False, attr_limit=None):
    """One node as IR text, without its location.   format_node(n, names) -> '%3: f32[64,128] = relu %2'

    The one node formatter: the printer, generated-code comments and graphc.verify's reports use it.
    elide_arrays drops a const's array `value` of more than 4 elements; attr_limit cuts long attributes.
    """
    args = ", ".join(names.get(id(v), "%<undefined>") for v in node.inputs)
    attrs = ", ".join(f"{k}={format_attr(node.attrs[k])}" for k in sorted(node.attrs)
                      if not (elide_arrays and k == "value" and np.asarray(node.attrs[k]).size > 4))
    if attr_limit is not None and len(attrs) > attr_limit:
        attrs = attrs[:attr_limit - 3] + "..."
    text = f"{names.get(id(node.out), '%<undefined>')}: {node.out.type_str()} = {node.op}"
    if args:
        text += " " + args
    if attrs:
        text += " {" + attrs + "}"
    return text


def format_loc(node):
    """'model.py:12', or '' for a node without a source location."""
    return f"{os.path.basename(node.loc[0])}:{node.loc[1]}" if node.loc else ""


def print_graph(graph, *, show_loc=True):
    """The graph's canonical text; then each annotation a backend pass left (kernels, memory plan)."""
    names = {}
    for v in graph.inputs:
        names[id(v)] = "%" + v.name
    params = ", ".join(f"{names[id(v)]}: {v.type_str()} {v.kind}" for v in graph.inputs)
    lines = [f"graph {graph.name}({params}) {{"]
    body = []
    for i, node in enumerate(graph.nodes):
        names[id(node.out)] = f"%{i}"
        text = "  " + format_node(node, names)
        if show_loc and node.loc:
            text = f"{text:<60}  # {format_loc(node)}"
        body.append(text)
    lines.extend(body)
    ret = "  return " + ", ".join(names.get(id(v), "%<undefined>") for v in graph.outputs)
    if graph.updates:
        ret += "  updates " + ", ".join(f"{names.get(id(a), '%<undefined>')} <- {names.get(id(b), '%<undefined>')}"
                                        for a, b in graph.updates)
    lines.append(ret.rstrip())
    lines.append("}")
    for note in getattr(graph, "annotations", {}).values():   # e.g. {"fused": FusedGraph, "planned": Plan}
        lines.append(note.describe(names))
    return "\n".join(lines)
