"""Names and comments for generated code, shared by the CPU and CUDA emitters.

    ir_line(node, value_names(graph)) -> '%3: f32[64,128] = relu %2   (model.py:14)'
    param_name("%fc1.weight") -> 'fc1_weight';  param_name("%34") -> 'v34'
"""
from __future__ import annotations

import re

from ...ir.printer import format_loc, format_node


def ir_line(node, names):
    """'%3: f32[64,128] = relu %2   (model.py:14)' for comments in generated code."""
    text = format_node(node, names, elide_arrays=True)
    return f"{text}   ({format_loc(node)})" if node.loc else text


def param_name(ir_name):
    """A Python identifier for an IR value's name: inputs keep theirs, numbered values become v<n>."""
    bare = ir_name.lstrip("%")
    text = re.sub(r"\W", "_", bare)
    return f"v{text}" if not text or text[0].isdigit() else text
