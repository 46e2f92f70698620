"""The graph IR: typed SSA values, one node per primitive, explicit outputs and state updates.

    g = Graph("f"); x = g.add_input((2,), float32, "data", "x")
    y = g.add_node("exp", [x]); g.outputs.append(y)
    print(g)  ->  graph f(%x: f32[2]) { %0: f32[2] = exp %x ... return %0 }
"""
from __future__ import annotations

import numpy as np

from ..errors import IRError
from ..ops import OPS
from .types import DTYPE_BY_NAME, DTYPE_NAMES, type_str  # noqa: F401  (graph's names since the start)

INPUT_KINDS = ("data", "param", "state", "scalar")

class Value:
    """One SSA value: a graph input (kind set) or the result of exactly one node."""

    __slots__ = ("shape", "dtype", "node", "name", "kind", "__weakref__")

    def __init__(self, shape, dtype, node=None, name=None, kind=None):
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.name = name
        self.kind = kind

    def type_str(self):
        return type_str(self.shape, self.dtype)

    @property
    def size(self):
        return int(np.prod(self.shape))

    def __repr__(self):
        return f"<Value {self.name or '?'}: {self.type_str()}>"


class Node:
    """`out = op(inputs) {attrs}`, remembering the user's source line that made it."""

    __slots__ = ("op", "inputs", "attrs", "out", "loc")

    def __init__(self, op, inputs, attrs, out, loc=None):
        self.op = op
        self.inputs = list(inputs)
        self.attrs = dict(attrs)
        self.out = out
        self.loc = loc

    @property
    def opdef(self):
        return OPS[self.op]

    def __repr__(self):
        return f"<Node {self.op} -> {self.out.type_str()}>"


class Graph:
    """Inputs, nodes in a valid execution order, outputs, and updates (input <- new value)."""

    def __init__(self, name="graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.updates: list[tuple[Value, Value]] = []

    # --- building --------------------------------------------------------------------------
    def add_input(self, shape, dtype, kind="data", name=None):
        if kind not in INPUT_KINDS:
            raise IRError("graph", f"input kind must be one of {INPUT_KINDS}, got {kind!r}")
        value = Value(shape, dtype, None, name or f"in{len(self.inputs)}", kind)
        self.inputs.append(value)
        return value

    def add_node(self, op, inputs, attrs=None, loc=None, shape=None, dtype=None):
        """Append `op(inputs)`, typing it with the op's rule unless shape and dtype are given."""
        attrs = dict(attrs or {})
        if shape is None:
            shape, dtype = OPS[op].infer(*inputs, **attrs)
        out = Value(shape, dtype)
        node = Node(op, inputs, attrs, out, loc)
        out.node = node
        self.nodes.append(node)
        return out

    # --- queries -----------------------------------------------------------------------------
    def users(self):
        """{id(value): [nodes that read it]}"""
        users = {}
        for node in self.nodes:
            for v in node.inputs:
                users.setdefault(id(v), []).append(node)
        return users

    def live_roots(self):
        """The values the graph must produce: outputs and update sources."""
        return list(self.outputs) + [new for _, new in self.updates]

    def to_networkx(self):
        """A networkx DiGraph of value dependencies (nodes are Node objects and input Values)."""
        import networkx as nx
        g = nx.DiGraph()
        for v in self.inputs:
            g.add_node(v)
        for node in self.nodes:
            g.add_node(node)
            for v in node.inputs:
                g.add_edge(v.node if v.node is not None else v, node)
        return g

    def __str__(self):
        from .printer import print_graph
        return print_graph(self)

    def __repr__(self):
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"


def clone_graph(graph, name=None):
    """A deep copy: new Values and Nodes with the same structure (passes copy before they rewrite)."""
    new = Graph(name or graph.name)
    mapping = {}
    for v in graph.inputs:
        mapping[id(v)] = new.add_input(v.shape, v.dtype, v.kind, v.name)
    for node in graph.nodes:
        out = new.add_node(node.op, [mapping[id(v)] for v in node.inputs], node.attrs, node.loc,
                           shape=node.out.shape, dtype=node.out.dtype)
        mapping[id(node.out)] = out
    new.outputs = [mapping[id(v)] for v in graph.outputs]
    new.updates = [(mapping[id(a)], mapping[id(b)]) for a, b in graph.updates]
    return new, mapping
