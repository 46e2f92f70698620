"""The reference interpreter: runs a graph op by op with the op table's numpy implementations.

    run = InterpreterBackend().compile(graph); outputs, updates = run(input_arrays)

It is the specification every other backend is tested against.
"""
from __future__ import annotations

import numpy as np

from ..errors import BackendError, GraphcError
from ..ops import OPS


def interpret(graph, inputs):
    """Evaluate the graph: (list of output arrays, list of update arrays in graph.updates order)."""
    env = {id(v): a for v, a in zip(graph.inputs, inputs)}
    for node in graph.nodes:
        op = OPS[node.op]
        if op.impl is None:
            raise BackendError(node.op, "the interpreter cannot run this op (the autodiff pass should have "
                                        "replaced it)", loc=node.loc)
        args = [env[id(v)] for v in node.inputs]
        try:
            out = op.impl(*args, **node.attrs)
        except GraphcError as exc:
            if node.loc:   # point at the user's line that made this node, not at the interpreter
                exc.loc = node.loc
                exc.args = (exc._render(),)
            raise
        except Exception as exc:
            raise BackendError(node.op, f"failed on inputs {', '.join(f'{a.dtype}{list(a.shape)}' for a in args)}: "
                                        f"{type(exc).__name__}: {exc}", loc=node.loc) from exc
        out = np.asarray(out)
        if out.dtype != node.out.dtype:
            out = out.astype(node.out.dtype)
        env[id(node.out)] = out
    # Update values are copied: one may be (a view of) another input that is itself updated.
    return [env[id(v)] for v in graph.outputs], [np.array(env[id(new)]) for _, new in graph.updates]


class InterpreterBackend:
    """Backend interface: compile(graph) -> a function from input arrays to (outputs, updates)."""

    name = "interpreter"

    def compile(self, graph, **options):
        def run(inputs):
            return interpret(graph, inputs)
        run.source = lambda kind="python": "# the interpreter runs the IR directly; see .ir()\n" + str(graph)
        run.stats = {}
        return run

    def prepare_passes(self):
        return []
