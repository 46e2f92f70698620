"""The kernels that are not fused loops of scalar ops: matmul, conv, pooling, indexing, concat.

    matmul_29(a, b, out)           tiled: tile x tile threads, two shared-memory tiles, grid-stride over tiles
    conv2d_0(x, w, y)              direct: one thread per output element, loops over C x KH x KW
    conv2d_grad_weight_64(...)     one block per weight element, shared-memory tree over N x OH x OW
    maxpool2d_scatter_59(...)      one thread per input element, gathering from the windows that hold it

Correctness first: no atomics (every kernel writes each output element from one thread, so results
are deterministic), no warp shuffles (the simulator has none), no device functions.
"""
from __future__ import annotations

import re

import numpy as np

from ..codegen.scalar import NP_TYPE
from .layout import c_strides, next_pow2, prod, unravel


class KernelBody:
    """Collects one kernel's parameters (a buffer is passed once however many values it holds)."""

    def __init__(self, emitter, kernel_name):
        self.e = emitter
        self.name = kernel_name
        self.params = []            # (param name, driver expr, argtype)
        self.by_key = {}

    def buffer(self, value, prefix="a"):
        """The parameter holding value's base buffer (or the by-value scalar for a scalar input)."""
        e = self.e
        scalar = e.scalar_input(value)
        if scalar is not None:
            key = ("s", scalar)
            if key not in self.by_key:
                self.by_key[key] = f"s{sum(1 for p in self.params if p[0][0] == 's')}"
                self.params.append((self.by_key[key], f"s{scalar}", ("scalar", value.dtype)))
                e.scalar_inputs.add(scalar)
            return self.by_key[key]
        base = e.base(value)
        key = ("b", id(base), prefix)
        if key not in self.by_key:
            n = sum(1 for p in self.params if p[0][0] == prefix)
            self.by_key[key] = f"{prefix}{n}"
            self.params.append((self.by_key[key], e.var(base), ("array", base.dtype)))
        return self.by_key[key]

    def named(self, value, name):
        """Pass value's base buffer under a chosen parameter name (library kernels: x, w, gy...)."""
        base = self.e.base(value)
        self.params.append((name, self.e.var(base), ("array", base.dtype)))
        return name

    def err(self):
        if ("err",) not in self.by_key:
            self.by_key[("err",)] = "err"
            self.params.append(("err", "err", ("array", np.dtype(np.int32))))
            self.e.uses_err = True
        return "err"

    def names(self):
        return [p[0] for p in self.params]


def needed_indices(index_lines, body_lines):
    """The index lines whose names the body reads (an index nobody reads would cost a division)."""
    text = "\n".join(body_lines)
    return [ln for ln in index_lines if re.search(rf"\b{ln.split(' =', 1)[0].strip()}\b", text)]


def _bounds(var, limit):
    return f"{var} >= 0 and {var} < {limit}"


def _affine(var, scale, shift, extra):
    """'oh * 2 - 1 + i' without the no-op parts.   ('oh', 1, 0, 'i') -> 'oh + i'"""
    text = var if scale == 1 else f"{var} * {scale}"
    if shift:
        text += f" + {shift}" if shift > 0 else f" - {-shift}"
    return f"{text} + {extra}"


class LibraryKernels:
    """Mixin of CUDAModuleEmitter: one `_emit_<kind>` per fusion kernel kind."""

    # --- matmul ----------------------------------------------------------------------------
    def _emit_matmul(self, k):
        node = k.nodes[-1]
        a, b_ = node.inputs
        out = node.out
        T = self.target.tile
        batch = tuple(out.shape[:-2])
        M, N = out.shape[-2], out.shape[-1]
        K = a.shape[-1]
        dt = NP_TYPE[out.dtype.name]
        kb = self._kernel_body(k)
        b = self._header(k)
        pa, pb, po = kb.named(a, "a"), kb.named(b_, "b"), kb.named(out, "out")
        tm_n, tn_n = -(-M // T), -(-N // T)
        tiles = prod(batch) * tm_n * tn_n

        def operand(v, row, col):
            lead = len(v.shape) - 2
            off = len(batch) - lead
            idx = ["0" if (v.shape[j] == 1 and batch[off + j] != 1) else f"i{off + j}" for j in range(lead)]
            return self.offset(v, idx + [row, col])

        if min(M, N, K) < self.target.tiled_min:
            # A skinny product (a batch of 2, a 10-class head, K = batch in a weight gradient): a tile
            # would mostly hold padding, so each thread computes one output over the whole K.
            b.line(f"# one thread per output element ({'x'.join(map(str, out.shape))}), K = {K}: "
                   f"too small a dim for {T}x{T} tiles")
            body = [f"acc = {dt}(0)", f"for kk in range({K}):",
                    f"    acc += {pa}[{operand(a, 'row', 'kk')}] * {pb}[{operand(b_, 'kk', 'col')}]",
                    f"{po}[f] = acc"]
            n = prod(out.shape)
            self._flat_loop(b, n, out.shape, [f"i{d}" for d in range(len(batch))] + ["row", "col"], body)
            grid, block = self._flat_launch(n)
            self._finish(k.name, kb, b, grid, block, k)
            return

        # Load each tile with consecutive threads (x) along the operand's unit-stride dim: coalesced
        # reads also for a transposed operand (w.T of a Linear layer is read in place, never copied).
        sa_ = self.strides(a) or c_strides(a.shape)
        sb_ = self.strides(b_) or c_strides(b_.shape)
        a_m_major = sa_[-2] == 1 and sa_[-1] != 1 and K > 1
        b_k_major = sb_[-2] == 1 and sb_[-1] != 1 and N > 1
        b.line(f"# tiles of {T}x{T}: {tm_n} x {tn_n} per matrix" + (f", {prod(batch)} matrices" if batch else ""))
        b.line(f"sa = cuda.shared.array(({T}, {T + 1}), {dt})   # sa[m, k]; +1 column: no bank conflicts")
        b.line(f"sb = cuda.shared.array(({T}, {T + 1}), {dt})   # sb[k, n]")
        b.line("tx = cuda.threadIdx.x")
        b.line("ty = cuda.threadIdx.y")
        b.line(f"for tile in range(cuda.blockIdx.x, {tiles}, cuda.gridDim.x):")
        with b.indent():
            loads = []
            if a_m_major:
                loads += [f"m = tm * {T} + tx", "kl = k0 + ty",
                          f"sa[tx, ty] = {pa}[{operand(a, 'm', 'kl')}] if m < {M} and kl < {K} else {dt}(0)"]
            else:
                loads += [f"m = tm * {T} + ty", "kl = k0 + tx",
                          f"sa[ty, tx] = {pa}[{operand(a, 'm', 'kl')}] if m < {M} and kl < {K} else {dt}(0)"]
            if b_k_major:
                loads += ["kl = k0 + tx", f"n = tn * {T} + ty",
                          f"sb[tx, ty] = {pb}[{operand(b_, 'kl', 'n')}] if kl < {K} and n < {N} else {dt}(0)"]
            else:
                loads += ["kl = k0 + ty", f"n = tn * {T} + tx",
                          f"sb[ty, tx] = {pb}[{operand(b_, 'kl', 'n')}] if kl < {K} and n < {N} else {dt}(0)"]
            store = f"{po}[{'bt * ' + str(M * N) + ' + ' if batch else ''}row * {N} + col] = acc"
            if batch:
                b.line(f"bt = tile // {tm_n * tn_n}")
                for ln in needed_indices(unravel("bt", batch), loads):
                    b.line(ln)
            b.line(f"tm = tile // {tn_n} % {tm_n}" if tm_n > 1 else "tm = 0")
            b.line(f"tn = tile % {tn_n}" if tn_n > 1 else "tn = 0")
            b.line(f"row = tm * {T} + ty")
            b.line(f"col = tn * {T} + tx")
            b.line(f"acc = {dt}(0)")
            b.line(f"for k0 in range(0, {K}, {T}):")
            with b.indent():
                for ln in loads:
                    b.line(ln)
                b.line("cuda.syncthreads()")
                b.line(f"for kk in range(min({T}, {K} - k0)):")
                b.line("    acc += sa[ty, kk] * sb[kk, tx]")
                b.line("cuda.syncthreads()")
            b.line(f"if row < {M} and col < {N}:")
            b.line(f"    {store}")
        grid = max(1, min(self.target.max_grid, tiles))
        self._finish(k.name, kb, b, grid, (T, T), k)

    # --- convolution -------------------------------------------------------------------------
    def _kernel_body(self, k):
        return KernelBody(self, k.name)

    def _flat_loop(self, b, n, shape, names, body):
        """for f in a grid-stride loop over `shape`, with the named indices unravelled."""
        b.line(f"for f in range(cuda.grid(1), {n}, cuda.gridsize(1)):")
        with b.indent():
            lines = unravel("f", shape)
            idx_lines = [ln.replace(f"i{d} =", f"{names[d]} =", 1) for d, ln in enumerate(lines)]
            for ln in needed_indices(idx_lines, body):
                b.line(ln)
            for ln in body:
                b.line(ln)

    def _emit_conv2d(self, k):
        node = k.nodes[-1]
        x, w = node.inputs
        y = node.out
        (N, C, H, W), (O, _, KH, KW) = x.shape, w.shape
        OH, OW = y.shape[2:]
        (SH, SW), (PH, PW) = node.attrs["stride"], node.attrs["padding"]
        dt = NP_TYPE[y.dtype.name]
        kb = self._kernel_body(k)
        b = self._header(k)
        px, pw, py = kb.named(x, "x"), kb.named(w, "w"), kb.named(y, "y")
        body = [f"acc = {dt}(0)", f"for c in range({C}):"]
        body += [f"    for i in range({KH}):", f"        ih = {_affine('oh', SH, -PH, 'i')}"]
        ind = "        "
        if PH:
            body.append(f"{ind}if {_bounds('ih', H)}:")
            ind += "    "
        body += [f"{ind}for j in range({KW}):", f"{ind}    iw = {_affine('ow', SW, -PW, 'j')}"]
        ind += "    "
        if PW:
            body.append(f"{ind}if {_bounds('iw', W)}:")
            ind += "    "
        body.append(f"{ind}acc += {px}[{self.offset(x, ['n', 'c', 'ih', 'iw'])}] * {pw}[{self.offset(w, ['o', 'c', 'i', 'j'])}]")
        body.append(f"{py}[f] = acc")
        b.line(f"# direct convolution: one thread per output element ({N}x{O}x{OH}x{OW})")
        n = prod(y.shape)
        self._flat_loop(b, n, y.shape, ["n", "o", "oh", "ow"], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    def _emit_conv2d_grad_input(self, k):
        node = k.nodes[-1]
        gy, w = node.inputs
        gx = node.out
        O, _, KH, KW = w.shape
        OH, OW = gy.shape[2:]
        (SH, SW), (PH, PW) = node.attrs["stride"], node.attrs["padding"]
        dt = NP_TYPE[gx.dtype.name]
        kb = self._kernel_body(k)
        b = self._header(k)
        pg, pw, px = kb.named(gy, "gy"), kb.named(w, "w"), kb.named(gx, "gx")
        b.line("# gather form of the transposed convolution: gx[n, c, h, v] sums gy over the outputs whose")
        b.line("# window covers (h, v): one thread per input element, no atomics")
        body = [f"acc = {dt}(0)",
                f"for o in range({O}):",
                f"    for i in range({KH}):",
                f"        th = h + {PH} - i" if PH else "        th = h - i",
                f"        if th >= 0 and th % {SH} == 0 and th // {SH} < {OH}:" if SH > 1 else
                f"        if th >= 0 and th < {OH}:",
                f"            oh = th // {SH}" if SH > 1 else "            oh = th",
                f"            for j in range({KW}):",
                f"                tw = v + {PW} - j" if PW else "                tw = v - j",
                f"                if tw >= 0 and tw % {SW} == 0 and tw // {SW} < {OW}:" if SW > 1 else
                f"                if tw >= 0 and tw < {OW}:",
                f"                    ow = tw // {SW}" if SW > 1 else "                    ow = tw",
                f"                    acc += {pg}[{self.offset(gy, ['n', 'o', 'oh', 'ow'])}] * "
                f"{pw}[{self.offset(w, ['o', 'c', 'i', 'j'])}]",
                f"{px}[f] = acc"]
        n = prod(gx.shape)
        self._flat_loop(b, n, gx.shape, ["n", "c", "h", "v"], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    def _emit_conv2d_grad_weight(self, k):
        node = k.nodes[-1]
        gy, x = node.inputs
        gw = node.out
        N, _, H, W = x.shape
        OH, OW = gy.shape[2:]
        (SH, SW), (PH, PW) = node.attrs["stride"], node.attrs["padding"]
        dt = NP_TYPE[gw.dtype.name]
        t = self.target
        length = N * OH * OW
        rb = max(t.reduce_block_min, min(t.reduce_block_max, next_pow2(length)))
        outer = prod(gw.shape)
        kb = self._kernel_body(k)
        b = self._header(k)
        pg, px, po = kb.named(gy, "gy"), kb.named(x, "x"), kb.named(gw, "gw")
        b.line(f"# one block per weight element; its {rb} threads split the {N}x{OH}x{OW} products, then a")
        b.line("# shared-memory tree adds the partial sums")
        b.line(f"sacc = cuda.shared.array({rb}, {dt})")
        b.line("tid = cuda.threadIdx.x")
        b.line(f"for e in range(cuda.blockIdx.x, {outer}, cuda.gridDim.x):")
        with b.indent():
            for ln, name in zip(unravel("e", gw.shape), ["o", "c", "i", "j"]):
                b.line(ln.replace(ln.split(" =")[0], name, 1))
            b.line(f"acc = {dt}(0)")
            b.line(f"for r in range(tid, {length}, {rb}):")
            with b.indent():
                for ln, name in zip(unravel("r", (N, OH, OW)), ["n", "oh", "ow"]):
                    b.line(ln.replace(ln.split(" =")[0], name, 1))
                b.line(f"ih = {_affine('oh', SH, -PH, 'i')}")
                b.line(f"iw = {_affine('ow', SW, -PW, 'j')}")
                prod_line = f"acc += {pg}[{self.offset(gy, ['n', 'o', 'oh', 'ow'])}] * " \
                            f"{px}[{self.offset(x, ['n', 'c', 'ih', 'iw'])}]"
                if PH or PW:
                    b.line(f"if {_bounds('ih', H)} and {_bounds('iw', W)}:")
                    b.line("    " + prod_line)
                else:
                    b.line(prod_line)
            self._tree_sum(b, rb, dt)
            b.line("if tid == 0:")
            b.line(f"    {po}[e] = sacc[0]")
            b.line("cuda.syncthreads()   # sacc is reused by this block's next output")
        self._finish(k.name, kb, b, max(1, min(t.max_grid, outer)), rb, k)

    @staticmethod
    def _tree_sum(b, rb, dt):
        b.line("sacc[tid] = acc")
        b.line("cuda.syncthreads()")
        half = rb // 2
        while half >= 1:
            b.line(f"if tid < {half}:")
            b.line(f"    sacc[tid] = {dt}(sacc[tid] + sacc[tid + {half}])")
            b.line("cuda.syncthreads()")
            half //= 2

    # --- max pooling -----------------------------------------------------------------------
    def _emit_maxpool2d_argmax(self, k):
        node = k.nodes[-1]
        x = node.inputs[0]
        idx = node.out
        H, W = x.shape[2:]
        (KH, KW), (SH, SW), (PH, PW) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
        kb = self._kernel_body(k)
        b = self._header(k)
        px, pi = kb.named(x, "x"), kb.named(idx, "idx")
        body = ["besti = -1", f"best = {px}[{self.offset(x, ['n', 'c', '0', '0'])}]",
                f"for i in range({KH}):", f"    ih = {_affine('oh', SH, -PH, 'i')}"]
        ind = "    "
        if PH:
            body.append(f"{ind}if {_bounds('ih', H)}:")
            ind += "    "
        body += [f"{ind}for j in range({KW}):", f"{ind}    iw = {_affine('ow', SW, -PW, 'j')}"]
        ind += "    "
        if PW:
            body.append(f"{ind}if {_bounds('iw', W)}:")
            ind += "    "
        body += [f"{ind}v = {px}[{self.offset(x, ['n', 'c', 'ih', 'iw'])}]",
                 f"{ind}# the first maximum wins ties; a NaN wins, as in numpy's argmax",
                 f"{ind}if besti < 0 or v > best or (v != v and best == best):",
                 f"{ind}    best = v",
                 f"{ind}    besti = ih * {W} + iw",
                 f"{pi}[f] = besti"]
        n = prod(idx.shape)
        self._flat_loop(b, n, idx.shape, ["n", "c", "oh", "ow"], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    def _emit_maxpool2d_gather(self, k):
        node = k.nodes[-1]
        x, idx = node.inputs
        y = node.out
        W = x.shape[3]
        kb = self._kernel_body(k)
        b = self._header(k)
        px, pi, py = kb.named(x, "x"), kb.named(idx, "idx"), kb.named(y, "y")
        body = [f"p = {pi}[{self.offset(idx, ['n', 'c', 'oh', 'ow'])}]",
                f"{py}[f] = {px}[{self.offset(x, ['n', 'c', f'(p // {W})', f'(p % {W})'])}]"]
        n = prod(y.shape)
        self._flat_loop(b, n, y.shape, ["n", "c", "oh", "ow"], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    def _emit_maxpool2d_scatter(self, k):
        node = k.nodes[-1]
        gy, idx = node.inputs
        gx = node.out
        W = gx.shape[3]
        OH, OW = gy.shape[2:]
        producer = idx.node
        KH, KW = producer.attrs["kernel"]
        SH, SW = producer.attrs["stride"]
        PH, PW = producer.attrs["padding"]
        dt = NP_TYPE[gx.dtype.name]
        kb = self._kernel_body(k)
        b = self._header(k)
        pg, pi, px = kb.named(gy, "gy"), kb.named(idx, "idx"), kb.named(gx, "gx")
        overlap = KH > SH or KW > SW
        b.line("# gather form of the scatter: each input element sums the gradients of the windows whose")
        b.line(f"# argmax it is ({'overlapping windows: up to ' + str(-(-KH // SH) * -(-KW // SW)) if overlap else 'windows do not overlap: at most one'}"
               f" per element); deterministic, no atomics")
        body = [f"acc = {dt}(0)",
                f"for oh in range(max(0, (h + {PH - KH + SH}) // {SH}), min({OH}, (h + {PH}) // {SH} + 1)):",
                f"    for ow in range(max(0, (v + {PW - KW + SW}) // {SW}), min({OW}, (v + {PW}) // {SW} + 1)):",
                f"        if {pi}[{self.offset(idx, ['n', 'c', 'oh', 'ow'])}] == h * {W} + v:",
                f"            acc += {pg}[{self.offset(gy, ['n', 'c', 'oh', 'ow'])}]",
                f"{px}[f] = acc"]
        n = prod(gx.shape)
        self._flat_loop(b, n, gx.shape, ["n", "c", "h", "v"], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    # --- indexing and concatenation ------------------------------------------------------------
    def _emit_getitem(self, k):
        node = k.nodes[-1]
        x = node.inputs[0]
        out = node.out
        kb = self._kernel_body(k)
        b = self._header(k)
        px, po = kb.named(x, "x"), kb.named(out, "out")
        src, od = [], 0
        for item in node.attrs["index"]:
            if item is None:
                od += 1
            elif isinstance(item, tuple):
                start, _, step = item
                term = f"i{od}" if step == 1 else f"i{od} * {step}"
                src.append(term if start == 0 else f"({start} + {term})")
                od += 1
            else:
                src.append(str(int(item)))
        body = [f"{po}[f] = {px}[{self.offset(x, src)}]"]
        n = prod(out.shape)
        self._flat_loop(b, n, out.shape, [f"i{d}" for d in range(len(out.shape))], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    def _emit_getitem_grad(self, k):
        node = k.nodes[-1]
        g = node.inputs[0]
        out = node.out
        shape = tuple(node.attrs["shape"])
        dt = NP_TYPE[out.dtype.name]
        kb = self._kernel_body(k)
        b = self._header(k)
        pg, po = kb.named(g, "g"), kb.named(out, "out")
        conds, gidx, d = [], [], 0
        pre = []
        for item in node.attrs["index"]:
            if item is None:
                gidx.append("0")
                continue
            if isinstance(item, tuple):
                start, stop, step = item
                count = len(range(start, stop, step))
                if start == 0 and step == 1 and count == shape[d]:
                    gidx.append(f"j{d}")
                else:
                    q = f"q{d}"
                    pre.append(f"{q} = j{d} - {start}" if step > 0 else f"{q} = {start} - j{d}")
                    s = abs(step)
                    conds.append(f"{q} >= 0 and {q} < {count * s}" + (f" and {q} % {s} == 0" if s > 1 else ""))
                    gidx.append(f"{q} // {s}" if s > 1 else q)
            else:
                conds.append(f"j{d} == {int(item)}")
            d += 1
        read = f"{pg}[{self.offset(g, gidx)}]"
        if conds:
            body = pre + [f"{po}[f] = {read} if {' and '.join(conds)} else {dt}(0)"]
        else:
            body = [f"{po}[f] = {read}"]
        b.line("# zeros except where the index selects: g's element, read from the selecting slice")
        n = prod(shape)
        self._flat_loop(b, n, shape, [f"j{e}" for e in range(len(shape))], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    def _emit_concat(self, k):
        node = k.nodes[-1]
        out = node.out
        axis = node.attrs["axis"] % len(out.shape)
        kb = self._kernel_body(k)
        b = self._header(k)
        names = [kb.named(v, f"x{i}") for i, v in enumerate(node.inputs)]
        po = kb.named(out, "out")
        body, start = [], 0
        for i, (v, name) in enumerate(zip(node.inputs, names)):
            stop = start + v.shape[axis]
            idx = [f"i{d}" if d != axis else (f"i{d}" if start == 0 else f"(i{d} - {start})")
                   for d in range(len(out.shape))]
            read = f"{po}[f] = {name}[{self.offset(v, idx)}]"
            if i == len(node.inputs) - 1:
                body += (["else:", "    " + read] if i else [read])
            else:
                body += [f"{'if' if i == 0 else 'elif'} i{axis} < {stop}:", "    " + read]
            start = stop
        n = prod(out.shape)
        self._flat_loop(b, n, out.shape, [f"i{d}" for d in range(len(out.shape))], body)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)
