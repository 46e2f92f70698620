"""GraphBuilder: run Tensor code so that every op appends an IR node instead of computing.

    with GraphBuilder(graph):                 # ops on proxy(value) Tensors now add nodes to `graph`
        y = proxy(graph.inputs[0]) * 2        # y is a proxy of the new node's output

The tracer (frontend/trace.py) records the user's code with it, and the autodiff pass
(passes/autodiff.py) runs the op table's VJP rules with it, so the gradient code eager autograd
runs is the very code the backward graph is built from.
"""
from __future__ import annotations

from . import _context
from .errors import user_frame
from .tensor import Tensor


def proxy(value, requires_grad=False):
    """A Tensor whose value is an IR Value."""
    t = Tensor._wrap(value)
    t.requires_grad = requires_grad
    return t


class GraphBuilder:
    """Appends ops to a graph instead of computing them; used by the tracer and the autodiff pass."""

    def __init__(self, graph):
        self.graph = graph
        self.loc = None   # when set, every new node gets this location (the autodiff pass uses it)

    def __enter__(self):
        self._saved = (_context.tracer, _context.grad_enabled)
        _context.set_tracer(self)
        return self

    def __exit__(self, *exc):
        _context.set_tracer(self._saved[0])
        _context.set_grad_enabled(self._saved[1])

    def value_of(self, t):
        return t._value

    def location(self):
        return self.loc if self.loc is not None else user_frame()

    def emit(self, op, args, attrs):
        values = [self.value_of(a) for a in args]
        out = self.graph.add_node(op.name, values, attrs, self.location())
        requires = _context.grad_enabled and not op.nondiff and any(a.requires_grad for a in args)
        return proxy(out, requires)

    def scalar_input(self, group, key):
        return group[key]

    def note_grad(self, tensor, value):
        pass

    def note_optimizer(self, optimizer):
        pass

    def note_grad_read(self, tensor):
        pass

    def note_module(self, module):
        pass

    def assign(self, tensor, new):
        tensor._value = self._conform(new, tensor)

    def _conform(self, new, like):
        v = self.value_of(new)
        if v.dtype != like._value.dtype:
            v = self.value_of(new.to(like._value.dtype))
        if v.shape != tuple(like.shape):
            v = self.graph.add_node("broadcast_to", [v], {"shape": tuple(like.shape)}, self.location())
        return v
