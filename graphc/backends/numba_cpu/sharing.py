"""One compiled function for kernels whose code is the same: a model's repeated blocks compile once.

    before: sum_1(param1, v1); sum_3(param4, v19); ... 100 kernels `acc += a0[i0]` over 6 elements
    after:  sum_1(param1, v1); sum_1(param4, v19); ... one kernel, compiled once, called 100 times

Kernels are inlined into the driver at numba's IR level (see emit.KERNEL_DECORATOR), so 100 copies
of one body cost numba 100 times the typing and LLVM work: Adam over 50 parameter tensors spent
~85 s there for 191 kernels of 13 distinct bodies.  A body that occurs twice or more is emitted
once, out of line (numba compiles a dispatcher once per signature), and every call site calls it.
Two kernels share code when their text is equal apart from their name and their IR comments; the
shared kernel's comments keep its first IR lines and name the kernels it stands for.
"""
from __future__ import annotations

import re

DEF = re.compile(r"^def (\w+)\(")


class SharedKernels:
    """Collects the kernels an emitter writes, drops repeated bodies, and redirects their calls."""

    def __init__(self):
        self.first = {}      # code key -> (name of the kernel that keeps it, index of its decorator line)
        self.alias = {}      # name of a dropped kernel -> name of the kernel whose code it calls
        self.sharers = {}    # kept name -> [dropped names]

    def add(self, body, start):
        """Look at the lines body.lines[start:] one kernel just emitted; drop them if their code was seen."""
        chunk = body.lines[start:]
        defs = [i for i, line in enumerate(chunk) if DEF.match(line)]
        if len(defs) != 1:
            return    # nothing emitted, or helper functions beside the kernel: keep as written
        name = DEF.match(chunk[defs[0]]).group(1)
        pattern = re.compile(rf"\b{re.escape(name)}\b")
        key = tuple(pattern.sub("K", line) for line in chunk if line.strip() and not line.lstrip().startswith("#"))
        if key in self.first:
            kept = self.first[key][0]
            self.alias[name] = kept
            self.sharers[kept].append(name)
            del body.lines[start:]
        else:
            self.first[key] = (name, start + defs[0])
            self.sharers[name] = []

    def finish(self, body, steps, inline_decorator, out_of_line_decorator):
        """Shared kernels go out of line; calls of dropped kernels call the kept one.  Returns the name
        of the kernel each step stands for (the dropped kernel's own name where it calls shared code)."""
        for name, at in sorted(self.first.values(), key=lambda e: e[1], reverse=True):   # inserts shift later lines
            sharers = self.sharers[name]
            if not sharers:
                continue
            if at and body.lines[at - 1] == inline_decorator:
                body.lines[at - 1] = out_of_line_decorator
            shown = ", ".join(sharers[:4]) + (f" and {len(sharers) - 4} more" if len(sharers) > 4 else "")
            body.lines.insert(at + 1, f"    # the same code also runs {shown}: compiled once, out of line")
        own = []
        for i, (kind, line) in enumerate(steps):
            called = line.split("(", 1)[0]
            own.append(called)
            if called in self.alias:
                steps[i] = (kind, self.alias[called] + line[len(called):])
        return own
