"""Row-wise kernels: a loop over the rows of [R, C] with a few passes over each row.

    # %8 = max %7 {axes=(1,)}; %9 = sub %7, %8; %10 = exp %9; %11 = sum %10 {axes=(1,)}; %12 = log %11
    for i0 in range(64):
        acc0 = -np.inf
        for i1 in range(10):          # pass 0: what needs no row result
            acc0 = max(acc0, a0[i0, i1])
        r0 = np.float32(acc0)          # %8, the row's max
        acc3 = 0.0
        for i1 in range(10):          # pass 1: what needs the max
            t1 = np.float32(a0[i0, i1] - r0)
            ...
        r3 = np.float32(acc3)
        r4 = np.float32(math.log(r3))   # row values between passes

Fusion forms them (passes/fusion.py, `_fuse_rows`).  Each node gets a level: the number of row
reductions it waits for.  Row values of level L are computed before pass L; [R, C] values of level
L inside pass L.  A pass that needs an [R, C] value of an earlier pass loads it from the kernel's
output when the kernel stores it, else computes it again (a few flops: rows are short).
"""
from __future__ import annotations

from ...errors import BackendError
from ...ops import OPS, REDUCE
from ..codegen.scalar import NP_TYPE, expr, identity, literal_of, typed


def emit_rowwise(em, k, body):
    """Write kernel `k` (kind "rowwise", k.rows == (R, C)) with emitter `em` into `body`."""
    rows, cols = k.rows
    full = (rows, cols)
    ext = [v for v in k.inputs if not em.inline(v)]
    arg_of = {id(v): f"a{i}" for i, v in enumerate(ext)}
    writes = em.plan.writes(k)
    outs = {id(v): f"o{i}" for i, v in enumerate(writes)}
    inside = {id(n.out): n for n in k.nodes}
    pos = {id(n.out): j for j, n in enumerate(k.nodes)}

    def is_reduce(n):
        return OPS[n.op].kind == REDUCE

    def is_full(v):
        return tuple(v.shape) == full and not is_reduce(v.node)

    level = {}
    for n in k.nodes:   # topological order
        deps = [level[id(v)] for v in n.inputs if id(v) in inside]
        base = max(deps, default=0)
        level[id(n.out)] = base + 1 if is_reduce(n) else base
        if not is_reduce(n) and not is_full(n.out) and any(id(v) in inside and is_full(v) for v in n.inputs):
            raise BackendError(n.op, f"row value {n.out.type_str()} reads a whole row inside a row-wise kernel")

    em._header(k, body, list(arg_of.values()) + list(outs.values()))
    scalars = {key[0]: name for key, name in em._hoist_scalars(ext, arg_of, body).items()}
    body.line(f"for i0 in range({rows}):")
    body.level += 1
    row_temp = {}   # id(value) -> local holding this row's value (row nodes and reduce results)

    def index(src_shape, out_shape, align="right"):
        loop = ["i0", "i1" if len(out_shape) == 2 and out_shape[1] != 1 else "0"][:len(out_shape)]
        off = len(out_shape) - len(src_shape) if align == "right" else 0
        return ", ".join("0" if src_shape[j] == 1 and out_shape[off + j] != 1 else loop[off + j]
                         for j in range(len(src_shape))) or "()"

    def load(v, out_shape, cache, align="right", prefix="y"):
        if id(v) in scalars:
            return scalars[id(v)]
        if em.inline(v):
            return literal_of(v)
        key = (id(v), align)
        if key not in cache:
            name = f"{prefix}{len(cache)}"   # y0: a row-level load; x_2_0: a load in pass 2
            body.line(f"{name} = {arg_of[id(v)]}[{index(v.shape, out_shape, align)}]")
            cache[key] = name
        return cache[key]

    def compute(n, args, t, label=None):
        cast = NP_TYPE[n.out.dtype.name]
        if n.op == "broadcast_to":
            body.line(f"{t} = {args[0]}")
        elif n.op == "one_hot":
            c = n.attrs["num_classes"]
            body.line(f"if {args[0]} < 0 or {args[0]} >= {c}:")
            body.line(f"    raise ValueError('{k.name}: one_hot: a class index is out of range for {c} classes')")
            body.line(f"{t} = {cast}(1 if {args[0]} == i1 else 0)")
        else:
            body.line(f"{t} = {typed(expr(n, args), n.out.dtype)}")

    def store(v, t):
        if id(v) in outs:
            body.line(f"{outs[id(v)]}[{index(v.shape, v.shape if len(v.shape) < 2 else (rows, v.shape[1]))}] = {t}")

    row_cache = {}
    top = max(level.values(), default=0)
    for lvl in range(top + 1):
        # row values of this level (they need only earlier passes' reductions)
        for n in k.nodes:
            if level[id(n.out)] != lvl or is_reduce(n) or is_full(n.out):
                continue
            args = [row_temp[id(v)] if id(v) in inside else load(v, n.out.shape, row_cache) for v in n.inputs]
            t = f"r{pos[id(n.out)]}"
            compute(n, args, t)
            row_temp[id(n.out)] = t
            store(n.out, t)
        reds = [n for n in k.nodes if is_reduce(n) and level[id(n.out)] == lvl + 1]
        wanted = [n for n in k.nodes if is_full(n.out) and level[id(n.out)] == lvl]
        if not reds and not wanted:
            continue
        for n in reds:
            body.line(f"acc{pos[id(n.out)]} = {identity(n.op, n.inputs[0].dtype)}")
        body.line(f"for i1 in range({cols}):")
        body.level += 1
        temps, cache = {}, {}

        def value(v):
            """The expression of an [R, C] or row value at (i0, i1) inside this pass."""
            if id(v) not in inside:
                return load(v, full, cache, prefix=f"x_{lvl}_")
            if id(v) in row_temp:
                return row_temp[id(v)]
            if id(v) in temps:
                return temps[id(v)]
            n = inside[id(v)]
            if level[id(v)] < lvl and id(v) in outs:    # stored by an earlier pass: read it back
                temps[id(v)] = f"{outs[id(v)]}[i0, i1]"
                return temps[id(v)]
            if n.op == "one_hot" and id(n.inputs[0]) not in inside:
                args = [load(n.inputs[0], full, cache, "left", prefix=f"x_{lvl}_")]
            else:
                args = [value(u) for u in n.inputs]
            t = f"t{pos[id(v)]}"
            compute(n, args, t)
            temps[id(v)] = t
            if level[id(v)] == lvl:
                store(v, t)
            return t

        for n in wanted:
            value(n.out)
        for n in reds:
            src = value(n.inputs[0])
            body.line(f"acc{pos[id(n.out)]} = {OPS[n.op].scalar.format(src, acc=f'acc{pos[id(n.out)]}')}")
        body.level -= 1
        for n in reds:
            t = f"r{pos[id(n.out)]}"
            body.line(f"{t} = {NP_TYPE[n.out.dtype.name]}(acc{pos[id(n.out)]})")
            row_temp[id(n.out)] = t
            store(n.out, t)
    body.level -= 2
    em._call(k, [em.var(v) for v in ext + writes])
