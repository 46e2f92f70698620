"""The pass manager: runs a readable list of passes, verifying, timing, counting and dumping each.

    pm = PassManager([("autodiff", autodiff), ("simplify", simplify), ("cse", cse), ("dce", dce)],
                     log=print)
    g = pm.run(g, dump_dir="/tmp/ir")
    // IR after simplify (41 -> 12 nodes)                 <- what `log` receives, once per pass
    pm.stages["simplify"]  -> the IR text after simplify    /tmp/ir/step.02.simplify.ir
"""
from __future__ import annotations

import os
import re
import textwrap
import time
from collections import OrderedDict

from ..errors import IRError
from ..fileio import write_atomic
from ..ir import print_graph, verify

__all__ = ["PassManager"]


class PassManager:
    """Run `passes` (a list of (name, fn) with fn: Graph -> Graph) in order.

    With `dump_dir` (here or in run), each stage is also written to
    `<dump_dir>/<graph name>.<index>.<pass>.ir`, its banner on the first line.
    After a run: `stages` maps "trace" (the input; see `first_stage`) and then each pass name to
    the IR text after it, `timings` maps pass name -> seconds, `node_counts` maps pass name ->
    (nodes before, nodes after). A name that repeats in the list gets a suffix in these dicts:
    "dce", "dce#2". With `verify_each`, the input and the graph after every pass are verified,
    and a broken graph raises IRError naming the pass that broke it.
    """

    def __init__(self, passes, verify_each=True, log=None, first_stage="trace", print_ir=False, dump_dir=None):
        self.passes = [(str(name), fn) for name, fn in passes]
        self.dump_dir = dump_dir            # the default for run(); run(g, dump_dir=...) overrides it
        self.verify_each = verify_each
        self.log = log                      # log(banner) per pass; with print_ir the IR follows it
        self.first_stage = first_stage
        self.print_ir = print_ir
        self.stages: OrderedDict[str, str] = OrderedDict()
        self.timings: OrderedDict[str, float] = OrderedDict()
        self.node_counts: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def run(self, graph, dump_dir=None):
        """Run every pass on `graph` (in place where the passes work in place); return the result."""
        dump_dir = dump_dir if dump_dir is not None else self.dump_dir
        self.stages.clear()
        self.timings.clear()
        self.node_counts.clear()
        if self.verify_each:
            self._verify(graph, f"the input ({self.first_stage})", "")
        self._record(0, self.first_stage, self.first_stage, graph, dump_dir,
                     f"// IR after {self.first_stage} ({len(graph.nodes)} nodes)")
        for index, (name, fn) in enumerate(self.passes, start=1):
            key = self._key(name)
            before = len(graph.nodes)
            start = time.perf_counter()
            result = fn(graph)
            self.timings[key] = time.perf_counter() - start
            if result is not None:          # an in-place pass may return nothing: keep its graph
                graph = result
            after = len(graph.nodes)
            self.node_counts[key] = (before, after)
            if self.verify_each:
                self._verify(graph, f"pass '{name}'", f"IR after {name}:\n")
            self._record(index, key, name, graph, dump_dir, f"// IR after {name} ({before} -> {after} nodes)")
        return graph

    # --- helpers -----------------------------------------------------------------------------------
    def _key(self, name):
        key, n = name, 1
        while key in self.stages or key == self.first_stage:
            n += 1
            key = f"{name}#{n}"
        return key

    def _verify(self, graph, who, prefix):
        try:
            verify(graph)
        except IRError as e:
            raise IRError("pass manager", f"{who} left an invalid graph: {e.message}",
                          detail=prefix + textwrap.indent(print_graph(graph), "    ") if prefix else None,
                          hint=e.hint, loc=e.loc or ()) from e

    def _record(self, index, key, name, graph, dump_dir, banner):
        text = print_graph(graph)
        self.stages[key] = text
        if self.log is not None:
            self.log(banner + "\n" + text if self.print_ir else banner)
        if dump_dir is not None:
            write_atomic(os.path.join(dump_dir, f"{_safe(graph.name)}.{index:02d}.{_safe(name)}.ir"),
                          banner + "\n" + text + "\n")

    def summary(self):
        """One line per pass: name, nodes before -> after, milliseconds."""
        return "\n".join(f"{key:<16} {b:>5} -> {a:<5} nodes  {1e3 * self.timings[key]:8.2f} ms"
                         for key, (b, a) in self.node_counts.items())


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name)) or "_"
