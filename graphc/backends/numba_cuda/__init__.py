"""The Numba CUDA backend: fuse, plan memory, emit a module of @cuda.jit kernels, drive it from the host.

    run = NumbaCUDABackend().compile(graph)       # run(input_arrays) -> (outputs, update values)
    run.source("python" | "ptx" | "fused" | "plan"); run.stats["launches_per_step"]
    generate(graph).source                        # the same module without a GPU (codegen only)

When the user's Module sees device values (the `sync` option: graphc.compile(step,
backend="numba_cuda", options={"sync": ...})):

* Parameters, buffers and optimizer state (the graph's `param`/`state` inputs) are copied to the
  device on the first call and stay there: every launch of every step reads and updates the
  device copies.  Data batches are copied in on every call; scalar inputs (the learning rate)
  are passed to the kernels by value, so changing them neither copies nor recompiles.
* sync="step" (the default): after every call the host tensors are up to date, as in eager mode:
  each updated input and each output (the loss, and the .grad tensors the step leaves) is copied
  back.  Before a call, a resident input is uploaded again only when its host array differs from
  what this runner last wrote there (one memcmp on the host), so `load_state_dict`, an eager
  step in between, or a second compiled graph sharing the parameters (train and eval) all stay
  correct.  Cost per step: data in, outputs and updated state out.
* sync="lazy" (opt in): the device copy is the source of truth.  A call copies in the data batch and
  copies back only the graph's outputs (the loss, and .grad tensors when the step leaves them);
  parameters and optimizer state on the host go stale until `sync(compiled)` (or
  `runner.sync()`) copies them back into the tensors' own arrays.  Edits of the host tensors
  between calls are not seen, except when a tensor's array is replaced by another object
  (load_state_dict); `runner.invalidate()` forces a fresh upload.  Use one compiled step per set
  of parameters in this mode (two graphs would each hold their own device copy).

Without a usable GPU, compile() raises a BackendError that names what is missing (numba-cuda,
the driver, a GPU, NVVM) and the way out: backend="numba_cpu", or NUMBA_ENABLE_CUDASIM=1.
"""
from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from ...collector import collector_paused
from ...config import log, settings
from ...errors import BackendError, ShapeError
from ...ir.printer import value_names
from ...passes.fusion import annotation, fuse, fuse_pass_without_rows
from ...passes.memplan import loop_kernels_inline, plan_memory, plan_pass
from ..codegen.loader import load_module
from .device import compute_capability, require_cuda
from .emit import CUDAModuleEmitter, Generated
from .layout import GPU, SIMULATOR, Target

__all__ = ["NumbaCUDABackend", "Runner", "generate", "sync", "ptx_of", "numba_argtypes", "Generated",
           "Target", "GPU", "SIMULATOR"]

SYNC_MODES = ("step", "lazy")
RESIDENT_KINDS = ("param", "state")
SIMULATOR_SWITCH_INTERVAL = 1e-5




def generate(graph, target=GPU):
    """Fuse, plan and emit for `target` without touching a device.   generate(g).source -> module text"""
    fused = annotation(graph, "fused")
    if fused is None or fused.graph is not graph:
        fused = fuse(graph, rows=False)
    plan = annotation(graph, "planned")
    if plan is None or getattr(plan, "fused", None) is not fused:
        plan = plan_memory(fused, loop_kernels_inline)
    gen = CUDAModuleEmitter(fused, plan, graph.name, target).emit()
    gen.fused, gen.plan = fused, plan
    return gen


def numba_argtypes(kernel_info):
    """numba types for compile_ptx / dispatcher.compile: flat C-contiguous arrays and scalars."""
    from numba import from_dtype, types
    out = []
    for kind, dtype in kernel_info.argtypes:
        t = from_dtype(np.dtype(dtype))
        out.append(types.Array(t, 1, "C") if kind == "array" else t)
    return tuple(out)


def ptx_of(module, gen, cc):
    """{kernel name: PTX text} for every kernel of a loaded generated module (needs no GPU)."""
    from numba import cuda
    out = {}
    for ki in gen.kernels:
        disp = getattr(module, ki.name)
        ptx, _ = cuda.compile_ptx(disp.py_func, numba_argtypes(ki), cc=tuple(cc))
        out[ki.name] = ptx
    return out


class NumbaCUDABackend:
    """Backend interface: compile(graph) -> Runner."""

    name = "numba_cuda"

    def prepare_passes(self):
        """Fusion and memory planning as passes (see NumbaCPUBackend.prepare_passes)."""
        return [("fused", fuse_pass_without_rows), ("planned", plan_pass(loop_kernels_inline))]

    def compile(self, graph, cache_dir=None, sync="step", **options):
        if sync not in SYNC_MODES:
            raise BackendError("numba_cuda", f"unknown sync mode {sync!r}", hint="sync='step' or sync='lazy'")
        cuda, target = require_cuda()
        phases = {}
        t0 = time.perf_counter()
        gen = generate(graph, target)
        phases["fuse+plan+codegen"] = time.perf_counter() - t0
        log("kernels", gen.source)
        if settings.dump:
            import os
            from ...fileio import write_atomic
            write_atomic(os.path.join(settings.dump, f"{graph.name}.cuda.py"), gen.source)
        runner = Runner(graph, gen, cuda, target, cache_dir or settings.cache_dir, phases, sync)
        runner.warm_up()
        return runner


class Runner:
    """Holds the device buffers, launches one step per call, moves data in and results out."""

    def __init__(self, graph, gen, cuda, target, cache_dir, phases, sync):
        self.graph, self.gen, self.cuda, self.target, self.sync_mode = graph, gen, cuda, target, sync
        self.fused, self.plan = gen.fused, gen.plan
        self.names = value_names(graph)
        t = time.perf_counter()
        self.module = load_module(gen.source, cache_dir)
        phases["import"] = time.perf_counter() - t
        t = time.perf_counter()
        self.pools = [cuda.device_array(max(n, 1), dtype) for dtype, n in gen.pools]
        self.consts = [cuda.to_device(c) for c in gen.consts]
        self.dev = {i: cuda.device_array(max(graph.inputs[i].size, 1), graph.inputs[i].dtype)
                    for i in gen.device_inputs}
        self.err = cuda.to_device(np.zeros(1, np.int32)) if gen.uses_err else None
        self._err_host = np.zeros(1, np.int32)
        args = [self.dev[i] for i in gen.device_inputs] + self.consts + self.pools + ([self.err] if self.err is not None else [])
        with warnings.catch_warnings():
            # numba-cuda warns about every launch configuration of fewer than 128 blocks; a step of a
            # small model is mostly such launches, and the warning says nothing the stats do not.
            warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
            self.run_step = self.module.bind(*args)
        phases["device_alloc"] = time.perf_counter() - t
        kinds = [v.kind for v in graph.inputs]
        self.uploads = [i for i in gen.device_inputs if kinds[i] not in RESIDENT_KINDS]
        self.resident = [i for i in gen.device_inputs if kinds[i] in RESIDENT_KINDS]
        self.shadow = {i: None for i in self.resident}      # host bytes the device copy equals (step mode)
        self.last_host = {i: None for i in self.resident}   # the host array last passed (lazy mode)
        self._plan_results()
        self.stats = {"phases": phases, "device": "simulator" if target is SIMULATOR else self._device_name(),
                      "sync": sync, "kernels": len(gen.kernels), "launches_per_step": len(gen.kernels),
                      "kernel_compile_s": {}, "cache": "unknown",
                      "pool_bytes": int(sum(np.dtype(d).itemsize * max(n, 1) for d, n in gen.pools)),
                      "h2d_per_step": len(self.uploads), "d2h_per_step": 0, "resident_uploads": 0}

    def _device_name(self):
        try:
            dev = self.cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            return f"{name} (sm_{dev.compute_capability[0]}{dev.compute_capability[1]})"
        except Exception:   # pragma: no cover - informational only
            return "gpu"

    # --- where each output and update comes from ---------------------------------------------
    def _plan_results(self):
        """Per output: a host getter; per base buffer: one device->host copy per call."""
        self._fetch = {}          # id(base value) -> (device array, host staging)
        self._getters = [self._getter(v) for v in self.graph.outputs]
        self._input_index = {id(v): i for i, v in enumerate(self.graph.inputs)}
        updated = {}
        for target, new in self.graph.updates:
            updated[self._input_index[id(target)]] = new is not target
        self._updated = updated
        self._update_host = {i: np.empty(max(self.graph.inputs[i].size, 1), self.graph.inputs[i].dtype)
                             for i, real in updated.items() if real and i in self.dev}

    def _getter(self, value):
        home = self.plan.home.get(id(value))
        node = value.node
        if home is None or (node is not None and node.op == "const"):
            if node is not None and node.op in ("full", "const"):
                arr = np.full(value.shape, node.attrs["value"], dtype=value.dtype) if node.op == "full" \
                    else np.array(node.attrs["value"], dtype=value.dtype)
                return lambda inputs, fetched: arr
            raise BackendError("numba_cuda", f"no storage planned for output {self.names.get(id(value))}")
        if home[0] == "view":
            base_get = self._getter(home[1])
            node = value.node
            if node.op == "reshape":
                return lambda inputs, fetched: base_get(inputs, fetched).reshape(value.shape)
            perm = tuple(node.attrs["perm"])
            return lambda inputs, fetched: np.transpose(base_get(inputs, fetched), perm)
        if home[0] == "input" and home[1] not in self.dev:
            i = home[1]
            return lambda inputs, fetched: inputs[i]
        dev = self.dev[home[1]] if home[0] == "input" else self.pools[home[1]][:max(value.size, 1)]
        key = id(value)
        if key not in self._fetch:
            self._fetch[key] = (dev, np.empty(max(value.size, 1), value.dtype))
        staging = self._fetch[key][1]
        shape = tuple(value.shape)
        return lambda inputs, fetched: staging[:value.size].reshape(shape)

    # --- running -------------------------------------------------------------------------------
    def __call__(self, inputs):
        uploaded = 0
        for i in self.uploads:
            self.dev[i].copy_to_device(_flat(inputs[i]))
        for i in self.resident:
            if self._needs_upload(i, inputs[i]):
                host = _flat(inputs[i])
                self.dev[i].copy_to_device(host)
                if self.sync_mode == "step":
                    self.shadow[i] = host.copy()
                uploaded += 1
            self.last_host[i] = inputs[i]
        scalars = [inputs[i][()] for i in self.gen.scalar_inputs]
        if self.target is SIMULATOR:
            # The counter-based RNG multiplies uint64s modulo 2**64 on purpose; numpy (which runs the
            # simulated kernels) would warn about every wrap-around.
            # The simulator's block manager polls its threads in a busy loop that hands over the GIL
            # only every sys.getswitchinterval() (5 ms): every syncthreads() would cost that much.
            interval = sys.getswitchinterval()
            sys.setswitchinterval(SIMULATOR_SWITCH_INTERVAL)
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
                    self.run_step(*scalars)
            finally:
                sys.setswitchinterval(interval)
        else:
            self.run_step(*scalars)
        if self.err is not None:
            self.err.copy_to_host(self._err_host)
            if self._err_host[0]:
                raise self._runtime_error(int(self._err_host[0]))
        for dev, host in self._fetch.values():
            dev.copy_to_host(host)
        outputs = [g(inputs, None) for g in self._getters]
        updates = []
        d2h = len(self._fetch) + (1 if self.err is not None else 0)
        for target, new in self.graph.updates:
            i = self._input_index[id(target)]
            if not self._updated[i] or i not in self.dev or self.sync_mode == "lazy":
                updates.append(inputs[i])
                continue
            host = self._update_host[i]
            self.dev[i].copy_to_host(host)
            d2h += 1
            self.shadow[i] = host      # Entry copies it into the tensor: host and device agree again
            updates.append(host.reshape(target.shape))
        self.stats["d2h_per_step"] = d2h
        self.stats["h2d_per_step"] = len(self.uploads) + uploaded
        self.stats["resident_uploads"] += uploaded
        return outputs, updates

    def _needs_upload(self, i, host):
        if self.sync_mode == "lazy":
            return self.last_host[i] is None or host is not self.last_host[i]
        shadow = self.shadow[i]
        return shadow is None or not _same_bytes(host, shadow)

    def _runtime_error(self, code):
        self.err.copy_to_device(np.zeros(1, np.int32))
        name, loc = self.gen.err_locs.get(code, ("?", None))
        return ShapeError("one_hot", "a class index is out of range", loc=loc,
                          hint="check the targets passed to the loss", detail=f"in kernel {name}")

    # --- state ---------------------------------------------------------------------------------
    def sync(self):
        """Copy the device's parameters and optimizer state into the host tensors' arrays (lazy mode)."""
        for i in self.resident:
            host = self.last_host[i]
            if host is None or not self._updated.get(i):
                continue
            if host.flags.c_contiguous and host.flags.writeable:
                self.dev[i].copy_to_host(host.reshape(-1))
            else:
                np.copyto(host, self.dev[i].copy_to_host().reshape(host.shape))

    def invalidate(self):
        """Upload every resident input again on the next call (after editing host tensors in lazy mode)."""
        for i in self.resident:
            self.shadow[i] = None
            self.last_host[i] = None

    @collector_paused()   # numba's compile runs 10-30 % faster without the cyclic collector
    def warm_up(self):
        """Compile (or load from numba-cuda's disk cache) every kernel for its signature; time each."""
        if self.target is SIMULATOR:
            self.stats["cache"] = "simulator"
            return
        times, misses = {}, 0
        t0 = time.perf_counter()
        for ki in self.gen.kernels:
            disp = getattr(self.module, ki.name)
            t = time.perf_counter()
            disp.compile(numba_argtypes(ki))
            times[ki.name] = time.perf_counter() - t
            misses += sum(getattr(disp, "_cache_misses", {}).values())
        self.stats["phases"]["numba_compile"] = time.perf_counter() - t0
        self.stats["kernel_compile_s"] = times if misses else {}
        self.stats["cache"] = "miss" if misses else "hit"

    # --- inspection ----------------------------------------------------------------------------
    def source(self, kind="python"):
        """The generated module ("python"), fused IR ("fused"), memory plan ("plan"), or "ptx"."""
        if kind == "python":
            return self.gen.source
        if kind == "fused":
            return str(self.fused)
        if kind == "plan":
            return self.plan.describe(self.names)
        if kind == "ptx":
            if self.target is SIMULATOR:
                raise BackendError("source", "PTX is not available under the CUDA simulator",
                                   hint="run without NUMBA_ENABLE_CUDASIM (no GPU needed): "
                                        "python benchmarks/cuda_selftest.py ptx")
            cc = compute_capability(self.cuda, self.target)
            return "\n".join(f"// ---- {name} ----\n{text}" for name, text in ptx_of(self.module, self.gen, cc).items())
        raise BackendError("source", f"unknown source kind {kind!r}", hint="python, ptx, fused or plan")


def sync(compiled):
    """Bring host tensors up to date with the device for every graph of a compiled function (lazy mode)."""
    for entries in getattr(compiled, "entries", {}).values():
        for entry in entries:
            run = getattr(entry, "run_graph", None)
            if isinstance(run, Runner):
                run.sync()


def _flat(a):
    a = np.asarray(a)
    return (a if a.flags.c_contiguous else np.ascontiguousarray(a)).reshape(-1)


def _same_bytes(a, b):
    a = _flat(a)
    if a.dtype != b.dtype or a.size != b.size:
        return False
    if a.nbytes % 8 == 0:
        return bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))
    return bool(np.array_equal(a.view(np.uint8), b.view(np.uint8)))
