"""Autodiff: replace each `grad` request by the backward subgraph built from the op table's VJP rules.

    before:  %1: f32[] = sum %0 {...}        %2: f32[3] = grad %1, %w
    after:   %1: f32[] = sum %0 {...}        %2: f32[] = full {value=1.0 ...}
             %3: f32[3] = broadcast_to %2 ...  (the VJP of sum, then of every op back to %w)

The rules are the very functions eager autograd calls (ops.registry.run_vjp); here they run on
proxy Tensors whose values are IR values (graphc.builder), so each rule appends nodes instead of
computing.
"""
from __future__ import annotations

from ..builder import GraphBuilder, proxy
from ..ir import Graph
from ..ops import OPS
from ..ops.registry import fn, run_vjp


def autodiff(graph):
    """Expand every `grad` node; the result has no `grad` nodes left."""
    if not any(node.op == "grad" for node in graph.nodes):
        return graph
    new = Graph(graph.name)
    env = {}
    for v in graph.inputs:
        env[id(v)] = new.add_input(v.shape, v.dtype, v.kind, v.name)
    builder = GraphBuilder(new)
    done = {}
    with builder:
        for i, node in enumerate(graph.nodes):
            if node.op != "grad":
                builder.loc = node.loc
                env[id(node.out)] = new.add_node(node.op, [env[id(v)] for v in node.inputs], node.attrs, node.loc,
                                                 shape=node.out.shape, dtype=node.out.dtype)
                continue
            if id(node) not in done:
                group = [n for n in graph.nodes[i:] if n.op == "grad" and n.inputs[0] is node.inputs[0]
                         and n.inputs[2:] == node.inputs[2:]]
                done.update(_backward(builder, graph, group, env))
            env[id(node.out)] = done[id(node)]
    new.outputs = [env[id(v)] for v in graph.outputs]
    new.updates = [(env[id(a)], env[id(b)]) for a, b in graph.updates]
    return new


def _backward(builder, graph, requests, env):
    """Reverse-mode sweep from one loss to the `wrt` of every request; {id(request node): gradient Value}."""
    loss = requests[0].inputs[0]
    seed = requests[0].inputs[2] if len(requests[0].inputs) > 2 else None
    wrts = {id(r.inputs[1]) for r in requests}
    # Values that depend on some wrt through differentiable ops: only they need adjoints.
    depends = set(wrts)
    end = next((k for k, n in enumerate(graph.nodes) if n.out is loss), -1)
    order = [n for n in graph.nodes[:end + 1] if n.op != "grad"]
    for node in order:
        if not OPS[node.op].nondiff and any(id(v) in depends for v in node.inputs):
            depends.add(id(node.out))
    builder.loc = requests[0].loc
    adjoint = {id(loss): proxy(env[id(seed)]) if seed is not None else fn.ones_like(proxy(env[id(loss)]))}
    final = {}
    for node in reversed(order):
        g = adjoint.pop(id(node.out), None)
        if id(node.out) in wrts:
            final[id(node.out)] = g
        if g is None or OPS[node.op].nondiff:
            continue
        builder.loc = node.loc
        inputs = [proxy(env[id(v)], id(v) in depends) for v in node.inputs]
        grads = run_vjp(OPS[node.op], g, proxy(env[id(node.out)]), inputs, node.attrs)
        for v, gi in zip(node.inputs, grads):
            if gi is not None:
                prev = adjoint.get(id(v))
                adjoint[id(v)] = gi if prev is None else prev + gi
    for key in wrts:
        if key not in final:
            final[key] = adjoint.get(key)
    result = {}
    builder.loc = requests[0].loc
    for r in requests:
        g = final.get(id(r.inputs[1]))
        wrt = r.inputs[1]
        if g is None:
            g = fn.zeros(wrt.shape, dtype=wrt.dtype)
        elif g.dtype != wrt.dtype:
            g = g.to(wrt.dtype)
        result[id(r)] = g._value
    return result
