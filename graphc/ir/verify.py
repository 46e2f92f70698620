"""The IR verifier: every rule a well-formed graph keeps, checked in one walk; errors name the node.

    verify(g)   # returns g, or raises IRError like
    graphc.errors.IRError: verify: %3 = matmul %1, %2: declared type f32[2,5] but matmul gives f32[2,4]
      at model.py:13

Rules: each node's op exists, its attributes are ones the op declares, its inputs are defined earlier
in this graph, its result is its own (out.node is the node) and defined once, and its type is what
the op's shape rule gives; outputs and update values are defined; an update writes a data, param
or state input with a value of exactly that input's type, at most once.
"""
from __future__ import annotations

import numpy as np

from ..errors import IRError
from ..ops import OPS
from .graph import INPUT_KINDS, type_str
from .printer import format_attr

__all__ = ["verify", "node_text"]

_UPDATABLE = ("data", "param", "state")
_MAX_TEXT = 120


def _names(graph):
    """Printed names, as the printer numbers them: inputs by name, node i as %i."""
    names = {}
    for v in graph.inputs:
        names.setdefault(id(v), "%" + str(v.name))
    for i, node in enumerate(graph.nodes):
        names.setdefault(id(node.out), f"%{i}")
    return names


def node_text(node, names, index=None):
    """A node's printed line without its type: '%3 = matmul %1, %2'."""
    out = f"%{index}" if index is not None else names.get(id(node.out), "%?")
    args = ", ".join(names.get(id(v), "%<undefined>") for v in node.inputs)
    text = f"{out} = {node.op}" + (" " + args if args else "")
    if node.attrs:
        text += " {" + ", ".join(f"{k}={format_attr(node.attrs[k])}" for k in sorted(node.attrs)) + "}"
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 3] + "..."


def verify(graph):
    """Check `graph` against the IR's rules; return it unchanged, or raise IRError naming the node."""
    names = _names(graph)
    position = {}                           # id(value) -> index of the node defining it
    for i, node in enumerate(graph.nodes):
        position.setdefault(id(node.out), i)

    defined = set()
    input_names = set()
    for v in graph.inputs:
        if v.kind not in INPUT_KINDS:
            raise _error(f"input %{v.name} has kind {v.kind!r}; the kinds are {', '.join(INPUT_KINDS)}")
        if v.node is not None:
            raise _error(f"input %{v.name} is also the result of a node ({v.node.op})")
        if id(v) in defined:
            raise _error(f"input %{v.name} is listed twice among the graph inputs")
        if v.name in input_names:
            raise _error(f"two graph inputs are named %{v.name}; the text form could not tell them apart")
        defined.add(id(v))
        input_names.add(v.name)

    for i, node in enumerate(graph.nodes):
        # Duplicates first: with two definitions, out.node can only point at one of them.
        if position[id(node.out)] != i:
            raise _error(f"{node_text(node, names, i)}: its result is defined twice "
                         f"(first by %{position[id(node.out)]})", loc=node.loc)
        if id(node.out) in defined:
            raise _error(f"{node_text(node, names, i)}: its result is a graph input, defined twice",
                         loc=node.loc)

    for i, node in enumerate(graph.nodes):
        where = node_text(node, names, i)

        def fail(message, hint=None):
            raise _error(f"{where}: {message}", loc=node.loc, hint=hint)

        opdef = OPS.get(node.op)
        if opdef is None:
            fail(f"unknown op {node.op!r}", hint="every op must be declared in graphc/ops (the OPS table)")
        if node.out.node is not node:
            other = "no node" if node.out.node is None else f"another {node.out.node.op} node"
            fail(f"its result value belongs to {other} (out.node is not this node)")
        for k, v in enumerate(node.inputs):
            if id(v) not in defined:
                if id(v) in position:
                    fail(f"operand {k} ({names[id(v)]}) is used before its definition",
                         hint="nodes must be in an execution order: move the definition up")
                fail(f"operand {k} ({v!r}) is not defined in this graph (a value from another graph?)",
                     hint="values cannot be shared between graphs; clone_graph returns a mapping for that")
        unknown = sorted(set(node.attrs) - set(opdef.attrs))
        if unknown:
            fail(f"op {node.op!r} has no attribute {', '.join(unknown)} "
                 f"(its attributes: {', '.join(opdef.attrs) or 'none'})")
        try:
            shape, dtype = opdef.infer(*node.inputs, **node.attrs)
        except Exception as e:      # the op's own rule rejects the operands: pass on its words
            fail(f"{node.op} rejects its operands: {getattr(e, 'message', e)}")
        expected = (tuple(int(d) for d in shape), np.dtype(dtype))
        actual = (tuple(node.out.shape), np.dtype(node.out.dtype))
        if expected != actual:
            fail(f"declared type {type_str(*actual)} but {node.op} gives {type_str(*expected)}")
        defined.add(id(node.out))

    for k, v in enumerate(graph.outputs):
        if id(v) not in defined:
            raise _error(f"output {k} ({v!r}) is not defined in this graph")
    targets = set()
    for target, new in graph.updates:
        text = f"update {names.get(id(target), repr(target))} <- {names.get(id(new), repr(new))}"
        if target.kind is None or id(target) not in defined:
            raise _error(f"{text}: the target is not an input of this graph",
                         hint="updates write back graph inputs (params, state, data)")
        if target.kind not in _UPDATABLE:
            raise _error(f"{text}: the target is a {target.kind} input; only {', '.join(_UPDATABLE)} "
                         f"inputs can be updated")
        if id(new) not in defined:
            raise _error(f"{text}: the new value is not defined in this graph")
        if (tuple(new.shape), new.dtype) != (tuple(target.shape), target.dtype):
            raise _error(f"{text}: the new value has type {new.type_str()} but the target is "
                         f"{target.type_str()}")
        if id(target) in targets:
            raise _error(f"{text}: {names[id(target)]} is updated twice")
        targets.add(id(target))
    return graph


def _error(message, loc=None, hint=None):
    # loc=() keeps the error from pointing at whoever called verify: the node's own line is the news.
    return IRError("verify", message, loc=loc or (), hint=hint)
