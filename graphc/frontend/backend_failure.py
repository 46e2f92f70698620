"""Turn any failure inside a backend's compile or first run into one readable graphc BackendError.

    raise backend_failure(exc, "numba_cpu", "compiling", graph) from None
    # numba_cpu: failed while compiling graph 'step': UnsupportedError: Calling a closure with *args ...
    #   at train.py:12   loss = F.cross_entropy(net(x), y)
    #   kernel fused_mul_tanh_sub_1, IR lines: %0: f32[3,4] = mul %x, %param1 ...
    #   help: compile with backend="interpreter" (or set GRAPHC_FALLBACK=interpreter to fall back automatically)

A BackendError the backend raised keeps its words and gains the way out. Otherwise it knows no
backend: it reads what the exception says. A generated-source backend's errors name the
generated file and line (`File ".../graphc_<hash>.py", line 47`); that line's kernel, the IR lines the
kernel lists in its comments and their user locations make the message.
"""
from __future__ import annotations

import os
import re
import traceback

from ..errors import BackendError, GraphcError

# `File "/cache/graphc_0123abcd.py", line 47` in numba's messages, or a traceback frame in such a file.
_GENERATED_LINE = re.compile(r'File "([^"]*graphc_[0-9a-f]+\.py)", line (\d+)')
_DEF = re.compile(r"^def (\w+)\(")
_CALL = re.compile(r"^\s+(\w+)\(")
_IR_COMMENT = re.compile(r"^\s+# (%\S+: .*?)(?:   \(([^()]*):(\d+)\))?$")
_MAX_IR_LINES = 6


def fallback_hint(backend_name):
    if backend_name == "interpreter":
        return "run the function without graphc.compile to check it eagerly, and report this as a graphc bug"
    return 'compile with backend="interpreter" (or set GRAPHC_FALLBACK=interpreter to fall back automatically)'


def backend_failure(exc, backend_name, phase, graph):
    """A BackendError for `exc` raised while `phase` ("compiling", "the first run of") `graph` on a backend."""
    kernel, ir_lines, user_loc = _locate(exc, graph)
    detail = None
    if kernel:
        shown = "; ".join(ir_lines[:_MAX_IR_LINES]) + (" ..." if len(ir_lines) > _MAX_IR_LINES else "")
        detail = f"kernel {kernel}" + (f", IR lines: {shown}" if shown else "")
    if isinstance(exc, BackendError):   # the backend's own words stay; the way out is added if missing
        hint = exc.hint if exc.hint and "interpreter" in exc.hint else \
            "; ".join(h for h in (exc.hint, fallback_hint(backend_name)) if h)
        detail = "; ".join(d for d in (exc.detail, detail) if d) or None
        err = BackendError(exc.op, exc.message, hint=hint, loc=exc.loc or user_loc, detail=detail)
    else:
        message = f"failed while {phase} graph {graph.name!r}: {type(exc).__name__}: {_gist(exc)}".rstrip(": ")
        err = BackendError(backend_name, message, hint=fallback_hint(backend_name), loc=user_loc, detail=detail)
    err.kernel = kernel
    return err


def _gist(exc):
    """The message's first line, and its second when the first only says where it failed (numba's
    "Failed in nopython mode pipeline (step: ...)" is followed by what failed)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) >= 2 and lines[0].startswith("Failed in") and not lines[1].startswith("File "):
        return f"{lines[0]}: {lines[1]}"
    return lines[0] if lines else ""


def _locate(exc, graph):
    """(kernel name, its IR lines, a user location) from the generated lines an exception names, or Nones."""
    for path, lineno in _generated_lines(exc):
        try:
            with open(path) as f:
                source = f.read().splitlines()
        except OSError:
            continue
        kernel = _kernel_at(source, lineno)
        if kernel:
            ir_lines, where = _kernel_comments(source, kernel)
            return kernel, ir_lines, _user_loc(where, graph)
    return None, [], None


def _generated_lines(exc):
    """(path, line) of generated-source lines named by exc, its causes and their tracebacks, innermost first."""
    found, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc) + "".join(traceback.format_tb(exc.__traceback__))
        found.extend((p, int(n)) for p, n in _GENERATED_LINE.findall(text))
        exc = exc.__cause__ or exc.__context__
    return found[::-1]


def _kernel_at(source, lineno):
    """The kernel a generated line belongs to; for a call in the driver, the kernel it calls."""
    if not 1 <= lineno <= len(source):
        return None
    line = source[lineno - 1]
    for j in range(lineno - 1, -1, -1):
        match = _DEF.match(source[j])
        if match:
            if match.group(1) == "driver":
                call = _CALL.match(line)
                return call.group(1) if call else "driver"
            return match.group(1)
    return None


def _kernel_comments(source, kernel):
    """The IR lines listed in a kernel's comments, and the first (file, line) user location among them."""
    start = next((i for i, line in enumerate(source) if line.startswith(f"def {kernel}(")), None)
    ir_lines, where = [], None
    if start is None:
        return ir_lines, where
    for line in source[start + 1:]:
        match = _IR_COMMENT.match(line)
        if not match:
            if line.strip().startswith("#"):
                continue
            break
        ir_lines.append(match.group(1))
        if where is None and match.group(2):
            where = (match.group(2), int(match.group(3)))
    return ir_lines, where


def _user_loc(where, graph):
    """The graph node location (filename, lineno, line) that a `(file.py:12)` comment points to."""
    if where is None:
        return None
    name, lineno = where
    for node in graph.nodes:
        loc = node.loc
        if loc and loc[1] == lineno and os.path.basename(loc[0]) == name:
            return loc
    return (name, lineno, "")
