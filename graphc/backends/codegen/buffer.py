"""An indent-aware source buffer (like Inductor's IndentedBuffer).

    buf = IndentedBuffer(); buf.line("def f(x):")
    with buf.indent(): buf.line("return x")
    buf.getvalue() -> "def f(x):\n    return x\n"
"""
import contextlib


class IndentedBuffer:
    """Collects lines of source at the current indentation."""

    def __init__(self, tab="    "):
        self.lines = []
        self.level = 0
        self.tab = tab

    def line(self, text=""):
        self.lines.append((self.tab * self.level + text) if text else "")

    def lines_from(self, text):
        for ln in text.splitlines():
            self.line(ln)

    @contextlib.contextmanager
    def indent(self, n=1):
        self.level += n
        try:
            yield
        finally:
            self.level -= n

    def getvalue(self):
        return "\n".join(self.lines) + "\n"
