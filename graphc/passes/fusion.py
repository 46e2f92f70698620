"""Fusion: group the graph's nodes into kernels, each one loop nest (or one library call).

    before:  %2 = add %1, %b    %3 = relu %2           (two elementwise nodes of shape [64,128])
    after:   kernel fused_add_relu_2 (elementwise [64,128]) { %2 = add %1, %b; %3 = relu %2 }

Rules, in order:
  * elementwise ops (and broadcast_to / one_hot / full / uniform, which read or make values
    elementwise) of the same output shape join one group when that creates no cycle;
  * a reduction swallows the elementwise group that feeds it when nothing else reads that group;
  * a reduction over the last axis of [R, C] joins the elementwise kernels around it that work on the
    same rows ([R, C] broadcasts and [R, 1] / [R] row values): one `rowwise` kernel, a loop over rows
    with a few passes over each row (softmax: max -> sub -> exp -> sum -> div is one kernel);
  * everything else (matmul, conv, pooling, movement) is a kernel of its own;
  * chains that only share an input stay apart once their kernel would take more than
    MAX_SIDEWAYS_ARGS arrays (see _too_wide).
Every rejected merge of two adjacent groups is logged with its reason under GRAPHC_LOG=fusion.
"""
from __future__ import annotations

from ..config import log
from ..ops import OPS, REDUCE

# Fusing side by side, through a value another chain also reads, saves one read of that value;
# numba pays ~17 ms of compile per kernel argument. Adam over 50 tensors glued its 50 step-count
# chains into one kernel of 203 arrays (7 s to compile); kept apart, they are 50 copies of one small
# kernel that the emitter compiles once (backends/numba_cpu/sharing.py).
MAX_SIDEWAYS_ARGS = 32


def is_loop_op(node):
    """Whether the node joins an elementwise loop nest (the op table's `fuse` facet).   is_loop_op(relu) -> True"""
    return OPS[node.op].fuse == "loop"


def is_view_op(node):
    """Whether the node aliases its input's storage.   is_view_op(reshape) -> True"""
    return OPS[node.op].fuse == "view"


class Kernel:
    """A group of nodes that becomes one generated function (or one view in the driver)."""

    def __init__(self, kind, nodes):
        self.kind = kind
        self.nodes = list(nodes)
        self.inputs = []     # Values read from outside, in first-use order
        self.outputs = []    # Values produced here and needed outside
        self.name = ""

    @property
    def shape(self):
        """The iteration space: the output shape of the last node (elementwise) or the reduce input."""
        if self.kind == "reduce":
            return self.nodes[-1].inputs[0].shape
        if self.kind == "rowwise":
            return self.rows
        return self.nodes[-1].out.shape

    def __repr__(self):
        return f"<Kernel {self.name} {self.kind} {[n.op for n in self.nodes]}>"


class FusedGraph:
    """The graph plus its kernels in execution order."""

    def __init__(self, graph, kernels):
        self.graph = graph
        self.kernels = kernels

    def __str__(self):
        from ..ir.printer import print_graph, value_names
        annotated = "fused" in getattr(self.graph, "annotations", {})
        text = print_graph(self.graph)
        return text if annotated else text + "\n" + self.describe(value_names(self.graph))

    def describe(self, names):
        """One line per kernel: name, kind and loop shape, what it reads and writes, the nodes inside.

            kernel fused_add_relu_2 (elementwise [64, 128]) (%1, %b) -> (%3) { %2 = add; %3 = relu }
        """
        lines = ["", f"// {len(self.kernels)} kernels"]
        for k in self.kernels:
            ins = ", ".join(names.get(id(v), "?") for v in k.inputs)
            outs = ", ".join(names.get(id(v), "?") for v in k.outputs)
            body = "; ".join(f"{names[id(n.out)]} = {n.op}" for n in k.nodes)
            lines.append(f"kernel {k.name} ({k.kind} {list(k.shape)}) ({ins}) -> ({outs}) {{ {body} }}")
        return "\n".join(lines)


def fuse_pass(graph, rows=True):
    """The fusion pass: annotates the graph with its kernels (graph.annotations["fused"]); the nodes
    are unchanged, and the printer shows the kernel groups under the graph."""
    annotate(graph, "fused", fuse(graph, rows=rows))
    return graph


def fuse_pass_without_rows(graph):
    """The fusion pass for a backend that has no row-wise kernels (numba_cuda)."""
    return fuse_pass(graph, rows=False)


def annotate(graph, key, note):
    """Attach a backend pass's result (anything with describe(names)) to the graph it describes."""
    if not hasattr(graph, "annotations"):
        graph.annotations = {}
    graph.annotations[key] = note


def annotation(graph, key):
    """The annotation a backend pass left on this graph, or None."""
    return getattr(graph, "annotations", {}).get(key)


def fuse(graph, rows=True):
    """Group nodes into kernels; returns a FusedGraph (the graph itself is unchanged).

    rows=False leaves out row-wise kernels, for a backend that cannot lower them (numba_cuda)."""
    group_of = {}          # id(node) -> group index
    groups = []            # list of lists of nodes (None when merged away)
    ancestors = []         # per group: set of group ids it (transitively) depends on
    parent = []

    def find(g):
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def producer_group(value):
        node = value.node
        return None if node is None else find(group_of[id(node)])

    def deps_of(node):
        deps = set()
        for v in node.inputs:
            g = producer_group(v)
            if g is not None:
                deps.add(g)
                deps |= {find(a) for a in ancestors[g]}
        return deps

    users = graph.users()
    kept = {id(v) for v in graph.outputs} | {id(v) for pair in graph.updates for v in pair}
    for node in graph.nodes:
        gid = len(groups)
        groups.append([node])
        parent.append(gid)
        ancestors.append(deps_of(node))
        group_of[id(node)] = gid
        if not is_loop_op(node):
            continue
        for v in node.inputs:
            pg = producer_group(v)
            if pg is None or pg == find(gid):
                continue
            reason = _why_not_fuse(groups[pg], node)
            mine = find(gid)
            if reason is None and (_path_between(pg, mine, ancestors, find) or _path_between(mine, pg, ancestors, find)):
                reason = "merging would create a cycle (another kernel sits between them)"
            if reason is None and _too_wide(v, node, groups[pg] + groups[mine], users, kept):
                reason = f"side by side through {v.type_str()}, the kernel would take over {MAX_SIDEWAYS_ARGS} arrays"
            if reason is not None:
                log("fusion", f"not fusing {groups[pg][-1].op} into {node.op} "
                              f"({node.out.type_str()}): {reason}")
                continue
            groups[pg].extend(groups[mine])
            groups[mine] = None
            parent[mine] = pg
            ancestors[pg] = {find(a) for a in ancestors[pg] | ancestors[mine]} - {pg}
    kernels = _order_kernels(graph, groups, find, group_of)
    kernels = _fuse_reduce_prologues(graph, kernels)
    if rows:
        kernels = _fuse_rows(kernels)
    _finish(graph, kernels)
    return FusedGraph(graph, kernels)


def _too_wide(value, node, nodes, users, kept):
    """Whether joining `node` to the group making `value` is a side-by-side merge of too many arrays.

    Side by side: `value` already has a reader inside that group, so the merge joins two chains
    that share an input rather than extending one chain (a chain of any length stays one kernel).
    Arrays counted: values read from outside the merged group plus values it writes for others.
    """
    members = {id(n) for n in nodes}
    if not any(id(u) in members for u in users.get(id(value), ()) if u is not node):
        return False
    reads = {id(v) for n in nodes for v in n.inputs if v.node is None or id(v.node) not in members}
    writes = [n for n in nodes
              if id(n.out) in kept or any(id(u) not in members for u in users.get(id(n.out), ()))]
    return len(reads) + len(writes) > MAX_SIDEWAYS_ARGS


def _path_between(a, b, ancestors, find):
    """Does group b depend on group a through some third group?"""
    for c in {find(x) for x in ancestors[b]}:
        if c not in (a, b) and a in {find(x) for x in ancestors[c]}:
            return True
    return False


def _why_not_fuse(group_nodes, node):
    last = group_nodes[-1]
    if not all(is_loop_op(n) for n in group_nodes):
        return f"producer {last.op} is a {OPS[last.op].kind} op, not elementwise"
    if last.out.shape != node.out.shape:
        return f"iteration shapes differ: {list(last.out.shape)} vs {list(node.out.shape)}"
    return None


def _order_kernels(graph, groups, find, group_of):
    """Kernels in a topological order of their dependencies, earliest first node first."""
    import networkx as nx
    position = {id(n): i for i, n in enumerate(graph.nodes)}
    live = {}
    for g in groups:
        if g is not None:
            g.sort(key=lambda n: position[id(n)])
            live[find(group_of[id(g[0])])] = g
    dag = nx.DiGraph()
    dag.add_nodes_from(live)
    for gid, g in live.items():
        for n in g:
            for v in n.inputs:
                if v.node is not None:
                    src = find(group_of[id(v.node)])
                    if src != gid:
                        dag.add_edge(src, gid)
    order = nx.lexicographical_topological_sort(dag, key=lambda gid: position[id(live[gid][0])])
    kernels = []
    for gid in order:
        g = live[gid]
        kind = "elementwise" if all(is_loop_op(n) for n in g) else kind_of(g[-1])
        kernels.append(Kernel(kind, g))
    return kernels


def is_strided(value):
    """True when value is a view whose elements are not in row-major order (a permute, or a reshape of one).

        is_strided(permute(x, (1, 0))) -> True;  is_strided(reshape(x, (6,))) -> False
    """
    node = value.node
    while node is not None and is_view_op(node):
        if node.op == "permute" and list(node.attrs["perm"]) != sorted(node.attrs["perm"]):
            return True
        node = node.inputs[0].node
    return False


def unfused(graph):
    """Every node its own kernel (what debugging wants: every value at a kernel boundary)."""
    kernels = [Kernel("elementwise" if is_loop_op(n) else kind_of(n), [n]) for n in graph.nodes]
    _finish(graph, kernels)
    return FusedGraph(graph, kernels)


def kind_of(node):
    """The kernel kind of a node that is not fused into a loop:  kind_of(reshape) -> 'view'."""
    if node.op == "reshape" and is_strided(node.inputs[0]):
        return "reshape"   # NOTE: reshaping a transposed layout needs a copy: its own kernel, never a view
    if is_view_op(node):
        return "view"
    if node.op == "const":
        return "const"
    if OPS[node.op].kind == REDUCE:
        return "reduce"
    return node.op


_kind_of = kind_of   # the old private name, until graphc.debug uses unfused() and kind_of


def _fuse_reduce_prologues(graph, kernels):
    """A reduce kernel absorbs the elementwise kernel feeding it when that kernel has no other reader."""
    readers = {}
    for k in kernels:
        for n in k.nodes:
            for v in n.inputs:
                readers.setdefault(id(v), set()).add(id(k))
    roots = {id(v) for v in graph.outputs} | {id(new) for _, new in graph.updates}
    producer = {}
    for k in kernels:
        for n in k.nodes:
            producer[id(n.out)] = k
    merged = set()
    for k in kernels:
        if k.kind != "reduce":
            continue
        src = k.nodes[-1].inputs[0]
        pk = producer.get(id(src))
        if pk is None or pk.kind != "elementwise" or id(pk) in merged:
            continue
        if pk.shape != src.shape:
            continue
        outside = [n for n in pk.nodes if id(n.out) in roots or (readers.get(id(n.out), set()) - {id(k), id(pk)})]
        if outside:
            log("fusion", f"not fusing {pk.nodes[-1].op} into reduce {k.nodes[-1].op}: "
                          f"{outside[0].op} is also read by another kernel")
            continue
        if any(n.op in ("uniform", "one_hot") for n in pk.nodes):   # they need their own loop indices
            continue
        k.nodes = pk.nodes + k.nodes
        merged.add(id(pk))
    return [k for k in kernels if id(k) not in merged]


def row_reduction(kernel):
    """(R, C) when `kernel` reduces the last axis of an [R, C] value (R != C, C > 1), else None.

        sum %x {axes=(1,), keepdim=True} over f32[64,10] -> (64, 10)
    """
    red = kernel.nodes[-1]
    if kernel.kind != "reduce" or red.op == "argmax" or len(red.inputs[0].shape) != 2:
        return None
    rows, cols = red.inputs[0].shape
    if tuple(red.attrs.get("axes") or ()) != (1,) or rows == cols or cols < 2:
        return None   # rows == cols: an [R] value would broadcast along the columns, not the rows
    if any(n.op in ("uniform", "one_hot") for n in kernel.nodes[:-1]):
        return None
    return rows, cols


def _fits_rows(kernel, rows, cols):
    """Can this elementwise kernel run inside a row-wise kernel over [rows, cols]?"""
    if kernel.kind == "rowwise":
        return kernel.rows == (rows, cols)
    if kernel.kind == "reduce":
        return row_reduction(kernel) == (rows, cols)
    if kernel.kind != "elementwise" or any(n.op == "uniform" for n in kernel.nodes):
        return False
    return tuple(kernel.shape) in ((rows, cols), (rows, 1), (rows,))


def _fuse_rows(kernels):
    """Merge each run of adjacent kernels over the same rows around a row reduction into one rowwise kernel.

        max_16 (reduce [64,10]); fused_sub_exp_17 ([64,10]); sum_18 (reduce [64,10]); log_19 ([64,1])
        -> rowwise_16 (rowwise [64, 10]) { %8 = max; %9 = sub; %10 = exp; %11 = sum; %12 = log }

    Views and consts in between are stepped over (the runner makes them; they have no place in
    the order) unless they view a value of the run.  The merged kernel sits where the run's last
    kernel was: everything it reads comes before, everything reading it comes after, so no cycle.
    """
    out = list(kernels)
    i = 0
    while i < len(out):
        key = row_reduction(out[i])
        if key is None:
            i += 1
            continue
        start = i
        while start > 0 and _fits_rows(out[start - 1], *key):
            start -= 1
        run, made, end = [], set(), start
        for j in range(start, len(out)):
            k = out[j]
            if k.kind in ("view", "const"):
                if any(id(v) in made for n in k.nodes for v in n.inputs):
                    break
                continue
            if not _fits_rows(k, *key):
                break
            run.append(k)
            made |= {id(n.out) for n in k.nodes}
            end = j
        if len(run) < 2:
            i += 1
            continue
        merged = Kernel("rowwise", [n for k in run for n in k.nodes])
        merged.rows = key
        others = [k for k in out[start:end + 1] if all(k is not r for r in run)]
        log("fusion", f"row-wise kernel over {list(key)}: {len(run)} kernels -> 1")
        out[start:end + 1] = others + [merged]
        i = start + len(others) + 1
    return out


def _finish(graph, kernels):
    """Fill each kernel's inputs/outputs and give it a name that says what is inside."""
    roots = {id(v) for v in graph.outputs} | {id(new) for _, new in graph.updates}
    readers = {}
    for k in kernels:
        for n in k.nodes:
            for v in n.inputs:
                readers.setdefault(id(v), set()).add(id(k))
    for index, k in enumerate(kernels):
        inside = {id(n.out) for n in k.nodes}
        seen = set()
        for n in k.nodes:
            for v in n.inputs:
                if id(v) not in inside and id(v) not in seen:
                    seen.add(id(v))
                    k.inputs.append(v)
        k.outputs = [n.out for n in k.nodes
                     if id(n.out) in roots or (readers.get(id(n.out), set()) - {id(k)})]
        ops = []
        for n in k.nodes:
            if n.op not in ops:
                ops.append(n.op)
        prefix = "fused_" if len(k.nodes) > 1 else ""
        k.name = f"{prefix}{'_'.join(ops[:4])}{'_etc' if len(ops) > 4 else ''}_{index}"
