"""Emit one readable module of @cuda.jit kernels plus a host driver for a fused, planned graph.

    gen = CUDAModuleEmitter(fused, plan, "step", GPU).emit()
    # @cuda.jit(cache=True)
    # def fused_add_relu_gt_13(a0, a1, o0, o1):
    #     # %3: f32[2,128] = add %2, %fc1.bias   (seed_models.py:19)
    #     # %4: f32[2,128] = relu %3   (seed_models.py:20)
    #     for f in range(cuda.grid(1), 256, cuda.gridsize(1)):
    #         i1 = f % 128
    #         x0 = a0[f]
    #         x1 = a1[i1]
    #         ...

Kernels are self-contained (no device functions: a kernel that calls one needs a GPU even to be
compiled to PTX), take flat 1-D buffers, and read views through static strides (layout.py).  The
per-element code is codegen/body.py's, as on the CPU: the op table's templates (with CUDA_OVERRIDES
where CUDA differs), an error flag for one_hot's bad labels, and uniform's bits inlined.  The driver
at the bottom is plain Python: `bind(buffers...)` slices the pools and configures every launch once,
and returns `run(scalars...)`, which launches the kernels of one step in order.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

import numpy as np

from ...version import __version__
from ...errors import BackendError
from ...ir.printer import format_attr
from ...ops.source import GOLDEN, MIX1, MIX2
from ..codegen import IndentedBuffer
from ...ir.printer import value_names
from ..codegen.body import LoopBody
from ..codegen.names import ir_line
from ..codegen.scalar import NP_TYPE, literal
from .kernels import KernelBody, LibraryKernels, needed_indices
from .layout import c_strides, index_sum, next_pow2, prod, reshape_strides, unravel

# Where CUDA differs from the CPU templates.  NaN-propagating max/min/relu/sign are shared (the GPU
# follows numpy there too).  sigmoid: a float64 literal would promote the float32 math to float64,
# which runs at 1/2 to 1/64 of the float32 rate on GPUs.
CUDA_OVERRIDES = {
    "sigmoid": "(np.float32(1.0) / (np.float32(1.0) + math.exp(-{0})))",
}

DECORATOR = "@cuda.jit(cache=True)"


@dataclass
class KernelInfo:
    """One launch of the step: what the driver passes and what compile_ptx needs."""
    name: str
    grid: object
    block: object
    args: list                   # driver-side expressions, in kernel-parameter order
    argtypes: list               # ("array", dtype) | ("scalar", dtype), same order
    ir: list = field(default_factory=list)


@dataclass
class Generated:
    """The emitted module and what the runner needs to drive it."""
    source: str
    kernels: list                # KernelInfo in launch order (stores of updates last)
    consts: list                 # host arrays uploaded once as const{j}
    pools: list                  # (dtype, n_elements) allocated once as pool{j}
    scalar_inputs: list          # input indices passed to run() by value
    device_inputs: list          # input indices with a flat device buffer in{i}
    uses_err: bool
    err_locs: dict               # error code -> (kernel name, loc)
    target: object


class CUDAModuleEmitter(LibraryKernels):
    """Builds the module text; `emit()` returns a Generated."""

    def __init__(self, fused, plan, name, target):
        self.fused = fused
        self.graph = fused.graph
        self.plan = plan
        self.name = name
        self.target = target
        self.names = value_names(self.graph)
        self.body = IndentedBuffer()
        self.kernels = []
        self.consts = []
        self.const_index = {}
        self.uses_err = False
        self.err_locs = {}
        self.bind_lines = []          # buffer slices, in first-use order
        self.declared = set()
        self.scalar_inputs = set()
        self.device_inputs = set()
        self._base_of = {}
        for k in fused.kernels:
            if k.kind == "view":
                node = k.nodes[-1]
                self._base_of[id(node.out)] = node.inputs[0]

    # --- values: bases, buffers, strides -----------------------------------------------------
    def base(self, value):
        while id(value) in self._base_of:
            value = self._base_of[id(value)]
        return value

    def scalar_input(self, value):
        """Input index when `value` is a 0-d scalar input passed to kernels by value (the learning rate)."""
        home = self.plan.home.get(id(value))
        if home is not None and home[0] == "input" and value.kind == "scalar" and value.shape == ():
            return home[1]
        return None

    def var(self, value):
        """The driver name of a base value's flat buffer, declared in bind() on first use."""
        if value.node is not None and value.node.op == "const":
            return self._const(value)    # its own buffer, uploaded once (the plan may give it a pool slot)
        home = self.plan.storage(value)   # the plan answers for every value a kernel touches
        if home[0] == "input":
            self.device_inputs.add(home[1])
            return f"in{home[1]}"
        if home[0] != "buffer":
            raise BackendError("numba_cuda", f"{self.names.get(id(value))} is a view, not a buffer")
        name = "v" + self.names[id(value)][1:].replace(".", "_")
        if name not in self.declared:
            self.declared.add(name)
            self.bind_lines.append(f"{name} = pool{home[1]}[:{max(value.size, 1)}]   "
                                   f"# {self.names[id(value)]}: {value.type_str()}")
        return name

    def _const(self, value):
        key = id(value)
        if key not in self.const_index:
            self.const_index[key] = len(self.consts)
            self.consts.append(np.ascontiguousarray(value.node.attrs["value"], dtype=value.dtype).reshape(-1))
        return f"const{self.const_index[key]}"

    def strides(self, value):
        """Element strides of `value` inside its base buffer, or None when no strides express it."""
        if id(value) not in self._base_of:
            return c_strides(value.shape)
        node = value.node
        inner = self.strides(node.inputs[0])
        if inner is None:
            return None
        if node.op == "permute":
            return tuple(inner[p] for p in node.attrs["perm"])
        return reshape_strides(node.inputs[0].shape, inner, value.shape)

    def offset(self, value, idx):
        """Flat offset expression of value[idx] in its base buffer."""
        strides = self.strides(value)
        if strides is not None:
            return index_sum(idx, strides, value.shape)
        node = value.node    # a reshape of a permuted view: go through the row-major flat index
        if node.op == "permute":
            inner = [None] * len(idx)
            for d, p in enumerate(node.attrs["perm"]):
                inner[p] = idx[d]
            return self.offset(node.inputs[0], inner)
        flat = index_sum(idx, c_strides(value.shape), value.shape)
        src = node.inputs[0]
        cs = c_strides(src.shape)
        return self.offset(src, [f"(({flat}) // {s} % {n})" for s, n in zip(cs, src.shape)])

    def contiguous(self, value):
        return self.strides(value) == c_strides(value.shape) or prod(value.shape) <= 1

    def inline(self, value):
        return self.plan.inlines(value)

    # --- the module ------------------------------------------------------------------------------
    def emit(self):
        import numba
        for k in self.fused.kernels:
            if not k.outputs or k.kind in ("view", "const"):
                continue
            if k.kind == "elementwise" and not self.plan.writes(k):
                continue
            emit = getattr(self, f"_emit_{k.kind}", None)
            if emit is None:
                raise BackendError(k.nodes[-1].op, f"the numba_cuda backend cannot lower a {k.kind!r} kernel",
                                   loc=k.nodes[-1].loc, hint="run this graph with backend='numba_cpu'")
            emit(k)
            self.body.line("")
        self._emit_stores()
        out = IndentedBuffer()
        out.line(f'"""Kernels for graph `{self.graph.name}`, generated by graphc {__version__} for numba-cuda '
                 f'(target: {self.target.name}).')
        out.line("")
        out.line(f"numba {numba.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}.")
        out.line("Every array parameter is a flat 1-D device buffer; kernels compute element offsets from the")
        out.line("static shapes and strides in the IR comments, so reshape/permute views are free.")
        out.line("`bind` (bottom) slices the memory plan's pools once; the `run` it returns launches one step.")
        out.line('"""')
        out.line("import math")
        out.line("")
        out.line("import numpy as np")
        out.line("from numba import cuda")
        out.line("")
        out.lines_from(self.body.getvalue())
        self._emit_driver(out)
        return Generated(out.getvalue(), self.kernels, self.consts, list(self.plan.pools),
                         sorted(self.scalar_inputs), sorted(self.device_inputs), self.uses_err, self.err_locs,
                         self.target)

    def _emit_driver(self, out):
        pools = [f"pool{j}" for j in range(len(self.plan.pools))]
        ins = [f"in{i}" for i in sorted(self.device_inputs)]
        consts = [f"const{j}" for j in range(len(self.consts))]
        params = ins + consts + pools + (["err"] if self.uses_err else [])
        scalars = [f"s{i}" for i in sorted(self.scalar_inputs)]
        out.line("")
        out.line(f"def bind({', '.join(params)}):")
        with out.indent():
            out.line(f'"""Slices the device buffers of graph `{self.graph.name}` once; returns run({", ".join(scalars)}),'
                     f' one step of {len(self.kernels)} launches."""')
            for ln in self.bind_lines:
                out.line(ln)
            for ki in self.kernels:
                out.line(f"launch_{ki.name} = {ki.name}[{format_attr(ki.grid)}, {format_attr(ki.block)}]")
            out.line("")
            out.line(f"def run({', '.join(scalars)}):")
            with out.indent():
                for ki in self.kernels:
                    out.line(f"launch_{ki.name}({', '.join(ki.args)})")
                if not self.kernels:
                    out.line("pass")
            out.line("")
            out.line("return run")

    # --- shared pieces of kernels --------------------------------------------------------------
    def _header(self, k):
        """A kernel body buffer that starts with the IR lines the kernel implements."""
        b = IndentedBuffer()
        for node in k.nodes:
            b.line("# " + ir_line(node, self.names))
        return b

    def _finish(self, name, kb, b, grid, block, k=None):
        # inputs first, then outputs, then the error flag (a stable sort keeps first-use order)
        kb.params.sort(key=lambda p: 2 if p[0] == "err" else (1 if re.fullmatch(r"o\d+", p[0]) else 0))
        self.body.line(DECORATOR)
        self.body.line(f"def {name}({', '.join(kb.names())}):")
        with self.body.indent():
            self.body.lines_from(b.getvalue())
        self.kernels.append(KernelInfo(name, grid, block, [p[1] for p in kb.params], [p[2] for p in kb.params],
                                       [ir_line(n, self.names) for n in (k.nodes if k else ())]))

    def _flat_launch(self, n):
        t = self.target
        block = max(1, min(t.block, next_pow2(n)))
        return max(1, min(t.max_grid, -(-n // block))), block

    def _err_code(self, name, k):
        code = len(self.err_locs) + 1
        self.err_locs[code] = (name, k.nodes[0].loc)
        return code

    # --- elementwise ------------------------------------------------------------------------
    def _emit_elementwise(self, k):
        shape = tuple(k.shape)
        n = prod(shape)
        kb = KernelBody(self, k.name)
        b = self._header(k)
        hoisted, loop = [], []

        def bad_class(classes):
            kb.err()
            return f"err[0] = {self._err_code(k.name, k)}   # one_hot: a class index is out of range for {classes} classes"

        element = LoopBody(self.plan, self._loader(kb, {}, loop, shape, "f", hoisted), loop.append, len(shape), "f",
                           overrides=CUDA_OVERRIDES, bad_class=bad_class, uniform=uniform_lines)
        # outputs every reader inlines as a literal are not stored
        stores = {id(v): f"{kb.buffer(v, prefix='o')}[f]" for v in self.plan.writes(k)}
        element.emit_nodes(k.nodes, stores)
        for ln in hoisted:
            b.line(ln)
        b.line(f"for f in range(cuda.grid(1), {n}, cuda.gridsize(1)):")
        with b.indent():
            for ln in needed_indices(unravel("f", shape), loop):
                b.line(ln)
            for ln in loop:
                b.line(ln)
        grid, block = self._flat_launch(n)
        self._finish(k.name, kb, b, grid, block, k)

    def _elementwise_offset(self, value, shape, align, flat="f"):
        """Offset of value at the loop index of `shape` (numpy broadcasting; one_hot labels align left).
        A contiguous value of the loop's shape reads at the loop's flat index `flat`, where there is one."""
        src = tuple(value.shape)
        if flat and src == shape and self.contiguous(value):
            return flat
        off = len(shape) - len(src) if align == "right" else 0
        idx = ["0" if (src[j] == 1 and shape[off + j] != 1) else f"i{off + j}" for j in range(len(src))]
        return self.offset(value, idx)

    def _loader(self, kb, loaded, loop, shape, flat, hoisted=None):
        """LoopBody's load(value, align): an input element's first read appends `x{n} = a{i}[offset]` to
        `loop` (to `hoisted`, when given, for a 0-d value); a scalar input is its by-value parameter."""
        def load(value, align):
            buf = kb.buffer(value)
            if self.scalar_input(value) is not None:
                return buf
            key = (id(value), align)
            if key not in loaded:
                loaded[key] = f"x{len(loaded)}"
                if not value.shape and hoisted is not None:
                    hoisted.append(f"{loaded[key]} = {buf}[0]")
                else:
                    loop.append(f"{loaded[key]} = {buf}[{self._elementwise_offset(value, shape, align, flat)}]")
            return loaded[key]
        return load

    # --- reductions ------------------------------------------------------------------------
    def _emit_reduce(self, k):
        red = k.nodes[-1]
        shape = tuple(red.inputs[0].shape)
        rank = len(shape)
        if red.op == "argmax":
            axes = tuple(range(rank)) if red.attrs.get("axis") is None else (red.attrs["axis"] % max(rank, 1),)
        else:
            axes = red.attrs.get("axes")
            axes = tuple(range(rank)) if axes is None else tuple(a % max(rank, 1) for a in axes)
        axes = tuple(sorted(axes))
        keep = [d for d in range(rank) if d not in axes]
        outer = prod([shape[d] for d in keep])
        length = prod([shape[d] for d in axes])
        t = self.target
        rb = max(t.reduce_block_min, min(t.reduce_block_max, next_pow2(length)))
        kb = KernelBody(self, k.name)
        b = self._header(k)
        loop = []
        element = LoopBody(self.plan, self._loader(kb, {}, loop, shape, None), loop.append,
                           overrides=CUDA_OVERRIDES)   # a prologue: no one_hot, no uniform
        element.emit_nodes(k.nodes[:-1])
        src = element.read(red.inputs[0])
        out = kb.buffer(red.out, prefix="o")
        in_dt = red.inputs[0].dtype
        acc_dt = NP_TYPE[(red.out.dtype if red.op == "sum" else in_dt).name]
        if red.op == "sum":
            init = f"{acc_dt}(0)"
            loop.append(f"acc = {acc_dt}(acc + {src})")
        elif red.op == "max":
            init = f"{acc_dt}(-np.inf)" if in_dt.kind == "f" else f"{acc_dt}({np.iinfo(in_dt).min})"
            loop.append(f"if {src} > acc or {src} != {src}:")
            loop.append(f"    acc = {src}")
        else:
            init = f"{acc_dt}(-np.inf)" if in_dt.kind == "f" else f"{acc_dt}({np.iinfo(in_dt).min})"
            loop.append(f"if besti < 0 or {src} > acc or ({src} != {src} and acc == acc):")
            loop.append(f"    acc = {src}")
            loop.append("    besti = r")
        b.line(f"sacc = cuda.shared.array({rb}, {acc_dt})")
        if red.op == "argmax":
            b.line(f"sidx = cuda.shared.array({rb}, np.int64)")
        b.line("tid = cuda.threadIdx.x")
        b.line(f"for o in range(cuda.blockIdx.x, {outer}, cuda.gridDim.x):")
        with b.indent():
            keep_shape = tuple(shape[d] for d in keep)
            keep_lines = [ln.replace(f"i{j} =", f"i{keep[j]} =", 1)
                          for j, ln in enumerate(unravel("o", keep_shape))] if keep else []
            red_shape = tuple(shape[d] for d in axes)
            red_lines = [ln.replace(f"i{j} =", f"i{axes[j]} =", 1) for j, ln in enumerate(unravel("r", red_shape))]
            for ln in needed_indices(keep_lines, loop):
                b.line(ln)
            b.line(f"acc = {init}")
            if red.op == "argmax":
                b.line("besti = -1")
            b.line(f"for r in range(tid, {length}, {rb}):")
            with b.indent():
                for ln in needed_indices(red_lines, loop):
                    b.line(ln)
                for ln in loop:
                    b.line(ln)
            b.line("sacc[tid] = acc")
            if red.op == "argmax":
                b.line("sidx[tid] = besti")
            b.line("cuda.syncthreads()")
            half = rb // 2
            while half >= 1:
                b.line(f"if tid < {half}:")
                with b.indent():
                    if red.op == "sum":
                        b.line(f"sacc[tid] = {acc_dt}(sacc[tid] + sacc[tid + {half}])")
                    elif red.op == "max":
                        b.line(f"if sacc[tid + {half}] > sacc[tid] or (sacc[tid + {half}] != sacc[tid + {half}]"
                               f" and sacc[tid] == sacc[tid]):")
                        b.line(f"    sacc[tid] = sacc[tid + {half}]")
                    else:
                        b.line(f"a, ia, c, ic = sacc[tid], sidx[tid], sacc[tid + {half}], sidx[tid + {half}]")
                        b.line("# the first maximum wins ties; a NaN wins, the first NaN among NaNs")
                        b.line("if ic >= 0 and (ia < 0 or c > a or (c != c and a == a) "
                               "or ((c == a or (c != c and a != a)) and ic < ia)):")
                        b.line("    sacc[tid] = c")
                        b.line("    sidx[tid] = ic")
                b.line("cuda.syncthreads()")
                half //= 2
            b.line("if tid == 0:")
            result = "sidx[0]" if red.op == "argmax" else "sacc[0]"
            b.line(f"    {out}[o] = {NP_TYPE[red.out.dtype.name]}({result})")
            b.line("cuda.syncthreads()   # sacc is reused by this block's next output")
        grid = max(1, min(t.max_grid, outer))
        self._finish(k.name, kb, b, grid, rb, k)

    # --- stores of updates that were not computed in place -------------------------------------
    def _emit_stores(self):
        """Copy each update's new value into its input's resident buffer (after every other launch)."""
        targets = {id(t): i for i, t in enumerate(self.graph.inputs)}
        updated = {id(t) for t, _ in self.graph.updates}
        for target, new in self.graph.updates:
            if id(new) in self.plan.in_place or new is target:
                continue
            if self.inline(new) or self.plan.home.get(id(new)) is None:
                src_desc = "a literal"
            else:
                src_desc = None
                base = self.base(new)
                if id(base) in updated and base is not target:
                    raise BackendError("numba_cuda", f"update {self.names[id(target)]} <- {self.names[id(new)]} "
                                                     f"reads another updated input",
                                       hint="run this graph with backend='numba_cpu'")
            i = targets[id(target)]
            name = f"store_{target.name.replace('.', '_')}_{len(self.kernels)}"
            kb = KernelBody(self, name)
            b = IndentedBuffer()
            b.line(f"# {self.names[id(target)]} <- {self.names[id(new)]}: the update was not computed in place")
            n = prod(target.shape)
            if src_desc:
                value = literal(np.asarray(new.node.attrs["value"]).reshape(-1)[0], target.dtype)
            else:
                buf = kb.buffer(new)
                value = f"{buf}[{self._elementwise_offset(new, tuple(target.shape), 'right')}]"
            kb.params.append(("o0", f"in{i}", ("array", target.dtype)))
            self.device_inputs.add(i)
            loop = [f"o0[f] = {value}"]
            b.line(f"for f in range(cuda.grid(1), {n}, cuda.gridsize(1)):")
            with b.indent():
                for ln in needed_indices(unravel("f", tuple(target.shape)), loop):
                    b.line(ln)
                for ln in loop:
                    b.line(ln)
            grid, block = self._flat_launch(n)
            self._finish(name, kb, b, grid, block)
            self.body.line("")



def uniform_lines(t, seed, counter):
    """graphc's counter-based uniform [0, 1), inlined: the same function as graphc.ops.source.uniform_bits."""
    return [
        f"z = (np.uint64({seed}) * np.uint64({GOLDEN:#x})) ^ np.uint64({counter})",
        f"z = z + np.uint64({GOLDEN:#x})",
        f"z = (z ^ (z >> np.uint64(30))) * np.uint64({MIX1:#x})",
        f"z = (z ^ (z >> np.uint64(27))) * np.uint64({MIX2:#x})",
        "z = z ^ (z >> np.uint64(31))",
        f"{t} = np.float32(z >> np.uint64(40)) * np.float32(1.0 / 16777216.0)",
    ]
