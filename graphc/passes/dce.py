"""Dead-code elimination, and the use-rewiring helper the other passes share.

    dce(graph): drop every node whose result no output or update needs.

    graph f(%x: f32[2] data) {              graph f(%x: f32[2] data) {
      %0: f32[2] = exp %x                     %0: f32[2] = neg %x
      %1: f32[2] = neg %x           ->        return %0
      return %1                             }
    }
"""
from __future__ import annotations

from ..ops import OPS

__all__ = ["dce", "replace_uses", "grad_wrt"]


def dce(graph):
    """Remove nodes whose results neither an output, an update, nor a live node reads.

    Every graphc op is pure (`uniform` is counter-based, `grad` is a request the autodiff pass
    expands) except those with an effect (collectives), which stay even when nobody reads them.
    """
    live = {id(v) for v in graph.live_roots()}
    kept = []
    for node in reversed(graph.nodes):
        if id(node.out) in live or OPS[node.op].effect:
            kept.append(node)
            live.update(id(v) for v in node.inputs)
    kept.reverse()
    graph.nodes = kept
    return graph


def resolve(value, replace):
    """Follow a chain of replacements.   replace = {id(a): b, id(b): c} -> resolve(a) is c"""
    seen = 0
    while id(value) in replace:
        value = replace[id(value)]
        seen += 1
        if seen > len(replace):
            raise RuntimeError("replacement cycle")   # a pass bug: a value replaced by itself via others
    return value


def replace_uses(graph, replace):
    """Point every read of a replaced value (node inputs, outputs, update values) at its replacement.

    `replace` maps id(old value) -> new value; update targets are graph inputs and never replaced.
    """
    if not replace:
        return graph
    for node in graph.nodes:
        node.inputs = [resolve(v, replace) for v in node.inputs]
    graph.outputs = [resolve(v, replace) for v in graph.outputs]
    graph.updates = [(t, resolve(v, replace)) for t, v in graph.updates]
    return graph


def grad_wrt(graph):
    """ids of the values some `grad` node differentiates with respect to.

    Passes that run before autodiff must keep these apart: merging two of them (cse) or folding
    a node that reads one (fold) would change which paths lead from the loss to the variable.
    """
    return {id(n.inputs[1]) for n in graph.nodes if n.op == "grad" and len(n.inputs) > 1}
