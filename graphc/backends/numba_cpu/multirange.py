"""One loop nest for a run of elementwise kernels with the same body: the optimizer update over every parameter.

    before: fused_mul_add_sub_61(buf_w1, momentum, g_w1, lr, w1, ...); ... one loop per parameter
    after:  fused_mul_add_sub_61_x4((buf_w1, buf_b1, ...), momentum, (g_w1, g_b1, ...), lr, (w1, b1, ...), ...)
            for p in range(4):                  # each parameter's flat range in turn
                for i in range(o0[p].shape[0]):
                    ...                         # the body, compiled once instead of four times

The parameters stay separate planned buffers (often updated in place), so the kernel takes a tuple
of flat views per operand and walks one (array, length) range after the other.  A run is formed
from kernels that are adjacent in execution order (nothing else runs between them, so buffer reuse
in the memory plan stays valid), whose nodes and literals match, whose array operands are contiguous
and as large as the output, and whose 0-d operands (lr, momentum) are the same values.
"""
from __future__ import annotations

import numpy as np

from ..codegen.names import ir_line
from ..codegen.scalar import expr, literal_of, typed

SKIP_OPS = {"one_hot", "uniform", "broadcast_to"}   # they need the kernel's own index space
MIN_RUN = 2


def body_signature(em, k):
    """What must match for two kernels to share one loop body, or None when `k` cannot join a run.

        fused_mul_add_sub_61 -> (("mul", ...), ...): ops, attributes, dtypes, where each operand comes from
    """
    if k.kind != "elementwise" or not em.plan.writes(k) or any(n.op in SKIP_OPS for n in k.nodes):
        return None
    shape = tuple(k.shape)
    ext = [v for v in k.inputs if not em.inline(v)]
    for v in ext:
        if v.shape and (tuple(v.shape) != shape or not em._contiguous(v)):
            return None
    where = {id(v): ("scalar", id(v)) if not v.shape else ("array", i) for i, v in enumerate(ext)}
    inside = {id(n.out): j for j, n in enumerate(k.nodes)}
    writes = {id(v): i for i, v in enumerate(em.plan.writes(k))}
    sig = []
    for n in k.nodes:
        ins = []
        for v in n.inputs:
            if id(v) in inside:
                ins.append(("temp", inside[id(v)]))
            elif em.inline(v):
                ins.append(("literal", literal_of(v)))
            else:
                ins.append(where[id(v)])
        sig.append((n.op, repr(sorted(n.attrs.items())), n.out.dtype.name, tuple(ins), writes.get(id(n.out))))
    return tuple(sig), tuple(v.dtype.name for v in ext), len(ext)


def runs_of(em, kernels):
    """{id(first kernel): [kernels of the run]} for runs of >= MIN_RUN adjacent kernels with one body."""
    runs, current, current_sig = {}, [], None
    for k in kernels:
        if k.kind in ("view", "const") or not k.outputs or (k.kind == "elementwise" and not em.plan.writes(k)):
            continue   # not emitted: nothing runs in between
        sig = body_signature(em, k)
        if sig is not None and sig == current_sig:
            current.append(k)
            continue
        if len(current) >= MIN_RUN:
            runs[id(current[0])] = current
        current, current_sig = ([k], sig) if sig is not None else ([], None)
    if len(current) >= MIN_RUN:
        runs[id(current[0])] = current
    return runs


def emit_run(em, run, body, decorator):
    """Write one kernel for `run` (kernels with one body signature) and its call."""
    first = run[0]
    ext0 = [v for v in first.inputs if not em.inline(v)]
    writes0 = em.plan.writes(first)
    name = f"{first.name}_x{len(run)}"
    args = [f"a{i}" for i in range(len(ext0))] + [f"o{i}" for i in range(len(writes0))]
    body.line(decorator)
    body.line(f"def {name}({', '.join(args)}):")
    body.level += 1
    body.line(f'"""{len(run)} kernels with one body, as one loop over their flat ranges (multirange.py)."""')
    for k in run:
        body.line(f"# kernel {k.name} ({'x'.join(str(d) for d in k.shape) or 'scalar'}):")
        for node in k.nodes:
            body.line("#   " + ir_line(node, em.names))
    scalar = {}
    for i, v in enumerate(ext0):
        if not v.shape:
            scalar[i] = f"s{i}"
            body.line(f"s{i} = a{i}[()]")
    body.line(f"for p in range({len(run)}):")
    body.level += 1
    for i, v in enumerate(ext0):
        if v.shape:
            body.line(f"A{i} = a{i}[p]")
    for i in range(len(writes0)):
        body.line(f"O{i} = o{i}[p]")
    body.line("for i in range(O0.shape[0]):")
    body.level += 1
    arg_of = {id(v): i for i, v in enumerate(ext0)}
    outs = {id(v): i for i, v in enumerate(writes0)}
    temps, loaded = {}, {}

    def read(v):
        if id(v) in temps:
            return temps[id(v)]
        if em.inline(v):
            return literal_of(v)
        i = arg_of[id(v)]
        if i in scalar:
            return scalar[i]
        if i not in loaded:
            body.line(f"x{i} = A{i}[i]")
            loaded[i] = f"x{i}"
        return loaded[i]

    for j, n in enumerate(first.nodes):
        body.line(f"t{j} = {typed(expr(n, [read(v) for v in n.inputs]), n.out.dtype)}")
        temps[id(n.out)] = f"t{j}"
        if id(n.out) in outs:
            body.line(f"O{outs[id(n.out)]}[i] = t{j}")
    body.level -= 3

    def operand(position, values):
        if not values[0].shape:
            return em.var(values[0])      # the same 0-d value for every kernel of the run
        flat = [em.view_param(v, (int(np.prod(v.shape)),)) if len(v.shape) != 1 else em.var(v) for v in values]
        return "(" + ", ".join(flat) + ",)"

    exts = [[v for v in k.inputs if not em.inline(v)] for k in run]
    outs_all = [em.plan.writes(k) for k in run]
    call = [operand(i, [e[i] for e in exts]) for i in range(len(ext0))] + \
           [operand(i, [o[i] for o in outs_all]) for i in range(len(writes0))]
    for k in run:
        em.kernel_locs[k.name] = k.nodes[0].loc
        em.kernel_nodes[k.name] = k.nodes
    em.kernel_locs[name] = first.nodes[0].loc
    em.kernel_nodes[name] = [n for k in run for n in k.nodes]
    em.steps.append(("njit", f"{name}({', '.join(call)})"))
