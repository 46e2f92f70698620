"""Emit one readable Python module of @njit kernels plus a driver for a fused, planned graph.

    src = ModuleEmitter(fused, plan).emit()
    # @njit(cache=True, error_model="numpy", fastmath=FAST)
    # def fused_add_relu_2(a0, a1, o0):
    #     # %2: f32[64,128] = add %1, %b      (mnist_mlp.py:21)
    #     # %3: f32[64,128] = relu %2
    #     for i0 in range(64):
    #         for i1 in range(128):
    #             ...

Every kernel carries the IR lines it implements as comments, and its name says what is inside.
"""
from __future__ import annotations

import re
import sys

import numpy as np

from ...version import __version__
from ...config import settings
from ...errors import BackendError, GraphcError
from ...ir.printer import value_names
from ...ops import OPS
from ..codegen import IndentedBuffer
from ..codegen.body import LoopBody
from ..codegen.names import ir_line, param_name
from ..codegen.scalar import NP_TYPE, identity
from . import blas, templates
from .multirange import emit_run, runs_of
from .rowloops import emit_rowwise
from .sharing import SharedKernels

# Loops of settings.parallel_min_elements elements or more are prange loops (config.py says why the
# default is 1M; mode="max-autotune" goes down to the crossover benchmarks/bench_parallel_threshold.py
# measures, 2**17).
# Every generated function is called from Python (driver, segments, the profiler) or from other
# @njit code, never through a C function pointer: numba's cfunc wrapper is ~10 % of a cold compile
# for nothing (measured on fuzz programs of 30-340 driver arguments).
NJIT_OPTIONS = 'cache=True, error_model="numpy", fastmath=FAST, no_cfunc_wrapper=True'
# Serial kernels are inlined into the driver at numba's IR level: one function to compile instead of
# dozens cuts a cold compile ~2x (numba's per-function overhead dominates small kernels), while the
# source keeps one readable function per kernel.
KERNEL_DECORATOR = f'@njit({NJIT_OPTIONS}, inline="always")'
# CPython compiles a call with more than 30 arguments (its STACK_USE_GUIDELINE) as `f(*args)`, and
# numba's inliner refuses a *args call ("Calling a closure with *args is unsupported"): such kernels
# (a fused optimizer update over many parameters) are compiled out of line, which numba does support.
MAX_INLINE_ARGS = 30
MAX_NJIT_DRIVER_ARGS = 256
OUT_OF_LINE_DECORATOR = f'@njit({NJIT_OPTIONS})'
PARALLEL_DECORATOR = f'@njit({NJIT_OPTIONS}, parallel=True)'


# Large pooling kernels (settings.parallel_min_elements) split the batch across numba's threads (prange)
# and are called from the host driver: a cached @njit kernel that calls a parallel numba function crashes
# (segfault) when numba loads it from its disk cache in a later process. Small ones call the serial
# builds inside the driver (a host call splits the @njit driver, which costs compile time).
POOL_HOST = dict(host=True, why="the eager max-pool loop, its batch split across numba's threads")

# An array-to-array assignment (out[...] = src) makes numba compile its broadcasting error path, whose
# message formatting costs ~3 s of compile the first time in a process; an element loop costs 0.4 s.
COPY_LOOP = "for i in np.ndindex({src}.shape):\n    {dst}[i] = {src}[i]"


def parallel_reason():
    """Why a kernel's outer loop is a prange: the comment generated source carries."""
    return (f"GRAPHC_PARALLEL on and at least {settings.parallel_min_elements:,} elements, where threads pay for "
            f"their launch and their compile time")


class ModuleEmitter:
    """Builds the source text; `.consts`, `.params` and `.externs` tell the runner what else to pass."""

    def __init__(self, fused, plan, name):
        self.fused = fused
        self.graph = fused.graph
        self.plan = plan
        self.name = name
        self.names = value_names(self.graph)
        self.consts = []          # arrays the runner passes as const{j}
        self.const_index = {}
        self.kernel_locs = {}     # kernel name -> loc of its first node (for runtime errors)
        self.kernel_nodes = {}    # kernel name -> its nodes (for error messages)
        self.externs = []         # (driver parameter, host function) for ops without a generated kernel
        self.out = IndentedBuffer()
        self.uses_uniform = False
        self.uses_conv = False
        self.uses_pool = False
        self.uses_blas = False
        self.uses_host_matmul = False
        # Planned buffers and views reach the driver as arrays the runner shaped once (a reshape or
        # np.transpose inside the driver costs seconds of numba compile time for their error paths).
        self.params = {}
        self.input_names = driver_input_names(self.graph, [k.name for k in fused.kernels])

    # --- values in the driver ----------------------------------------------------------------
    def var(self, value):
        """The driver parameter holding `value`: a graph input, or an array the runner prepares once."""
        node = value.node
        if node is not None and node.op == "const":
            return self._const(value)   # even when the plan gave it a buffer: no kernel ever fills that buffer
        home = self.plan.storage(value)   # the plan answers for every value a kernel touches
        if home[0] == "input":
            return self.input_names[home[1]]
        name = param_name(self.names[id(value)])
        self.params.setdefault(name, value)
        return name

    def _const(self, value):
        key = id(value)
        if key not in self.const_index:
            self.const_index[key] = len(self.consts)
            self.consts.append(np.ascontiguousarray(value.node.attrs["value"], dtype=value.dtype))
        return f"const{self.const_index[key]}"

    def inline(self, value):
        return self.plan.inlines(value)

    # --- the module ----------------------------------------------------------------------------
    def emit(self):
        out = self.out
        import numba
        out.line(f'"""Kernels for graph `{self.graph.name}`, generated by graphc {__version__}.')
        out.line("")
        out.line(f"numba {numba.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}.")
        out.line("Each kernel lists the IR lines it implements; the driver at the bottom runs them in order.")
        out.line('"""')
        out.line("import math")
        out.line("")
        out.line("import numpy as np")
        out.line("from numba import njit, prange")
        out.line("")
        out.line('FAST = {"reassoc", "contract"}   # no nnan/ninf: NaN and inf behave as in numpy')
        out.line("")
        body = IndentedBuffer()
        self.steps = []            # ("njit" | "host", call line), in execution order
        self.step_kernels = []     # per step, the fused kernel's name (its call may run shared code)
        self._emit_kernels(body)
        if self.uses_blas:
            out.lines_from(blas.module_prelude())
            out.line("")
        if self.uses_host_matmul:
            out.line("from graphc.threadpool import matmul_into as _graphc_matmul_into")
            out.line("")
        if self.uses_uniform:
            out.lines_from(templates.UNIFORM)
            out.line("")
        if self.uses_conv:
            out.lines_from(templates.conv_helpers())
            out.line("")
        if self.uses_pool:
            out.lines_from(templates.pool_helpers())
            out.line("")
        out.lines_from(body.getvalue())
        args = list(self.input_names) + [f"const{j}" for j in range(len(self.consts))] \
            + list(self.params) + [name for name, _ in self.externs]
        out.line("")
        self._emit_driver(out, args)
        return out.getvalue()

    def _emit_driver(self, out, args):
        """One @njit driver; or, when host kernels (numpy BLAS calls) sit between them, @njit segments
        called in order from a plain Python driver."""
        doc = f'"""Runs graph `{self.graph.name}`: {len(self.steps)} kernel calls."""'
        # error_model="numpy" here too: kernels are inlined into the driver and compiled with ITS flags,
        # so under Python's error model x / 0 would raise ZeroDivisionError instead of giving inf/nan.
        if len(args) > MAX_NJIT_DRIVER_ARGS:
            # numba unboxes every argument of an @njit function in generated code: ~17 ms of compile
            # per array argument, so a driver of 800 arrays (Adam over 50 parameter tensors) took ~30 s.
            # A plain Python driver calls each kernel's own dispatcher instead (~2 us a call).
            out.line(f"def driver({', '.join(args)}):")
            with out.indent():
                out.line(doc[:-3] + f' From Python: {len(args)} arguments are too many for one @njit function."""')
                for _, line in self.steps:
                    out.line(line)
                out.line("return 0")
            return
        if all(kind == "njit" for kind, _ in self.steps):
            out.line(OUT_OF_LINE_DECORATOR)
            out.line(f"def driver({', '.join(args)}):")
            with out.indent():
                out.line(doc)
                for _, line in self.steps:
                    out.line(line)
                out.line("return 0")
            return
        runs, calls = [], []
        for kind, line in self.steps:
            if kind == "host":
                calls.append(line)
            elif calls and isinstance(calls[-1], list):
                calls[-1].append(line)
            else:
                calls.append([line])
        for n, lines in enumerate(c for c in calls if isinstance(c, list)):
            used = []
            for line in lines:
                for name in re.findall(r"[(,]\s*(\w+)(?=[,)])", line):
                    if name not in used:
                        used.append(name)
            runs.append((f"segment_{n}", used, lines))
            out.line(OUT_OF_LINE_DECORATOR)
            out.line(f"def segment_{n}({', '.join(used)}):")
            with out.indent():
                for line in lines:
                    out.line(line)
                out.line("return 0")
            out.line("")
        out.line(f"def driver({', '.join(args)}):")
        with out.indent():
            out.line(doc)
            n = 0
            for c in calls:
                if isinstance(c, list):
                    name, used, _ = runs[n]
                    out.line(f"{name}({', '.join(used)})")
                    n += 1
                else:
                    out.line(c)
            out.line("return 0")

    def _emit_kernels(self, body):
        sharing = SharedKernels()
        runs = runs_of(self, self.fused.kernels) if settings.multirange else {}
        in_run = {id(k) for run in runs.values() for k in run[1:]}
        for k in self.fused.kernels:
            start = len(body.lines)
            self._emit_kernel(k, body, runs, in_run)
            sharing.add(body, start)
        self.step_kernels = sharing.finish(body, self.steps, KERNEL_DECORATOR, OUT_OF_LINE_DECORATOR)

    def _emit_kernel(self, k, body, runs, in_run):
        if id(k) in in_run:
            return    # emitted with the first kernel of its run
        if id(k) in runs:   # several kernels with one body (the optimizer update): one loop over their ranges
            run = runs[id(k)]
            n_args = len([v for v in k.inputs if not self.inline(v)]) + len(self.plan.writes(k))
            emit_run(self, run, body, OUT_OF_LINE_DECORATOR if n_args > MAX_INLINE_ARGS else KERNEL_DECORATOR)
            body.line("")
            return
        if not k.outputs:
            return    # nothing reads its results (dead code the pipeline's dce would drop)
        if not self.plan.writes(k) and k.kind in ("elementwise", "const"):
            return    # every reader inlines these literals
        if k.kind == "const":
            return    # consts are passed in by the runner
        if k.kind == "view":
            return    # views are made by the runner (see self.params)
        self.kernel_locs[k.name] = k.nodes[0].loc
        self.kernel_nodes[k.name] = k.nodes
        emit = getattr(self, f"_emit_{k.kind}", None) or self._emit_extern
        try:
            emit(k, body)
        except GraphcError:
            raise
        except Exception as exc:   # a lowering bug: name the kernel and its IR, never a raw traceback
            raise kernel_failure("numba_cpu", "emitting", exc, k.name, k.nodes, self.names) from exc
        body.line("")

    def _header(self, k, body, args, parallel=False):
        body.line(PARALLEL_DECORATOR if parallel else
                  OUT_OF_LINE_DECORATOR if len(args) > MAX_INLINE_ARGS else KERNEL_DECORATOR)
        body.line(f"def {k.name}({', '.join(args)}):")
        body.level += 1
        for node in k.nodes:
            body.line("# " + ir_line(node, self.names))
        if parallel:
            body.line(f"# parallel: the outer loop is a prange ({parallel_reason()})")

    def _call(self, k, args, host=False):
        self.steps.append(("host" if host else "njit", f"{k.name}({', '.join(args)})"))

    def _contiguous(self, value):
        home = self.plan.home.get(id(value))
        if home is None or home[0] != "view":
            return True
        node = value.node
        if node.op == "permute":
            return list(node.attrs["perm"]) == sorted(node.attrs["perm"])
        return self._contiguous(node.inputs[0])

    # --- elementwise -----------------------------------------------------------------------
    def _emit_elementwise(self, k, body):
        shape = tuple(k.shape)
        rank = len(shape)
        ext = [v for v in k.inputs if not self.inline(v)]
        arg_of = {id(v): f"a{i}" for i, v in enumerate(ext)}
        writes = self.plan.writes(k)   # outputs every reader inlines as a literal are not stored
        outs = {id(v): f"o{i}" for i, v in enumerate(writes)}
        size = int(np.prod(shape)) if shape else 1
        parallel = settings.parallel and size >= settings.parallel_min_elements and rank >= 1 and shape[0] > 1
        views, shape_of = {}, {}
        if not any(n.op == "one_hot" for n in k.nodes):
            shape, views, shape_of = self._collapse(shape, [v for v in ext if v.shape], writes, ())
            rank = len(shape)
        self._header(k, body, list(arg_of.values()) + list(outs.values()), parallel)
        idx = [f"i{d}" for d in range(rank)]
        loaded = self._hoist_scalars(ext, arg_of, body)
        for d in range(rank):
            rng = "prange" if (d == 0 and parallel) else "range"
            body.line(f"for i{d} in {rng}({shape[d]}):")
            body.level += 1

        def bad_class(classes):
            return f"raise ValueError('{k.name}: one_hot: a class index is out of range for {classes} classes')"

        load = self._loader(body, arg_of, loaded, shape_of, shape)
        loop = LoopBody(self.plan, load, body.line, rank, self._flat_index(shape),
                        bad_class=bad_class, uniform=self._uniform)
        at = ", ".join(idx) if rank else "()"
        loop.emit_nodes(k.nodes, {id(v): f"{outs[id(v)]}[{at}]" for v in writes})
        body.level -= rank + 1
        self._call(k, [views.get(id(v)) or self.var(v) for v in ext + writes])

    def _collapse(self, shape, inputs, outputs, axes):
        """Merge adjacent loop dims that every operand walks alike (as numpy's iterator coalesces them).

        (100, 64, 24, 24) + bias (1, 64, 1, 1) -> loops over (100, 64, 576): fewer, longer loops that
        compile faster and vectorise better.  Dims merge when, for every operand, both are full-size or
        both are broadcast, and (for a reduction) both are reduced or both kept.  Operands reach the
        kernel as views of the merged shape that the runner makes; only C-contiguous ones can.
        Returns (new shape, {id(value): view param}, {id(value): merged shape}) or the input unchanged.
        """
        rank = len(shape)
        if rank < 2 or not all(self._contiguous(v) for v in inputs):
            return shape, {}, {}
        padded = [(1,) * (rank - len(v.shape)) + tuple(v.shape) for v in inputs]
        def kind(p, d):   # a loop dim of size 1 walks alike with anything
            return "unit" if shape[d] == 1 else ("full" if p[d] == shape[d] else "broadcast")
        groups, group_kinds = [[0]], [kind(p, 0) for p in padded]
        for d in range(1, rank):
            kinds = [kind(p, d) for p in padded]
            if (d in axes) == (d - 1 in axes) and all(g == k or "unit" in (g, k) for g, k in zip(group_kinds, kinds)):
                groups[-1].append(d)
                group_kinds = [k if g == "unit" else g for g, k in zip(group_kinds, kinds)]
            else:
                groups.append([d])
                group_kinds = kinds
        if len(groups) == rank:
            return shape, {}, {}
        merge = lambda dims: tuple(int(np.prod([dims[d] for d in g])) for g in groups)   # noqa: E731
        new_shape = merge(shape)
        views, shape_of = {}, {}
        for v, p in zip(inputs, padded):
            shape_of[id(v)] = merge(p)
            views[id(v)] = self.view_param(v, shape_of[id(v)])
        for v in outputs:
            out_shape = new_shape if not axes else tuple(n for g, n in zip(groups, new_shape) if g[0] not in axes)
            views[id(v)] = self.view_param(v, out_shape)
        self.collapsed_groups = groups
        return new_shape, views, shape_of

    @staticmethod
    def _hoist_scalars(ext, arg_of, body):
        """Load 0-d inputs once, before the loops (parfor kernels cannot index 0-d arrays inside prange)."""
        loaded = {}
        for v in ext:
            if not v.shape:
                name = f"s{len(loaded)}"
                body.line(f"{name} = {arg_of[id(v)]}[()]")
                loaded[(id(v), "right")] = name
        return loaded

    def _loader(self, body, arg_of, loaded, shape_of, shape):
        """LoopBody's load(value, align): an input element's first read writes `x{n} = a{i}[...]` to `body`."""
        def load(value, align):
            key = (id(value), align) if value.shape else (id(value), "right")
            if key not in loaded:
                loaded[key] = f"x{len(loaded)}"
                index = self._index(shape_of.get(id(value), value.shape), shape, align)
                body.line(f"{loaded[key]} = {arg_of[id(value)]}[{index}]")
            return loaded[key]
        return load

    @staticmethod
    def _index(src_shape, shape, align="right"):
        """Index expression reading an array of src_shape at loop indices over `shape` (numpy broadcasting)."""
        rank, k = len(shape), len(src_shape)
        if k == 0:
            return "()"
        offset = rank - k if align == "right" else 0
        parts = []
        for j in range(k):
            d = offset + j
            parts.append("0" if (src_shape[j] == 1 and shape[d] != 1) else f"i{d}")
        return ", ".join(parts)

    def _uniform(self, t, seed, counter):
        """`t` = uniform [0, 1) bits of element `counter`, by the module's _graphc_uniform (templates.UNIFORM)."""
        self.uses_uniform = True
        return [f"{t} = _graphc_uniform({seed}, {counter})"]

    @staticmethod
    def _flat_index(shape):
        if not shape:
            return "0"
        text = "i0"
        for d in range(1, len(shape)):
            text = f"({text} * {shape[d]} + i{d})"
        return text

    # --- reductions ------------------------------------------------------------------------
    def _emit_reduce(self, k, body):
        red = k.nodes[-1]
        shape = tuple(red.inputs[0].shape)
        rank = len(shape)
        axes = red.attrs.get("axes")
        if red.op == "argmax":
            axes = tuple(range(rank)) if red.attrs.get("axis") is None else (red.attrs["axis"],)
        axes = tuple(range(rank)) if axes is None else tuple(axes)
        ext = [v for v in k.inputs if not self.inline(v)]
        arg_of = {id(v): f"a{i}" for i, v in enumerate(ext)}
        new_shape, views, shape_of = self._collapse(shape, [v for v in ext if v.shape], [red.out], axes)
        if views:
            axes = tuple(i for i, g in enumerate(self.collapsed_groups) if g[0] in axes)
            shape, rank = new_shape, len(new_shape)
        keep = [d for d in range(rank) if d not in axes]
        total = int(np.prod(shape)) if shape else 1
        parallel = settings.parallel and total >= settings.parallel_min_elements and keep and shape[keep[0]] >= 4
        self._header(k, body, list(arg_of.values()) + ["o0"], parallel)
        loaded = self._hoist_scalars(ext, arg_of, body)
        for n, d in enumerate(keep):
            body.line(f"for i{d} in {'prange' if (n == 0 and parallel) else 'range'}({shape[d]}):")
            body.level += 1
        if red.op != "argmax":   # the accumulator starts at the table's identity
            body.line(f"acc = {identity(red.op, red.inputs[0].dtype)}")
        else:
            body.line("best = -np.inf")
            body.line("besti = -1")
            body.line("k = 0")
        for d in axes:
            body.line(f"for i{d} in range({shape[d]}):")
            body.level += 1
        load = self._loader(body, arg_of, loaded, shape_of, shape)
        loop = LoopBody(self.plan, load, body.line)   # a prologue: no one_hot, no uniform
        loop.emit_nodes(k.nodes[:-1])
        src = loop.read(red.inputs[0])
        if red.op != "argmax":   # the table's combining template
            body.line(f"acc = {OPS[red.op].scalar.format(src, acc='acc')}")
        else:
            body.line(f"if besti < 0 or {src} > best or ({src} != {src} and best == best):")
            body.line(f"    best = {src}")
            body.line("    besti = k")
            body.line("k += 1")
        body.level -= len(axes)
        out = red.out
        if red.op == "argmax":
            keepdim = red.attrs.get("keepdim") and red.attrs.get("axis") is not None
        else:
            keepdim = red.attrs.get("keepdim")
        if not out.shape or (views and not keep):
            oidx = "()"
        elif views:   # the output is a view of the merged kept dims
            oidx = ", ".join(f"i{d}" for d in keep)
        elif keepdim:
            oidx = ", ".join("0" if d in axes else f"i{d}" for d in range(rank))
        else:
            oidx = ", ".join(f"i{d}" for d in keep)
        result = "besti" if red.op == "argmax" else "acc"
        body.line(f"o0[{oidx}] = {NP_TYPE[out.dtype.name]}({result})")
        body.level -= len(keep) + 1
        self._call(k, [views.get(id(v)) or self.var(v) for v in ext + [red.out]])

    _emit_argmax = _emit_reduce

    def _emit_rowwise(self, k, body):
        """A loop over rows with a few passes over each row (softmax, log-softmax, cross-entropy): rowloops.py."""
        emit_rowwise(self, k, body)

    # --- library calls and templates -----------------------------------------------------------
    def _emit_matmul(self, k, body):
        node = k.nodes[-1]
        a, b = node.inputs
        if a.dtype.kind != "f" or a.dtype != b.dtype:
            raise BackendError("matmul", f"numba_cpu lowers float matmuls only, got {a.dtype} @ {b.dtype}",
                               loc=node.loc)
        batch = node.out.shape[:-2]
        if not batch and splits_on_host(a.shape[-1], node.out.shape[-1]):
            return self._emit_host_matmul(k, body)
        self._header(k, body, ["a", "b", "out"])
        for d, n in enumerate(batch):
            body.line(f"for i{d} in range({n}):")
            body.level += 1

        def sub(v, name):
            lead = len(v.shape) - 2
            off = len(batch) - lead
            idx = ["0" if v.shape[j] == 1 and batch[off + j] != 1 else f"i{off + j}" for j in range(lead)]
            return f"{name}[{', '.join(idx)}]" if idx else name

        out_idx = f"out[{', '.join(f'i{d}' for d in range(len(batch)))}]" if batch else "out"
        args, names = self._matmul_operands(a, b, batch, sub)
        self.uses_blas = True   # numpy's OpenBLAS, the one pool numpy's own matmuls use too (see blas.py)
        body.line(f"_graphc_gemm({names[0]}, {names[1]}, {out_idx})")
        body.level -= len(batch) + 1
        self._call(k, args + [self.var(node.out)])

    def _matmul_operands(self, a, b, batch, sub=None):
        # A transposed 2-D operand is passed as its contiguous base and transposed inside the kernel:
        # numba (or numpy) then calls BLAS with a transpose flag instead of copying.
        args, names = [], []
        for v, name in ((a, "a"), (b, "b")):
            base = self._transposed_base(v) if not batch else None
            args.append(self.var(base) if base is not None else self.var(v))
            names.append(f"{name}.T" if base is not None else (sub(v, name) if sub else name))
        return args, names

    def _emit_host_matmul(self, k, body):
        """A large 2-D product: row blocks on graphc's threads, one BLAS thread each (graphc.threadpool).
        A host kernel, because a cached @njit kernel that calls a parallel numba function crashes when
        numba loads it from its disk cache in a later process."""
        node = k.nodes[-1]
        args, names = self._matmul_operands(*node.inputs, batch=())
        self.uses_host_matmul = True
        body.line(f"def {k.name}(a, b, out):")
        body.level += 1
        body.line('"""Runs in Python: a large product, split into row blocks across graphc\'s threads."""')
        body.line("# " + ir_line(node, self.names))
        body.line(f"_graphc_matmul_into({names[0]}, {names[1]}, out)")
        body.level -= 1
        self._call(k, args + [self.var(node.out)], host=True)

    def _transposed_base(self, value):
        home = self.plan.home.get(id(value))
        node = value.node
        if home is None or home[0] != "view" or node.op != "permute" or tuple(node.attrs["perm"]) != (1, 0):
            return None
        base = node.inputs[0]
        return base if self._contiguous(base) else None

    def view_param(self, value, shape):
        """A driver parameter holding `value` reshaped (the runner makes the view; no reshape in numba)."""
        name = self.var(value) + "_as_" + "x".join(str(d) for d in shape)
        self.params.setdefault(name, (value, tuple(shape)))
        return name

    def _emit_conv(self, k, body, args, values, text, host=False,
                   why="the eager conv kernel, batch split over graphc's threads, numpy's BLAS"):
        """A kernel from a template body, called with explicit driver values."""
        if host:
            body.line(f"def {k.name}({', '.join(args)}):")
            body.level += 1
            body.line(f'"""Runs in Python: {why}."""')
            for node in k.nodes:
                body.line("# " + ir_line(node, self.names))
        else:
            self._header(k, body, args)
        body.lines_from(text)
        body.level -= 1
        self._call(k, values, host=host)

    # NOTE: conv kernels run on the host and call the eager conv kernels: numba im2col/col2im plus
    # numpy's OpenBLAS, the batch split across graphc's threads with one BLAS thread each. Inside
    # @njit they were no faster, and multi-threaded GEMMs under contention were 7-10x slower.
    def _emit_conv2d(self, k, body):
        self.uses_conv = True
        node = k.nodes[-1]
        x, w = node.inputs
        g = templates.geometry(x.shape, w.shape, node.attrs["stride"], node.attrs["padding"])
        self._emit_conv(k, body, ["x", "w2", "y3"],
                        [self.var(x), self.view_param(w, (g["O"], g["K"])),
                         self.view_param(node.out, (g["N"], g["O"], g["P"]))],
                        templates.conv2d_forward_host(g), host=True)

    def _emit_conv2d_grad_weight(self, k, body):
        self.uses_conv = True
        node = k.nodes[-1]
        gy, x = node.inputs
        g = templates.geometry(x.shape, node.out.shape, node.attrs["stride"], node.attrs["padding"])
        self._emit_conv(k, body, ["gy3", "x", "gw2"],
                        [self.view_param(gy, (g["N"], g["O"], g["P"])), self.var(x),
                         self.view_param(node.out, (g["O"], g["K"]))],
                        templates.conv2d_grad_weight_host(g), host=True)

    def _emit_conv2d_grad_input(self, k, body):
        self.uses_conv = True
        node = k.nodes[-1]
        gy, w = node.inputs
        g = templates.geometry(node.out.shape, w.shape, node.attrs["stride"], node.attrs["padding"])
        self._emit_conv(k, body, ["gy3", "w2", "gx"],
                        [self.view_param(gy, (g["N"], g["O"], g["P"])), self.view_param(w, (g["O"], g["K"])),
                         self.var(node.out)],
                        templates.conv2d_grad_input_host(g), host=True)

    def _emit_template(self, k, body, args, text):
        node = k.nodes[-1]
        self._header(k, body, args, parallel="prange" in text)
        body.lines_from(text)
        body.level -= 1
        self._call(k, [self.var(v) for v in node.inputs] + [self.var(node.out)])

    # Pooling reuses the eager kernels' loops (copied into the module): the same tie and NaN rules as
    # the interpreter, and their unrolled 2x2/stride-2 argmax.
    def _emit_maxpool2d_argmax(self, k, body):
        self.uses_pool = True
        node = k.nodes[-1]
        a = node.attrs
        pre, host = self._pool_mode(node.inputs[0])
        if tuple(a["kernel"]) == (2, 2) and tuple(a["stride"]) == (2, 2) and tuple(a["padding"]) == (0, 0):
            text = f"{pre}argmax_2x2_loop(x, idx)"
        else:
            text = f"{pre}argmax_loop(x, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, idx)".format(*a["kernel"], *a["stride"],
                                                                                    *a["padding"])
        self._emit_conv(k, body, ["x", "idx"], [self.var(node.inputs[0]), self.var(node.out)], text, **host)

    @staticmethod
    def _pool_mode(value):
        """("par_", POOL_HOST) for a pooling kernel over a large input, else ("", {}): see POOL_HOST."""
        if settings.parallel and int(np.prod(value.shape)) >= settings.parallel_min_elements:
            return "par_", POOL_HOST
        return "", {}

    def _emit_maxpool2d_gather(self, k, body):
        self.uses_pool = True
        node = k.nodes[-1]
        x, idx = node.inputs
        n, c = x.shape[:2]
        pre, host = self._pool_mode(x)
        self._emit_conv(k, body, ["x3", "idx3", "y3"],
                        [self.view_param(x, (n, c, x.shape[2] * x.shape[3])),
                         self.view_param(idx, (n, c, idx.shape[2] * idx.shape[3])),
                         self.view_param(node.out, (n, c, idx.shape[2] * idx.shape[3]))],
                        f"{pre}gather_loop(x3, idx3, y3)", **host)

    def _emit_maxpool2d_scatter(self, k, body):
        self.uses_pool = True
        node = k.nodes[-1]
        gy, idx = node.inputs
        n, c, h, w = node.out.shape
        pre, host = self._pool_mode(node.out)
        text = f"{pre}scatter_loop(gy3, idx3, gx3)"   # zeroes each plane of gx3 before adding into it
        self._emit_conv(k, body, ["gy3", "idx3", "gx3"],
                        [self.view_param(gy, (n, c, gy.shape[2] * gy.shape[3])),
                         self.view_param(idx, (n, c, idx.shape[2] * idx.shape[3])),
                         self.view_param(node.out, (n, c, h * w))], text, **host)

    def _emit_getitem(self, k, body):
        node = k.nodes[-1]
        slices = templates.index_text(node.attrs["index"])
        real_shape = templates.shape_without_new_axes(node.attrs["index"], node.inputs[0].shape)
        out = self.view_param(node.out, real_shape) if real_shape else self.var(node.out)
        self._emit_conv(k, body, ["x", "out"], [self.var(node.inputs[0]), out],
                        f"src = x[{slices}]\n{COPY_LOOP.format(dst='out', src='src')}" if real_shape
                        else f"out[()] = x[{slices}]")

    def _emit_getitem_grad(self, k, body):
        node = k.nodes[-1]
        slices = templates.index_text(node.attrs["index"])
        real_shape = templates.shape_without_new_axes(node.attrs["index"], node.attrs["shape"])
        g = self.view_param(node.inputs[0], real_shape) if real_shape else self.var(node.inputs[0])
        text = "out[...] = 0\n" + (f"dst = out[{slices}]\n{COPY_LOOP.format(dst='dst', src='g')}" if real_shape
                                   else f"out[{slices}] = g[()]")
        self._emit_conv(k, body, ["g", "out"], [g, self.var(node.out)], text)

    def _emit_extern(self, k, body):
        """An op with no generated kernel: the op table's numpy implementation runs on the host, reading
        and writing the planned buffers (like the conv kernels).   extern_sort_12(x, out, impl_sort_12)"""
        node = k.nodes[-1]
        k.name = f"extern_{k.name}" if not k.name.startswith("extern_") else k.name
        self.kernel_locs[k.name] = node.loc
        self.kernel_nodes[k.name] = k.nodes
        impl = f"impl_{k.name}"
        self.externs.append((impl, extern_impl(node)))
        args = [f"x{i}" for i in range(len(node.inputs))]
        body.line(f"def {k.name}({', '.join(args + ['out', 'impl'])}):")
        body.level += 1
        body.line(f'"""Extern: numba_cpu has no kernel for `{node.op}`, so the op table\'s numpy '
                  f'implementation runs on the host."""')
        body.line("# " + ir_line(node, self.names))
        body.line(f"out[...] = impl({', '.join(args)})")
        body.level -= 1
        self._call(k, [self.var(v) for v in node.inputs] + [self.var(node.out), impl], host=True)

    def _emit_concat(self, k, body):
        node = k.nodes[-1]
        axis = node.attrs["axis"]
        args = [f"x{i}" for i in range(len(node.inputs))]
        lines, start = [], 0
        for i, v in enumerate(node.inputs):
            stop = start + v.shape[axis]
            idx = ", ".join(f"{start}:{stop}" if d == axis else ":" for d in range(len(v.shape)))
            lines.append(f"dst{i} = out[{idx}]\n{COPY_LOOP.format(dst=f'dst{i}', src=f'x{i}')}")
            start = stop
        self._emit_template(k, body, args + ["out"], "\n".join(lines))


def splits_on_host(k, n):
    """Whether a 2-D matmul of inner size k and n columns runs on the host, split into row blocks: when
    even MIN_ROWS rows reach SPLIT_GEMM / 4 multiply-adds (a decision on k and n only, so a dynamic
    batch size keeps one kernel text).   splits_on_host(9216, 128) -> True; (784, 128) -> False"""
    from ...threadpool import MIN_ROWS, SPLIT_GEMM
    return k * n * MIN_ROWS >= SPLIT_GEMM // 4


def driver_input_names(graph, kernel_names):
    """The driver's parameter for each graph input, named after it:  %fc1.weight -> fc1_weight.
    A name that would shadow a module-level name or another parameter gets its position appended."""
    import keyword
    taken = {"np", "math", "njit", "prange", "FAST", "driver"} | set(kernel_names)
    names = []
    for i, v in enumerate(graph.inputs):
        name = param_name("%" + v.name)
        if (name in taken or keyword.iskeyword(name) or name.startswith("_")
                or re.match(r"(v\d|const\d|impl_|segment_)", name)):
            name = f"{name}_in{i}"
        taken.add(name)
        names.append(name)
    return names


def lowering_of(op):
    """How numba_cpu runs an op: 'loop' (inside a generated loop nest), 'kernel' (its own generated
    kernel), 'driver' (a view, const or autodiff request, handled before codegen) or 'extern' (the op
    table's impl on the host).   lowering_of("relu") -> 'loop'; lowering_of("sort") -> 'extern'"""
    d = OPS[op]
    if d.fuse == "loop":
        return "loop"
    if d.fuse == "view" or op == "const" or d.kind == "autodiff":
        return "driver"
    kind = "reduce" if d.kind == "reduce" else op
    return "kernel" if hasattr(ModuleEmitter, f"_emit_{kind}") else "extern"


def extern_impl(node):
    """The host function an extern kernel calls: the op's impl with the node's attributes, cast to its dtype."""
    impl, attrs, dtype = OPS[node.op].impl, dict(node.attrs), node.out.dtype
    if impl is None:
        raise BackendError(node.op, "has no implementation in the op table, so no backend can run it", loc=node.loc)

    def run(*args):
        return np.asarray(impl(*args, **attrs)).astype(dtype, copy=False)
    run.__name__ = f"impl_{node.op}"
    return run


def kernel_failure(backend, stage, exc, name, nodes, names):
    """A BackendError for a kernel that failed while `stage` (emitting, compiling, running): names the
    kernel, lists its IR lines, points at the user's line, and says how to fall back."""
    first = str(exc).strip().splitlines()
    detail = "kernel IR:\n" + "\n".join("    " + ir_line(n, names) for n in nodes) if nodes else None
    return BackendError(f"{backend} kernel {name}",
                        f"failed while {stage}: {type(exc).__name__}: {first[0] if first else ''}",
                        loc=next((n.loc for n in nodes if n.loc), None) if nodes else None, detail=detail,
                        hint='compile with backend="interpreter" (or set GRAPHC_FALLBACK=interpreter) to run '
                             'this step without generated kernels, and report the program')
