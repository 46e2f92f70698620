"""The reference interpreter: runs a graph op by op with the op table's numpy implementations.

    run = InterpreterBackend().compile(graph); outputs, updates = run(input_arrays)

It is the specification every other backend is tested against.
"""
from __future__ import annotations

import numpy as np

from ..errors import BackendError, GraphcError
from ..ops import OPS


def run_node(node, args):
    """One node on host arrays, with the op table's implementation:  run_node(relu_node, [x]) -> array.

    An op error is re-rendered at the node's user line; the result has the node's dtype.
    """
    op = OPS[node.op]
    if op.impl is None:
        raise BackendError(node.op, "the interpreter cannot run this op (the autodiff pass should have "
                                    "replaced it)", loc=node.loc)
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
    return out.astype(node.out.dtype) if out.dtype != node.out.dtype else out


def interpret(graph, inputs):
    """Evaluate the graph: (list of output arrays, list of update arrays in graph.updates order)."""
    env = {id(v): a for v, a in zip(graph.inputs, inputs)}
    for node in graph.nodes:
        env[id(node.out)] = run_node(node, [env[id(v)] for v in node.inputs])
    # Update values are copied: one may be (a view of) another input that is itself updated.
    return [env[id(v)] for v in graph.outputs], [np.array(env[id(new)]) for _, new in graph.updates]


class InterpreterBackend:
    """Backend interface: compile(graph) -> a function from input arrays to (outputs, updates)."""

    name = "interpreter"
    run_node = staticmethod(run_node)

    def sized_text(self, graph):
        """What must agree across batch sizes for one compile to serve them: the IR itself (see
        graphc.ir.symbolic); the interpreter reads every shape from the graph it runs."""
        return str(graph)

    def compile(self, graph, size_template=None, size=None, **options):
        """size_template/size: a dynamic compile's graph at one size; the interpreter runs it as it is."""
        def run(inputs):
            return interpret(graph, inputs)
        run.source = lambda kind="python": "# the interpreter runs the IR directly; see .ir()\n" + str(graph)
        run.stats = {}
        return run

    def prepare_passes(self):
        return []


Interpreter = InterpreterBackend
