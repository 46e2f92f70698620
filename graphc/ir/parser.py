"""Read the printer's canonical text back into a Graph, typing every node with its op's rule.

    g = parse_graph('''
    graph f(%x: f32[2,3] data) {
      %0: f32[2] = sum %x {axes=(1,), keepdim=False}    # model.py:12
      return %0
    }''')
    print_graph(g) == <the same text>

Attribute values are read by a small literal reader that walks an `ast` tree and accepts only
numbers, strings, True/False/None, inf/nan, tuples, lists, dtype names (f32, i64, bool...) and
`array([...], f32)`: nothing in the text is ever evaluated.
"""
from __future__ import annotations

import ast
import re

import numpy as np

from ..errors import IRError
from ..ops import OPS
from .graph import DTYPE_BY_NAME, INPUT_KINDS, Graph, Node, Value, type_str

__all__ = ["parse_graph", "parse_attr", "parse_dtype"]

# A value name: anything the printer can put after '%' that cannot be confused with punctuation.
_NAME = r"[^\s,:{}#%()]+"
_TYPE = r"(?P<dtype>[A-Za-z_][A-Za-z0-9_]*)\[(?P<dims>[0-9,\s]*)\]"
_HEADER = re.compile(r"^graph\s+(?P<name>[^\s(]+)\s*\((?P<params>.*)\)\s*\{\s*$")
_PARAM = re.compile(rf"\s*%(?P<vname>{_NAME})\s*:\s*{_TYPE}\s*(?P<kind>[A-Za-z_]+)?\s*(,|$)")
_NODE = re.compile(rf"^%(?P<vname>{_NAME})\s*:\s*{_TYPE}\s*=\s*(?P<op>[A-Za-z_][A-Za-z0-9_.]*)(?P<rest>.*)$")
_ARG = re.compile(rf"\s*%(?P<vname>{_NAME})\s*")
_LOC = re.compile(r"^#\s*(?P<file>.*):(?P<line>\d+)\s*$")


class _LineError(Exception):
    """A parse problem on the current line; parse_graph adds the line number and text."""


# --- literals ----------------------------------------------------------------------------------

_NAMED_CONSTANTS = {"inf": float("inf"), "nan": float("nan"), "true": True, "false": False}


def parse_dtype(name):
    """A dtype from its printed name (IRError if unknown); see _dtype."""
    try:
        return _dtype(name)
    except _LineError as e:
        raise IRError("parse", str(e), loc=()) from None


def _dtype(name):
    """A dtype from its printed name.   parse_dtype('f32') -> dtype('float32'); parse_dtype('uint64') -> dtype('uint64')"""
    if name in DTYPE_BY_NAME:
        return DTYPE_BY_NAME[name]
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    # Only canonical numpy names ('uint64'), never one-letter codes ('f', 'a') that would hide typos.
    if dtype is None or dtype.name != name:
        raise _LineError(f"unknown dtype {name!r} (expected one of {', '.join(DTYPE_BY_NAME)})")
    return dtype


def _literal(node):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, int, float, str)) or node.value is None:
            return node.value
        raise _LineError(f"unsupported literal {ast.unparse(node)}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand)
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise _LineError(f"cannot negate {ast.unparse(node.operand)}")
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _LineError("'**' is not allowed in an attribute")
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):
        if node.id in _NAMED_CONSTANTS:
            return _NAMED_CONSTANTS[node.id]
        return _dtype(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "array":
        if node.keywords or not 1 <= len(node.args) <= 2:
            raise _LineError("array(...) takes the elements and a dtype: array([1.0, 2.0], f32)")
        data = _literal(node.args[0])
        dtype = _literal(node.args[1]) if len(node.args) == 2 else None
        if dtype is not None and not isinstance(dtype, np.dtype):
            raise _LineError(f"array(...): {ast.unparse(node.args[1])} is not a dtype")
        try:
            return np.array(data, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise _LineError(f"array(...): {e}") from None
    raise _LineError(f"not an attribute literal: {ast.unparse(node)}")


def parse_attr(text):
    """One attribute value from its printed text (never evaluated).   parse_attr('(1, -inf)') -> (1, -inf)"""
    try:
        try:
            tree = ast.parse(text.strip(), mode="eval")
            return _literal(tree.body)
        except SyntaxError as e:
            raise _LineError(f"cannot read attribute value {text!r}: {e.msg}") from None
        except RecursionError:
            raise _LineError("attribute value nested too deeply") from None
    except _LineError as e:
        raise IRError("parse", str(e), loc=()) from None


def _parse_attrs(text):
    """'{a=1, b=(2, 3)}' -> {'a': 1, 'b': (2, 3)}, read as the keywords of a call."""
    inner = text[1:-1].strip()
    if not inner:
        return {}
    try:
        call = ast.parse(f"_({inner})", mode="eval").body
        if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
            raise _LineError(f"attributes must be written key=value: {text}")
        return {kw.arg: _literal(kw.value) for kw in call.keywords}
    except SyntaxError as e:
        raise _LineError(f"cannot read attributes {text}: {e.msg}") from None
    except RecursionError:
        raise _LineError("attribute value nested too deeply") from None


def _match_brace(text, start):
    """Index just past the '}' closing the '{' at `start`, skipping quoted strings."""
    depth, i, quote = 0, start, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise _LineError("unbalanced '{' in the attributes")


# --- pieces of a line ----------------------------------------------------------------------------

def _parse_type(dtype_name, dims):
    dims = dims.strip()
    shape = tuple(int(d) for d in dims.split(",")) if dims else ()
    return shape, _dtype(dtype_name)


def _parse_params(text):
    params, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _PARAM.match(text, pos)
        if not m:
            raise _LineError(f"cannot read graph input at {text[pos:]!r}; expected '%name: f32[2,3] kind'")
        kind = m["kind"] or "data"
        if kind not in INPUT_KINDS:
            raise _LineError(f"input %{m['vname']} has kind {kind!r}; the kinds are {', '.join(INPUT_KINDS)}")
        params.append((m["vname"], _parse_type(m["dtype"], m["dims"]), kind))
        pos = m.end()
    return params


def _split_args(rest):
    """' %a, %b {k=1}  # f.py:3' -> (['a', 'b'], {'k': 1}, ('f.py', 3, ''))"""
    names, pos = [], 0
    rest = rest.rstrip()
    m = _ARG.match(rest, pos)
    while m:
        names.append(m["vname"])
        pos = m.end()
        if pos < len(rest) and rest[pos] == ",":
            pos += 1
            m = _ARG.match(rest, pos)
            if not m:
                raise _LineError(f"expected a value after ',' at {rest[pos:]!r}")
        else:
            break
    tail = rest[pos:].lstrip()
    attrs = {}
    if tail.startswith("{"):
        end = _match_brace(tail, 0)
        attrs = _parse_attrs(tail[:end])
        tail = tail[end:].lstrip()
    loc = None
    if tail:
        m = _LOC.match(tail)
        if not m:
            raise _LineError(f"unexpected text {tail!r}")
        loc = (m["file"].strip(), int(m["line"]), "")
    return names, attrs, loc


def _values(text):
    text = text.strip()
    if not text:
        return []
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.startswith("%") or len(part) < 2 or re.search(r"\s", part):
            raise _LineError(f"expected a %value, got {part!r}")
        out.append(part[1:])
    return out


# --- the graph -------------------------------------------------------------------------------------

def parse_graph(text):
    """The Graph that `text` (the printer's format) describes; IRError names the bad line."""
    lines = text.splitlines()
    body = [(i + 1, line.strip()) for i, line in enumerate(lines)]
    body = [(n, s) for n, s in body if s and not s.startswith("//")]
    if not body:
        raise IRError("parse", "empty text: expected 'graph name(...) {'", loc=())

    env: dict[str, Value] = {}
    graph = None
    returned = closed = False
    for lineno, line in body:
        try:
            if graph is None:
                m = _HEADER.match(line)
                if not m:
                    raise _LineError("expected 'graph name(%x: f32[2] data, ...) {'")
                graph = Graph(m["name"])
                for name, (shape, dtype), kind in _parse_params(m["params"]):
                    if name in env:
                        raise _LineError(f"input %{name} is declared twice")
                    env[name] = graph.add_input(shape, dtype, kind, name)
            elif closed:
                raise _LineError("text after the closing '}'")
            elif line == "}":
                if not returned:
                    raise _LineError("the graph has no 'return' line")
                closed = True
            elif returned:
                raise _LineError("only '}' may follow the 'return' line")
            elif line == "return" or line.startswith("return ") or line.startswith("return\t"):
                _parse_return(graph, env, line[len("return"):])
                returned = True
            else:
                _parse_node(graph, env, line)
        except _LineError as e:
            raise IRError("parse", f"line {lineno}: {e}", detail=line, loc=()) from None
    if not closed:
        raise IRError("parse", f"line {body[-1][0]}: the graph is not closed with '}}'", detail=body[-1][1], loc=())
    return graph


def _lookup(env, name):
    try:
        return env[name]
    except KeyError:
        raise _LineError(f"%{name} is used but never defined above") from None


def _parse_node(graph, env, line):
    m = _NODE.match(line)
    if not m:
        raise _LineError("expected '%n: f32[2] = op %a, %b {k=v}' or 'return ...'")
    name, op = m["vname"], m["op"]
    if name in env:
        raise _LineError(f"%{name} is defined twice")
    if op not in OPS:
        raise _LineError(f"unknown op {op!r}")
    declared = _parse_type(m["dtype"], m["dims"])
    arg_names, attrs, loc = _split_args(m["rest"])
    inputs = [_lookup(env, a) for a in arg_names]
    unknown = sorted(set(attrs) - set(OPS[op].attrs))
    if unknown:
        raise _LineError(f"op {op!r} has no attribute {', '.join(unknown)} "
                         f"(its attributes: {', '.join(OPS[op].attrs) or 'none'})")
    try:
        shape, dtype = OPS[op].infer(*inputs, **attrs)
    except Exception as e:   # the op's rule rejects the operands: say so with its own words
        raise _LineError(f"{op} rejects its operands: {getattr(e, 'message', e)}") from None
    inferred = (tuple(int(d) for d in shape), np.dtype(dtype))
    if inferred != declared:
        raise _LineError(f"declared type {type_str(*declared)} but {op} gives {type_str(*inferred)}")
    out = Value(*declared)
    node = Node(op, inputs, attrs, out, loc)
    out.node = node
    graph.nodes.append(node)
    env[name] = out


def _parse_return(graph, env, text):
    outs, _, ups = text.partition(" updates ")
    graph.outputs = [_lookup(env, n) for n in _values(outs)]
    for item in (ups.split(",") if ups.strip() else []):
        target, arrow, new = item.partition("<-")
        pair = _values(target), _values(new)
        if not arrow or [len(p) for p in pair] != [1, 1]:
            raise _LineError(f"expected '%target <- %value' in updates, got {item.strip()!r}")
        graph.updates.append((_lookup(env, pair[0][0]), _lookup(env, pair[1][0])))
