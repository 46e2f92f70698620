"""Names and comments for generated code, shared by the CPU and CUDA emitters.

    ir_line(node, value_names(graph)) -> '%3: f32[64,128] = relu %2   (model.py:14)'
    param_name("%fc1.weight") -> 'fc1_weight';  param_name("%34") -> 'v34'
"""
from __future__ import annotations

import os
import re

import numpy as np

from ...ir.printer import format_attr


def ir_line(node, names):
    """'%3: f32[64,128] = relu %2   (model.py:14)' for comments in generated code."""
    args = ", ".join(names.get(id(v), "?") for v in node.inputs)
    attrs = ", ".join(f"{k}={format_attr(node.attrs[k])}" for k in sorted(node.attrs) if k != "value"
                      or np.asarray(node.attrs[k]).size <= 4)
    text = f"{names[id(node.out)]}: {node.out.type_str()} = {node.op}" + (f" {args}" if args else "") \
        + (f" {{{attrs}}}" if attrs else "")
    if node.loc:
        text += f"   ({os.path.basename(node.loc[0])}:{node.loc[1]})"
    return text


def param_name(ir_name):
    """A Python identifier for an IR value's name: inputs keep theirs, numbered values become v<n>."""
    bare = ir_name.lstrip("%")
    text = re.sub(r"\W", "_", bare)
    return f"v{text}" if not text or text[0].isdigit() else text
