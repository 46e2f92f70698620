"""Memory planning: give every value a home so a compiled step allocates nothing on steady-state calls.

    plan = plan_memory(fused)      # value -> ("input", i) | ("buffer", pool, offset) | ("view", base) | ("inline", v)
    print(plan)                    # pools of reused flat buffers, and which values share them

Liveness runs over kernels in execution order.  A kernel's outputs get space before its inputs'
space is released, so an output never overlaps an input of the same kernel.  An update
(`%w <- %w_next`) whose new value comes from an elementwise kernel that is the last reader of %w
is computed in place, into the parameter's own storage.
"""
from __future__ import annotations

import numpy as np


class PlanError(AssertionError):
    """The plan has no answer for a value a kernel touches: a planner bug, never bad user input."""


class Plan:
    """Where each value lives, plus the flat pools the runner allocates once."""

    def __init__(self):
        self.home = {}          # id(value) -> ("input", index) | ("buffer", pool, start) | ("view", base value)
        self.pools = []         # [(dtype, n_elements)]
        self.in_place = {}      # id(update value) -> input index it is written into
        self.inline = set()     # ids of values every reader inlines as a literal (full / 0-d const)

    def inlines(self, value):
        """Is `value` a literal (a full or 1-element const) that readers inline instead of loading?"""
        return id(value) in self.inline or (value.node is not None and is_inlinable(value.node)
                                            and self.home.get(id(value)) is None)

    def writes(self, kernel):
        """The outputs `kernel` stores: every output except the literals that all readers inline."""
        return [v for v in kernel.outputs if id(v) not in self.inline]

    def storage(self, value, kernel=None):
        """Where `value` lives; raises (naming the kernel) for a value the plan gave no home."""
        home = self.home.get(id(value))
        if home is None:
            where = f" (touched by kernel {kernel.name})" if kernel is not None else ""
            raise PlanError(f"no storage planned for a {value.type_str()} value{where}")
        return home

    def check(self, fused):
        """Every value a kernel reads or writes has an answer: a home, an inlined literal or a const."""
        for k in fused.kernels:
            if k.kind in ("view", "const"):
                continue
            for v in k.inputs:
                if not (self.inlines(v) or (v.node is not None and v.node.op == "const")):
                    self.storage(v, k)
            for v in self.writes(k):
                self.storage(v, k)

    def describe(self, names):
        """Pools with the values that share them (in order of use), then views, in-place updates, literals.

            // memory plan: 2 pools, 64.0 KiB
            pool0: float32[8192] <- %2, %5
            view: %3 -> %2
        """
        lines = [f"// memory plan: {len(self.pools)} pools, "
                 f"{sum(n * np.dtype(d).itemsize for d, n in self.pools) / 1024:.1f} KiB"]
        for i, (dtype, n) in enumerate(self.pools):
            users = [names.get(k, "?") for k, h in self.home.items() if h[0] == "buffer" and h[1] == i]
            lines.append(f"pool{i}: {np.dtype(dtype).name}[{n}] <- {', '.join(users)}")
        for k, h in self.home.items():
            if h[0] == "view":
                lines.append(f"view: {names.get(k, '?')} -> {names.get(id(h[1]), '?')}")
        for k, idx in self.in_place.items():
            lines.append(f"in place: {names.get(k, '?')} -> input {idx}")
        if self.inline:
            lines.append("inlined literals: " + ", ".join(sorted((names.get(k, "?") for k in self.inline),
                                                                key=lambda n: (len(n), n))))
        return "\n".join(lines)


def loop_kernels_inline(kernel, value):
    """Loop kernels (elementwise, reduce, rowwise) read a full/0-d const as a literal; library kernels need an array."""
    return kernel.kind in ("elementwise", "reduce", "rowwise")


def plan_pass(inline_ok=loop_kernels_inline):
    """The memory planning pass (after fusion): annotates the graph with its Plan (graph.annotations["planned"])."""
    from .fusion import annotate, annotation, fuse_pass

    def planned(graph):
        fused = annotation(graph, "fused")
        if fused is None or fused.graph is not graph:
            fuse_pass(graph)
            fused = annotation(graph, "fused")
        plan = plan_memory(fused, inline_ok)
        plan.fused = fused
        annotate(graph, "planned", plan)
        return graph
    return planned


def is_inlinable(node):
    return node is not None and (node.op == "full" or (node.op == "const" and np.asarray(node.attrs["value"]).size == 1))


def plan_memory(fused, inline_ok):
    """Assign homes.  inline_ok(kernel, value) says whether a kernel can read `value` as a literal."""
    graph = fused.graph
    plan = Plan()
    for i, v in enumerate(graph.inputs):
        plan.home[id(v)] = ("input", i)
    kernels = fused.kernels
    roots = {id(v) for v in graph.outputs} | {id(new) for _, new in graph.updates}

    # Values that never need memory: literals every reader inlines.
    readers = {}
    for k in kernels:
        for v in k.inputs:
            readers.setdefault(id(v), []).append(k)
    for k in kernels:
        for v in k.outputs:
            if is_inlinable(v.node) and id(v) not in roots and all(inline_ok(r, v) for r in readers.get(id(v), [])):
                plan.inline.add(id(v))

    # Views alias their base: reading a view reads the base.
    base_of = {}
    for k in kernels:
        if k.kind == "view":
            base_of[id(k.nodes[-1].out)] = _base(k.nodes[-1].inputs[0], base_of)
    last_read = {}
    for i, k in enumerate(kernels):
        for v in k.inputs:
            last_read[id(_base(v, base_of))] = i

    # Updates computed in place: the producing kernel is elementwise and nobody reads the old value later.
    position = {id(k): i for i, k in enumerate(kernels)}
    producer = {id(v): k for k in kernels for v in k.outputs}
    input_index = {id(v): i for i, v in enumerate(graph.inputs)}
    output_bases = {id(_base(v, base_of)) for v in graph.outputs}
    taken = set()
    for target, new in graph.updates:
        k = producer.get(id(new))
        if k is None or k.kind != "elementwise" or id(target) in output_bases or id(target) in taken:
            continue
        if last_read.get(id(target), -1) > position[id(k)] or _reads_shifted(k, target, base_of):
            continue
        plan.in_place[id(new)] = input_index[id(target)]
        plan.home[id(new)] = ("input", input_index[id(target)])
        taken.add(id(target))

    # Liveness: a value's space is free after the last kernel that reads it (or a view of it).
    end = dict(last_read)
    for v in graph.outputs + [new for _, new in graph.updates]:
        end[id(_base(v, base_of))] = len(kernels)

    free = []   # (dtype, pool index, size)
    pool_sizes = []

    def allocate(value):
        need = value.size
        best = None
        for j, (dtype, pool) in enumerate(free):
            if dtype == value.dtype and pool_sizes[pool][1] >= need and (best is None or
                                                                        pool_sizes[pool][1] < pool_sizes[free[best][1]][1]):
                best = j
        if best is None:
            pool_sizes.append([value.dtype, need])
            return len(pool_sizes) - 1
        _, pool = free.pop(best)
        return pool

    holders = {}   # pool -> set of value ids living in it
    for i, k in enumerate(kernels):
        if k.kind == "view":
            out = k.nodes[-1].out
            plan.home[id(out)] = ("view", k.nodes[-1].inputs[0])
            continue
        for v in k.outputs:
            if id(v) in plan.home or id(v) in plan.inline:
                continue
            pool = allocate(v)
            pool_sizes[pool][1] = max(pool_sizes[pool][1], v.size)
            plan.home[id(v)] = ("buffer", pool, 0)
            holders.setdefault(pool, set()).add(id(v))
        for pool, ids in list(holders.items()):
            if ids and all(end.get(vid, -1) <= i for vid in ids):
                free.append((pool_sizes[pool][0], pool))
                holders[pool] = set()
    plan.pools = [(np.dtype(d), n) for d, n in pool_sizes]
    plan.check(fused)
    return plan


def _base(value, base_of):
    return base_of.get(id(value), value)


def _reads_shifted(kernel, target, base_of):
    """True when the kernel reads `target` other than element for element at the output's index."""
    out_shape = kernel.shape
    for v in kernel.inputs:
        if _base(v, base_of) is target and (v is not target or v.shape != out_shape):
            return True
    for n in kernel.nodes:
        if any(v is target for v in n.inputs) and n.op in ("broadcast_to", "one_hot"):
            return True
    return False
