"""The Numba CPU backend: fuse, plan memory, emit a module of @njit kernels, load it through the disk cache.

    run = NumbaCPUBackend().compile(graph)    # run(input_arrays) -> (outputs, update values)
    run.source("python" | "llvm" | "asm" | "fused" | "plan")
"""
from __future__ import annotations

import re
import time
import warnings

import numpy as np

from ...collector import collector_paused
from ...config import log, settings
from ...errors import BackendError, ShapeError
from ...ir.symbolic import size_parameter
from ...passes.fusion import annotation, fuse, fuse_pass, unfused
from ...passes.memplan import loop_kernels_inline as inline_ok
from ...passes.memplan import plan_memory, plan_pass
from ..codegen.loader import drop_cache_for, load_module
from .emit import ModuleEmitter, kernel_failure, value_names


_inline_ok = inline_ok   # the old private name, until graphc.debug uses compile(keep_values=True)


def keep_every_value(fused, plan):
    """Give every stored kernel output its own buffer and drop in-place updates, so that after a run
    each value computed at a kernel boundary can still be read (Runner.value)."""
    pools = []
    for k in fused.kernels:
        for v in k.outputs:
            home = plan.home.get(id(v))
            if id(v) in plan.in_place or (home is not None and home[0] == "buffer"):
                plan.home[id(v)] = ("buffer", len(pools), 0)
                pools.append((np.dtype(v.dtype), max(v.size, 1)))
    plan.pools, plan.in_place = pools, {}


class NumbaCPUBackend:
    """Backend interface: compile(graph) -> Runner."""

    name = "numba_cpu"

    def prepare_passes(self):
        """Fusion and memory planning, run by the pass manager (so ir("fused"), ir("planned"), GRAPHC_DUMP
        and graphc.verify see them); they annotate the graph, and compile() uses the annotations."""
        return [("fused", fuse_pass), ("planned", plan_pass(inline_ok))]

    def sized_text(self, graph):
        """The generated source for `graph`, which must agree across batch sizes up to the numbers that
        follow the size (graphc.ir.symbolic) for one compiled module to serve them all."""
        fused, plan = self._fused_and_planned(graph, True, False)
        return ModuleEmitter(fused, plan, graph.name).emit()

    def _fused_and_planned(self, graph, fusion, keep_values):
        fused = annotation(graph, "fused") if fusion else None
        if fused is None or fused.graph is not graph:
            fused = fuse(graph) if fusion else unfused(graph)
        plan = annotation(graph, "planned")
        if keep_values or plan is None or getattr(plan, "fused", None) is not fused:
            plan = plan_memory(fused, inline_ok)
        if keep_values:
            keep_every_value(fused, plan)
        return fused, plan

    def compile(self, graph, cache_dir=None, keep_values=False, fusion=True, size_template=None, size=None,
                **options):
        """keep_values=True: no buffer reuse, no in-place updates, so Runner.value reads every kernel
        output after a run; fusion=False: every node its own kernel (both for debugging).

        size_template (a graphc.ir.symbolic.SizeTemplate of sized_text) and size: `graph` is one batch
        size of a dynamic compile; the module loaded is the template's, whose kernels take B as their
        first argument, so every size runs the same compiled machine code (its buffers are this size's).
        """
        if size_template is not None and (keep_values or not fusion):
            raise BackendError("numba_cpu", "keep_values=True and fusion=False compile one size at a time",
                               hint="compile with dynamic=False to debug a graph")
        phases = {}
        t0 = time.perf_counter()
        fused, plan = self._fused_and_planned(graph, fusion, keep_values)
        phases["fuse+plan"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        emitter = ModuleEmitter(fused, plan, graph.name)
        source = emitter.emit()
        lead = ()
        if size_template is not None:
            if not size_template.matches(source, size):   # the frontend checked; this is the backstop
                raise BackendError("numba_cpu", f"internal: the source at batch size {size} is not the "
                                                f"symbolic module's", hint="compile with dynamic=False")
            source, lead = size_parameter(size_template.text), (size,)
        phases["codegen"] = time.perf_counter() - t1
        log("kernels", source)
        _dump(graph.name, "py", source)
        runner = Runner(graph, fused, plan, emitter, source, cache_dir or settings.cache_dir, phases, lead)
        runner.warm_up()
        return runner


def _dump(name, ext, text):
    """With GRAPHC_DUMP set, write the generated source next to the IR stages."""
    if settings.dump:
        import os
        from ...fileio import write_atomic
        write_atomic(os.path.join(settings.dump, f"{name}.{ext}"), text)


def _failing_kernel(text, source, kernels):
    """Which kernel an error message points at: the generated line it quotes, else a kernel it names."""
    lines = source.splitlines()
    for match in re.finditer(r"line (\d+)", text):
        n = int(match.group(1)) - 1
        if 0 <= n < len(lines):
            called = re.match(r"\s*(\w+)\(", lines[n])
            if called and called.group(1) in kernels:
                return called.group(1)
            for back in range(n, -1, -1):
                defined = re.match(r"def (\w+)\(", lines[back])
                if defined:
                    if defined.group(1) in kernels:
                        return defined.group(1)
                    break
    named = [k for k in kernels if re.search(rf"\b{k}\b", text)]
    return named[-1] if named else None


def _recompiled(dispatcher, kind):
    """LLVM IR or assembly of a dispatcher that was loaded from numba's cache (which keeps neither)."""
    from numba import njit
    options = {k: v for k, v in dispatcher.targetoptions.items() if k not in ("cache", "nopython")}
    fresh = njit(**options)(dispatcher.py_func)
    for sig in dispatcher.signatures:
        fresh.compile(sig)
    return fresh.inspect_llvm() if kind == "llvm" else fresh.inspect_asm()


def _static(array):
    return lambda inputs: array


def reshape_view(array, shape):
    """array.reshape(shape) that must alias array: a copy would be filled once and then go stale.

    The fusion pass makes a reshape of a strided (permuted) value a copy kernel, so this never fires;
    it is the backstop that turns a planning mistake into an error instead of stale numbers.
    """
    out = array.reshape(shape)
    if out.size and not np.may_share_memory(out, array):
        raise BackendError("numba_cpu", f"internal: a reshape to {shape} of a strided array would copy, so it "
                                        f"cannot be a view of planned storage",
                           hint='compile with backend="interpreter" and report this graph')
    return out


def _reshaped(getter, shape):
    if getattr(getter, "dynamic", False):
        return _dynamic(lambda inputs: reshape_view(getter(inputs), shape))
    return _static(reshape_view(getter(None), shape))


def _dynamic(fn):
    fn.dynamic = True
    return fn


class Runner:
    """Calls the generated driver with the graph's inputs plus the planned buffers; hands back results."""

    def __init__(self, graph, fused, plan, emitter, source, cache_dir, phases, lead=()):
        self.graph = graph
        self.lead = lead   # (B,) for a size of a dynamic compile: the driver's first argument
        self.fused = fused
        self.plan = plan
        self.emitter = emitter
        self.source_text = source
        self.cache_dir = cache_dir
        self.pools = [np.empty(max(n, 1), dtype) for dtype, n in plan.pools]
        self.consts = list(emitter.consts)
        self.names = value_names(graph)
        t = time.perf_counter()
        self.module = load_module(source, cache_dir)
        phases["import"] = time.perf_counter() - t
        self.stats = {"phases": phases, "kernels": len(fused.kernels), "kernel_compile_s": {},
                      "pool_bytes": int(sum(p.nbytes for p in self.pools)),
                      "cache": "unknown"}
        self._getters = [self._getter(v) for v in graph.outputs]
        self._update_getters = [self._getter(new) for _, new in graph.updates]
        # The driver's parameters after the inputs: consts, one shaped array per planned value, extern impls.
        # Arrays that do not depend on the inputs are made once; views of inputs are made per call.
        self._args = list(self.consts)
        self._dynamic = []
        for param in emitter.params.values():
            getter = self._getter(param) if not isinstance(param, tuple) else _reshaped(self._getter(param[0]), param[1])
            self._dynamic.append((len(self._args), getter)) if getattr(getter, "dynamic", False) else None
            self._args.append(None if getattr(getter, "dynamic", False) else getter(None))
        self._args.extend(fn for _, fn in emitter.externs)

    # --- results -----------------------------------------------------------------------------
    def value(self, value, inputs):
        """The array holding `value` after a run on `inputs`, or None when it lives only inside a fused
        kernel.  Compile with keep_values=True so that no later kernel has overwritten it."""
        try:
            return self._getter(value)(inputs)
        except BackendError:
            return None

    def _getter(self, value):
        """A function of the input arrays giving `value`'s array; `.dynamic` says if it needs them."""
        home = self.plan.home.get(id(value))
        node = value.node
        if home is None or (node is not None and node.op == "const"):   # no kernel fills a const's buffer
            if node is not None and node.op in ("full", "const"):
                arr = np.full(value.shape, node.attrs["value"], dtype=value.dtype) if node.op == "full" \
                    else np.array(node.attrs["value"], dtype=value.dtype)
                return _static(arr)
            raise BackendError("numba_cpu", f"no storage planned for output {self.names.get(id(value))}")
        if home[0] == "input":
            i = home[1]
            return _dynamic(lambda inputs: inputs[i])
        if home[0] == "buffer":
            return _static(self.pools[home[1]][:value.size].reshape(value.shape))
        base = self._getter(home[1])
        node = value.node
        if node.op == "reshape":
            shape = value.shape
            make = lambda a: reshape_view(a, shape)   # noqa: E731
        else:
            perm = tuple(node.attrs["perm"])
            make = lambda a: np.transpose(a, perm)   # noqa: E731
        if getattr(base, "dynamic", False):
            return _dynamic(lambda inputs: make(base(inputs)))
        return _static(make(base(None)))

    # --- running -------------------------------------------------------------------------------
    def __call__(self, inputs):
        inputs = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in inputs]
        args = self._args
        if self._dynamic:
            args = list(args)
            for pos, getter in self._dynamic:
                args[pos] = getter(inputs)
        try:
            self.module.driver(*self.lead, *inputs, *args)
        except ValueError as exc:
            raise self._runtime_error(exc) from None
        return [g(inputs) for g in self._getters], [g(inputs) for g in self._update_getters]

    def _runtime_error(self, exc):
        text = str(exc)
        match = re.match(r"(\w+): (\w+): (.*)", text)
        if match and match.group(1) in self.emitter.kernel_locs:
            from ...errors import ShapeError
            return ShapeError(match.group(2), match.group(3), loc=self.emitter.kernel_locs[match.group(1)],
                              hint="check the targets passed to the loss")
        return BackendError("numba_cpu", f"a generated kernel failed: {text}")

    def _kernel_error(self, exc, inputs):
        """A BackendError naming the generated kernel that `exc` (from numba or a first run) points at."""
        text = str(exc)
        name = _failing_kernel(text, self.source_text, self.emitter.kernel_nodes)
        if name is None:   # numba's message names no line: call the kernels one by one to find it
            name, exc = self._first_failing_kernel(inputs) or (None, exc)
        stage = "compiling (numba)" if type(exc).__module__.startswith("numba") else "running for the first time"
        return kernel_failure("numba_cpu", stage, exc, name or "driver", self.emitter.kernel_nodes.get(name, []),
                              self.names)

    def _first_failing_kernel(self, inputs):
        """(name, exception) of the first kernel that fails when called on its own, in driver order."""
        import inspect
        if self.lead:   # the symbolic module's names are not this size's: leave the search to a static compile
            return None
        params = list(inspect.signature(self.module.driver).parameters)
        values = dict(zip(params, list(self.lead) + list(inputs) + list(self._args)))
        for pos, getter in self._dynamic:
            values[params[len(self.lead) + len(inputs) + pos]] = getter(inputs)
        for _, line in self.emitter.steps:
            call = re.match(r"(\w+)\((.*)\)$", line)
            if not call or call.group(1) not in self.emitter.kernel_nodes:
                continue
            try:
                getattr(self.module, call.group(1))(*[values[a.strip()] for a in call.group(2).split(",") if a.strip()])
            except ShapeError:
                continue
            except Exception as exc:
                return call.group(1), exc
        return None

    @collector_paused()   # numba's compile runs 10-30 % faster without the cyclic collector
    def warm_up(self):
        """Compile (or load from the disk cache) every kernel by running once on zeros; time each kernel."""
        from numba.core import event
        dummy = [np.zeros(v.shape, v.dtype) for v in self.graph.inputs]
        t = time.perf_counter()
        with event.install_recorder("numba:compile") as recorder:
            try:
                self(dummy)
            except ShapeError:   # a generated kernel's own check failing on zeros (e.g. one_hot's class range)
                pass
            except Exception as exc:   # a corrupt cache entry: drop it and build again once
                log("cache", f"loading cached kernels failed ({type(exc).__name__}: {exc}); rebuilding")
                drop_cache_for(self.module)
                try:
                    self.module = load_module(self.source_text, self.cache_dir)
                    self(dummy)
                except ShapeError:
                    pass
                except Exception as exc2:   # numba refused a kernel, or it failed on its first run
                    raise self._kernel_error(exc2, dummy) from None
        self.stats["phases"]["numba_compile"] = time.perf_counter() - t
        self._kernel_times(recorder)
        self.stats["cache"] = "miss" if self.stats["kernel_compile_s"] else "hit"

    def _kernel_times(self, recorder):
        open_at = {}
        times = {}
        for ts, ev in recorder.buffer:
            data = ev.data if isinstance(ev.data, dict) else {}
            disp = data.get("dispatcher")
            name = getattr(getattr(disp, "py_func", None), "__name__", None) or "?"
            if ev.is_start:
                open_at.setdefault(name, []).append(ts)
            elif open_at.get(name):
                times[name] = times.get(name, 0.0) + ts - open_at[name].pop()
        self.stats["kernel_compile_s"] = times

    # --- inspection ----------------------------------------------------------------------------
    def source(self, kind="python"):
        """The generated module ("python"), fused IR ("fused"), memory plan ("plan"), or "llvm"/"asm"."""
        if kind == "python":
            return self.source_text
        if kind == "fused":
            return str(self.fused)
        if kind == "plan":
            return self.plan.describe(self.names)
        if kind in ("llvm", "asm"):
            parts = []
            for name in [k.name for k in self.fused.kernels] + ["driver"]:
                disp = getattr(self.module, name, None)
                if disp is None or not hasattr(disp, "signatures") or not disp.signatures:
                    continue
                with warnings.catch_warnings():   # numba warns that code loaded from its cache has no IR
                    warnings.simplefilter("ignore")
                    texts = (disp.inspect_llvm if kind == "llvm" else disp.inspect_asm)()
                if not any("define " in t or "\t.text" in t or ".section" in t for t in texts.values()):
                    texts = _recompiled(disp, kind)   # loaded from the disk cache: no IR kept, compile again
                for sig, text in texts.items():
                    parts.append(f"; ---- {name}{sig} ----\n{text}")
            return "\n".join(parts)
        raise BackendError("source", f"unknown source kind {kind!r}", hint="python, fused, plan, llvm or asm")
