"""The statements inside a fused loop, one per IR node; shared by the CPU and CUDA emitters.

    loop = LoopBody(plan, load, body.line, rank=2, bad_class=..., uniform=...)
    loop.emit_nodes(k.nodes, stores={id(out): "o0[i0, i1]"})
->
    x0 = a0[i0, i1]                          <- load: an input element, on its first read
    x1 = a1[i0, 0]
    t0 = np.float32((x0 - x1))               <- node 0, sub: the op table's template, typed
    x2 = a2[i0]                              <- node 1, one_hot: its label (dims aligned left) ...
    if x2 < 0 or x2 >= 10:
        raise ValueError('...out of range')  <- ... checked, and reported the target's way (bad_class)
    t1 = np.float32(1 if x2 == i1 else 0)
    t2 = np.float32((t0 * t1))
    o0[i0, i1] = t2                          <- an output of the kernel is stored

Node j's value is `t{j}`, except broadcast_to's, which is its input's expression itself.  The target
decides three things: the scalar templates it overrides, how an out-of-range class is reported (the
CPU raises, CUDA sets an error flag) and how uniform's random bits are made.  A loop without the
last two (a reduction's prologue: fusion keeps one_hot and uniform out of them) rejects those ops.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...errors import BackendError
from .scalar import CPU_OVERRIDES, NP_TYPE, expr, literal_of, typed


@dataclass
class LoopBody:
    """The values of one loop nest: node results, literals the plan inlines, and loaded input elements."""
    plan: object              # the memory plan: which values are literals (plan.inlines)
    load: Callable            # (value, align) -> the name holding an input element; writes its load, "x0 = a0[i0]".
    #                           align="left": one_hot's labels, whose dims line up with the loop's leading ones
    emit: Callable            # (line) -> None: writes a statement
    rank: int = 0             # the loop indices are i0 ... i{rank-1}; one_hot's class is the last
    flat: str | None = None   # the element's flat index, uniform's counter
    overrides: dict = field(default_factory=lambda: CPU_OVERRIDES)   # scalar templates the target replaces
    bad_class: Callable | None = None   # (num_classes) -> the statement run when a label is out of range
    uniform: Callable | None = None     # (t, seed, counter) -> the statements setting t to uniform [0, 1) bits
    values: dict = field(default_factory=dict, init=False)    # id(value) -> its expression inside the loop

    def read(self, value, align="right"):
        """The expression for `value` at the current element: a node's result, an inlined literal, or a load."""
        if id(value) in self.values:
            return self.values[id(value)]
        if self.plan.inlines(value):
            return literal_of(value)
        return self.load(value, align)

    def emit_nodes(self, nodes, stores=None):
        """Emit each node's statements, storing the values in `stores` ({id(value): "o0[i0, i1]"}) once computed."""
        stores = stores or {}
        for j, node in enumerate(nodes):
            self.values[id(node.out)] = self._node(node, f"t{j}")
            if id(node.out) in stores:
                self.emit(f"{stores[id(node.out)]} = {self.values[id(node.out)]}")

    def _node(self, node, t):
        """Emit the statements computing `node` into `t`; returns the expression holding its value."""
        if node.op == "broadcast_to":
            return self.read(node.inputs[0])
        if (node.op == "one_hot" and self.bad_class is None) or (node.op == "uniform" and self.uniform is None):
            raise BackendError(node.op, "cannot be a reduction prologue: it needs the loop's own element indices")
        if node.op == "one_hot":
            label = self.read(node.inputs[0], align="left")
            classes = node.attrs["num_classes"]
            self.emit(f"if {label} < 0 or {label} >= {classes}:")
            self.emit(f"    {self.bad_class(classes)}")
            self.emit(f"{t} = {NP_TYPE[node.out.dtype.name]}(1 if {label} == i{self.rank - 1} else 0)")
        elif node.op == "uniform":
            seed, offset = self.read(node.inputs[0]), self.read(node.inputs[1])
            for line in self.uniform(t, seed, f"{offset} + {self.flat}"):
                self.emit(line)
        else:
            args = [self.read(v) for v in node.inputs]
            self.emit(f"{t} = {typed(expr(node, args, self.overrides), node.out.dtype)}")
        return t
