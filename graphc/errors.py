"""Error types, and the one formatter that makes every message name op, values, user line and a hint.

    >>> raise ShapeError("matmul", "inner dimensions differ: (2, 3) @ (4, 5)", hint="did you mean w.T?")
    graphc.errors.ShapeError: matmul: inner dimensions differ: (2, 3) @ (4, 5)
      at train.py:12   y = x @ w
      help: did you mean w.T?
"""
from __future__ import annotations

import linecache
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# graphc's own programs (the CLI's models) are user code: their lines are what a reader wants to see.
_USER_DIRS = (os.path.join(_PACKAGE_DIR, "cli") + os.sep,)


def user_frame(skip_package=True):
    """The innermost stack frame outside graphc itself: where the user's code called us.

    user_frame() -> (filename, lineno, source_line) or None
    """
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        path = os.path.abspath(filename)
        if not (skip_package and path.startswith(_PACKAGE_DIR) and not path.startswith(_USER_DIRS)):
            line = linecache.getline(filename, frame.f_lineno).strip()
            return filename, frame.f_lineno, line
        frame = frame.f_back
    return None


def format_location(loc):
    """'at model.py:41   y = x @ w' for a (filename, lineno, line) triple."""
    if not loc:
        return ""
    filename, lineno, line = loc
    return f"at {os.path.basename(filename)}:{lineno}   {line}".rstrip()


class GraphcError(Exception):
    """Base of graphc's errors: op name, what went wrong, where in the user's code, and a hint."""

    def __init__(self, op, message, *, hint=None, loc=None, detail=None):
        self.op = op
        self.message = message
        self.hint = hint
        self.loc = loc if loc is not None else user_frame()
        self.detail = detail
        super().__init__(self._render())

    def _render(self):
        head = f"{self.op}: {self.message}" if self.op else self.message
        lines = [head]
        where = format_location(self.loc)
        if where:
            lines.append("  " + where)
        if self.detail:
            lines.append("  " + self.detail)
        if self.hint:
            lines.append("  help: " + self.hint)
        return "\n".join(lines)


class ShapeError(GraphcError, ValueError):
    """Operand shapes do not fit the op."""


class DTypeError(GraphcError, TypeError):
    """Operand dtypes do not fit the op."""


class GradError(GraphcError, RuntimeError):
    """backward() cannot run as asked."""


class TraceError(GraphcError, RuntimeError):
    """Code inside @graphc.compile cannot be traced into a graph."""


class IRError(GraphcError, ValueError):
    """An IR graph is malformed (verifier) or cannot be parsed."""


class BackendError(GraphcError, RuntimeError):
    """A backend cannot lower or run a graph."""


class DataError(GraphcError, RuntimeError):
    """A data file or checkpoint is missing, corrupt or does not fit."""
