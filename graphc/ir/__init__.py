"""graphc.ir: the graph IR (values, nodes, graphs), its canonical printer and parser, and the verifier.

    from graphc.ir import Graph, print_graph, parse_graph, verify
"""
from .graph import DTYPE_BY_NAME, DTYPE_NAMES, INPUT_KINDS, Graph, Node, Value, clone_graph, type_str  # noqa: F401
from .printer import format_attr, print_graph  # noqa: F401
from .parser import parse_graph  # noqa: F401
from .verify import verify  # noqa: F401
