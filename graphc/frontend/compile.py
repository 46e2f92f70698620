"""@graphc.compile: trace on first call, run passes, hand the graph to a backend, cache by guards.

    @graphc.compile
    def step(x, y): ...                     # or graphc.compile(net), graphc.compile(backend="interpreter")
    step(x, y); print(step.ir()); step.stats()
"""
from __future__ import annotations

import functools
import threading
import time
import warnings

import numpy as np

from .. import _context
from ..config import log, override, settings
from ..errors import BackendError, GraphcError
from ..tensor import Tensor
from .backend_failure import backend_failure
from .lowering import restore as _restore, run_passes, snapshot as _snapshot
from .trace import TraceRecord, Tracer, unflatten_result

DEFAULT_BACKEND = "numba_cpu"


def compile(fn=None, *, backend=None, fullgraph=False, dynamic=False, mode=None, options=None):
    """Compile a function or Module: a bare decorator, a decorator with arguments, or a call.

    fullgraph=False (torch's default): code that cannot be traced (.item(), .numpy(), `if tensor:`,
    x[mask]) becomes a graph break (frontend/breaks.py); fullgraph=True: a TraceError naming its line.
    mode: torch's names, mapped to graphc settings (MODES).
    options: the backend's own compile options, checked by name (numba_cpu: fusion, keep_values, cache_dir).
    """
    if fn is None:
        return lambda f: compile(f, backend=backend, fullgraph=fullgraph, dynamic=dynamic, mode=mode, options=options)
    backend = backend or DEFAULT_BACKEND
    mode_settings = _check_mode(mode)
    options = _check_options(backend, options or {})
    from ..nn.module import Module
    if isinstance(fn, Module):
        compiled = CompiledModule(fn, backend, options)
    else:
        compiled = CompiledFunction(fn, backend, options)
    compiled.fullgraph = bool(fullgraph)
    compiled.mode_settings = mode_settings
    return compiled


# torch.compile's modes as the graphc settings each one sets while this function's graphs compile.
# "reduce-overhead" is the default here: every compiled step is already one driver call over a
# memory plan fixed at compile time (what CUDA graphs buy torch).  "max-autotune" has no autotuner
# to run; it turns on parallel (prange) loops in large generated kernels, GRAPHC_PARALLEL=1's
# setting, for this function only.
MODES = {"default": {}, "reduce-overhead": {}, "max-autotune": {"parallel": True},
         "max-autotune-no-cudagraphs": {"parallel": True}}


def _check_mode(mode):
    """The settings `mode` stands for.   _check_mode("max-autotune") -> {'parallel': True}"""
    if mode is None:
        return {}
    if mode not in MODES:
        raise GraphcError("compile", f"unknown mode {mode!r}", hint=f"use one of {', '.join(map(repr, MODES))}")
    return MODES[mode]


def _check_options(backend, options):
    """The options the backend's compile() takes by name; any other name is an error, never ignored."""
    if not options:
        return {}
    import inspect
    from ..backends import get_backend
    known = [name for name, p in inspect.signature(get_backend(backend).compile).parameters.items()
             if name != "graph" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise GraphcError("compile", f"backend {backend!r} has no option {', '.join(map(repr, unknown))}",
                          hint=f"its options: {', '.join(known) or 'none'}")
    return dict(options)


def _arg_signature(args, kwargs):
    """Guard part 1: tensor shapes/dtypes and non-tensor argument values."""
    return _sig(tuple(args)) + (_sig(kwargs),)


# Module-level recursion, not nested closures: a recursive closure is a reference cycle, and one per
# call would leave garbage for the cyclic collector on every compiled step.
def _sig(x):
    if isinstance(x, Tensor):
        return ("T", x._value.shape, x.dtype.str, x.requires_grad)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__,) + tuple([_sig(v) for v in x])
    if isinstance(x, dict):
        return ("dict",) + tuple([(k, _sig(v)) for k, v in sorted(x.items())])
    try:
        hash(x)
        return ("V", x)
    except TypeError:
        return ("id", id(x))


def _state_signature(record):
    """Guard part 2: train/eval flags, optimizer structure, which grads exist: what shaped the trace."""
    sig = [m.training for m in record.all_modules]
    sig.extend(opt.trace_signature() for opt in record.optimizers)
    # Only grads the code read before rebinding them shaped the trace (zero_grad() first makes them irrelevant).
    sig.extend((t._grad is None, id(t._grad)) for t in record.grads_read)
    return tuple(sig)


def _entry_signature(record):
    """Guard part 2 as the state was when the trace began, not after the first run changed it."""
    return record.entry_signature


def _explain_difference(old, new):
    if old[0] != new[0]:
        return f"argument signature changed: {_diff_text(old[0], new[0])}"
    if old[1] != new[1]:
        return "grad mode changed"
    return "module train/eval mode, optimizer state or the set of existing .grad tensors changed"


def _explain_state_change(old, new, record):
    n_mod = len(record.all_modules)
    for i, module in enumerate(record.all_modules):
        if old[i] != new[i]:
            return f"{type(module).__name__}.training changed: {old[i]} -> {new[i]} (train/eval)"
    for j, opt in enumerate(record.optimizers):
        if old[n_mod + j] != new[n_mod + j]:
            return f"{type(opt).__name__}'s state or hyper-parameter structure changed (e.g. new state buffers, " \
                   f"or a momentum switched on or off)"
    return "a parameter's .grad changed between None and a tensor (or was replaced by another tensor)"


def _diff_text(a, b):
    for x, y in zip(a, b):
        if x != y:
            return f"{_fmt_sig(x)} -> {_fmt_sig(y)}"
    return f"{len(a)} -> {len(b)} arguments"


def _fmt_sig(s):
    if isinstance(s, tuple) and s and s[0] == "T":
        return f"tensor{list(s[1])} {np.dtype(s[2])}"
    return repr(s)


class Entry:
    """One compiled graph: its guards, where inputs come from, where outputs go, and the backend's callable.

    `Entry.observers` lets tools watch compiled calls (graphc.debug's verify and detect_anomaly):
    each is called as observer(entry, inputs) before a run, with the graph's input arrays, and may
    return after(result), called with the returned Tensors once the run has written its state back.
    """

    observers = []

    def __init__(self, record, run, state_sig, stages, timings):
        self.record = record
        self.graph = record.graph
        self.run_graph = run
        self.state_sig = state_sig
        self.stages = stages
        self.timings = timings
        self.input_getters = self._input_getters(record)

    @staticmethod
    def _input_getters(record):
        by_value = {}
        for i, v in enumerate(record.data_inputs):
            by_value[id(v)] = ("arg", i)
        for entry in record.lifted:
            by_value[id(entry.value)] = ("tensor", entry.tensor)
        for group, key, value in record.scalars:
            by_value[id(value)] = ("scalar", (group, key))
        # Passes keep the inputs, outputs and updates in order, so the traced graph's inputs line up.
        return [by_value[id(v)] for v in record.trace_graph.inputs]

    def graph_inputs(self, flat_args):
        """The arrays this call feeds the graph, in graph-input order (the tensors' own arrays, not copies)."""
        inputs = []
        for kind, src in self.input_getters:
            if kind == "arg":
                inputs.append(flat_args[src]._value)
            elif kind == "tensor":
                inputs.append(src._value)
            else:
                inputs.append(np.asarray(src[0][src[1]], dtype=np.float32))
        return inputs

    def __call__(self, flat_args):
        inputs = self.graph_inputs(flat_args)
        if self.observers:
            return self._observed_call(inputs)
        return self._run_graph(inputs)

    def _run_graph(self, inputs):
        outputs, new_values = self.run_graph(inputs)
        self._write_back(outputs, new_values)
        rec = self.record
        # Copies: a backend may hand back its own buffers, which the next call overwrites.
        return [Tensor._wrap(np.array(outputs[i])) if i is not None else None for i in rec.returns]

    def _observed_call(self, inputs):
        afters = [after for after in (observer(self, inputs) for observer in list(self.observers)) if after]
        result = self._run_graph(inputs)
        for after in afters:
            after(result)
        return result

    def _write_back(self, outputs, new_values):
        rec = self.record
        # Backends hand back update values that never alias another update's target (the interpreter
        # copies; numba writes in place or into its own buffers), so plain copies in order are safe.
        for t, v in zip(rec.updates, new_values):
            if v is not t._value:
                np.copyto(t._value, v, casting="unsafe")
        for t, i in zip(rec.escapes, rec.escape_outputs):
            arr = outputs[i]
            if type(t._value) is np.ndarray and t._value.shape == arr.shape:
                np.copyto(t._value, arr)
            else:
                t._value = np.array(arr)
        for param, g in rec.grad_slots:
            param._grad = g


class CompiledFunction:
    """The callable @graphc.compile returns: traces, compiles and caches one graph per guard key.

    Thread safety: calls are serialised. A per-function RLock is held around the cache lookup, the
    compile and the run, because a compiled graph runs in buffers it owns (and writes parameters back),
    so two threads calling one compiled function at once take turns; re-entrant calls in one thread are fine.
    """

    def __init__(self, fn, backend, options):
        self._lock = threading.RLock()
        self.fn = fn
        self.backend_name = backend
        self.options = options
        self.entries: dict[tuple, list[Entry]] = {}
        self.last: Entry | None = None
        self._last_key = None
        self._fallback = False
        self._stats = {"compiles": 0, "cache_hits": 0, "recompiles": [], "phases": {}}
        self._extra_modules = []
        self.fullgraph = False
        self.mode_settings = {}
        self._broken = set()       # guard keys whose code breaks the graph (fullgraph=False)
        self._segments = {}        # compiled segments by structure (frontend/breaks.py)
        self._breaks = []          # the breaks of the latest call
        functools.update_wrapper(self, fn, updated=())

    # --- calling ---------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        with self._lock:
            return self._call(args, kwargs)

    def _call(self, args, kwargs):
        if self._fallback or _context.tracer is not None:
            return self.fn(*args, **kwargs)
        key = (_arg_signature(args, kwargs), _context.grad_enabled)
        if key in self._broken:   # this code breaks: Python runs on every call, between cached segments
            from .breaks import run_with_breaks
            return run_with_breaks(self, args, kwargs)
        for entry in self.entries.get(key, ()):
            if _state_signature(entry.record) == entry.state_sig:
                self._stats["cache_hits"] += 1
                self.last = entry
                return self._run(entry, args, kwargs)
        reason = self._recompile_reason(key)
        if sum(len(v) for v in self.entries.values()) >= settings.recompile_limit:
            warnings.warn(f"graphc.compile: {getattr(self.fn, '__name__', 'function')} recompiled "
                          f"{settings.recompile_limit} times (last reason: {reason}); running it eagerly from now "
                          f"on. Raise GRAPHC_RECOMPILE_LIMIT or keep shapes fixed (e.g. drop_last=True).",
                          stacklevel=3)
            self._fallback = True
            return self.fn(*args, **kwargs)
        if reason:
            log("recompiles", f"recompiling {getattr(self.fn, '__name__', 'function')}: {reason}")
            self._stats["recompiles"].append(reason)
        entry = self._compile(args, kwargs)
        if not isinstance(entry, Entry):   # the trace broke (fullgraph=False): the call ran in segments
            self._broken.add(key)
            return entry.result
        self.entries.setdefault(key, []).append(entry)
        self._last_key = key
        self.last = entry
        return entry.first_result

    def _recompile_reason(self, key):
        if self._last_key is None:
            return None
        if key != self._last_key:
            return _explain_difference(self._last_key, key)
        stale = self.entries[key][-1]
        return _explain_state_change(stale.state_sig, _state_signature(stale.record), stale.record)

    def _run(self, entry, args, kwargs):
        flat_args = flat_tensor_args(args, kwargs)
        return unflatten_result(entry.record.spec, entry(flat_args))

    # --- compiling ---------------------------------------------------------------------------------
    def _compile(self, args, kwargs):
        timings = {}
        t0 = time.perf_counter()
        if self.fullgraph:
            tracer, flat_args, p_args, p_kwargs = self._start_trace(Tracer, args, kwargs)
            try:
                with tracer:
                    result = self.fn(*p_args, **p_kwargs)
            except BaseException:
                tracer.abort()
                raise
            record = tracer.finish(result)
        else:
            from .breaks import first_run_with_breaks
            record, flat_args = first_run_with_breaks(self, args, kwargs)
            if not isinstance(record, TraceRecord):
                return record   # it broke: the call ran in segments, and this is its outcome
        timings["trace"] = time.perf_counter() - t0
        backend, graph, manager = run_passes(record.graph, self.backend_name, timings)
        record.trace_graph, record.graph = record.graph, graph
        saved = _snapshot(list(record.updates) + list(record.escapes) + flat_args)
        run = None
        try:
            t2 = time.perf_counter()
            with override(**self.mode_settings):
                run = backend.compile(graph, **self.options)
            timings["backend"] = time.perf_counter() - t2
            timings.update(getattr(run, "stats", {}).get("phases", {}))
            stages = dict(manager.stages)
            stages["final"] = str(graph)
            log("graph", stages["final"])
            entry = Entry(record, run, None, stages, timings)
            entry.pass_report = [(name, manager.timings[name], manager.node_counts[name])
                                 for name in manager.timings]
            entry.run_stats = getattr(run, "stats", {})
            entry.source = getattr(run, "source", None)
            entry.first_result = unflatten_result(record.spec, entry(flat_args))
        except Exception as exc:
            _restore(saved)   # a failed first call leaves parameters and optimizer state as they were
            if isinstance(exc, GraphcError) and not isinstance(exc, BackendError):
                raise   # the user's error (e.g. a label out of range), already told in graphc's words
            failure = backend_failure(exc, self.backend_name, "compiling" if run is None else "the first run of",
                                      graph)
            failure.backend_exception = exc   # the raw error, for whoever debugs the backend itself
            if not settings.fallback or settings.fallback == self.backend_name:
                raise failure from None
            return self._fall_back(failure, args, kwargs)
        entry.state_sig = _entry_signature(record)
        self._stats["compiles"] += 1
        for k, v in timings.items():
            self._stats["phases"][k] = self._stats["phases"].get(k, 0.0) + v
        return entry

    def _entry(self, record, run, stages, timings):
        """An Entry around a graph compiled outside _compile (frontend/breaks.py's segments)."""
        return Entry(record, run, None, stages, timings)

    def _start_trace(self, tracer_class, args, kwargs, *extra):
        """A tracer for one call, with the arguments' tensors as its data inputs: (tracer, flat, args, kwargs)."""
        tracer = tracer_class(getattr(self.fn, "__name__", "graph").strip("<>").replace(".", "_") or "graph", *extra)
        for m in self._extra_modules:
            tracer.note_module(m)
        flat_args = flat_tensor_args(args, kwargs)
        proxies = {id(t): tracer.data_input(t, f"arg{i}") for i, t in enumerate(flat_args)}
        p_args, p_kwargs = replace_tensors(args, proxies), replace_tensors(kwargs, proxies)
        _name_data_inputs(tracer, self.fn, args, kwargs, flat_args)
        return tracer, flat_args, p_args, p_kwargs

    def _fall_back(self, failure, args, kwargs):
        """Compile on settings.fallback from now on, after one warning that says why."""
        warnings.warn(f"graphc.compile: {failure}\n  GRAPHC_FALLBACK={settings.fallback}: running "
                      f"{getattr(self.fn, '__name__', 'the function')} on backend {settings.fallback!r} from now on",
                      stacklevel=5)
        log("recompiles", f"falling back from {self.backend_name} to {settings.fallback}")
        self._stats["fallback"] = {"from": self.backend_name, "to": settings.fallback, "reason": failure.message}
        self.backend_name, self.options = settings.fallback, {}
        return self._compile(args, kwargs)

    # --- inspection --------------------------------------------------------------------------------
    def _need_entry(self):
        if self.last is None:
            raise GraphcError("compile", "nothing has been compiled yet", hint="call the compiled function once first")
        return self.last

    def ir(self, stage=None):
        """The IR text after `stage` ("trace", a pass name, or "final"/None) of the last compiled graph."""
        entry = self._need_entry()
        stage = stage or "final"
        if stage == "all":
            return "\n\n".join(f"// IR after {name}\n{text}" for name, text in entry.stages.items())
        if stage not in entry.stages:
            raise GraphcError("ir", f"no stage named {stage!r}", hint=f"stages: {', '.join(entry.stages)}")
        return entry.stages[stage]

    def stages(self):
        return list(self._need_entry().stages)

    def graph(self):
        return self._need_entry().graph

    def source(self, kind="python"):
        """The generated source of the last compiled graph ("python", or "llvm"/"asm" on numba backends)."""
        entry = self._need_entry()
        if entry.source is None:
            raise GraphcError("source", f"backend {self.backend_name!r} generates no source")
        return entry.source(kind)

    def stats(self):
        """{'compiles', 'cache_hits', 'recompiles', 'phases': seconds per compile phase, 'graph_breaks' and
        'break_reasons' of the latest call (fullgraph=False), ...backend stats}"""
        out = dict(self._stats)
        out["phases"] = dict(self._stats["phases"])
        out["graph_breaks"] = len(self._breaks)
        out["break_reasons"] = [str(b) for b in self._breaks]
        if self.last is not None:
            out.update({k: v for k, v in self.last.run_stats.items() if k != "phases"})
        return out


class CompiledModule(CompiledFunction):
    """graphc.compile(module): calls module(*args) through the compiler; other attributes reach the module."""

    def __init__(self, module, backend, options):
        super().__init__(module.__call__, backend, options)
        self.__dict__["module"] = module
        self._extra_modules = [module]
        self.fn = _ModuleCall(module)

    def __getattr__(self, name):
        return getattr(self.__dict__["module"], name)


class _ModuleCall:
    def __init__(self, module):
        self.module = module
        self.__name__ = type(module).__name__.lower() + "_forward"

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def flat_tensor_args(args, kwargs):
    """The Tensors in args and kwargs, in the order compiled graphs number their data inputs."""
    flat = []
    _collect_tensors(tuple(args), flat)
    _collect_tensors(kwargs, flat)
    return flat


def _collect_tensors(x, flat):
    if isinstance(x, Tensor):
        flat.append(x)
    elif isinstance(x, (tuple, list)):
        for v in x:
            _collect_tensors(v, flat)
    elif isinstance(x, dict):
        for k in sorted(x):
            _collect_tensors(x[k], flat)


def replace_tensors(x, proxies):
    """args with each Tensor t replaced by proxies[id(t)] (nested tuples, lists and dicts too)."""
    if isinstance(x, Tensor):
        return proxies[id(x)]
    if isinstance(x, tuple):
        return tuple(replace_tensors(v, proxies) for v in x)
    if isinstance(x, list):
        return [replace_tensors(v, proxies) for v in x]
    if isinstance(x, dict):
        return {k: replace_tensors(v, proxies) for k, v in x.items()}
    return x


def _name_data_inputs(tracer, fn, args, kwargs, flat_args):
    """Name data inputs after the function's parameters (x, y) when they are plain tensors."""
    import inspect
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return
    names = {}
    for name, a in zip(params, args):
        if isinstance(a, Tensor):
            names[id(a)] = name
    for name, a in kwargs.items():
        if isinstance(a, Tensor):
            names[id(a)] = name
    for t, v in zip(flat_args, tracer.data_inputs):
        if id(t) in names and names[id(t)].isidentifier():
            v.name = names[id(t)]


def explain(fn, *args, backend=None, **kwargs):
    """Compile fn for these arguments and return (and print) the whole story of that one compile.

    explain(train_step, x, y) -> text: the traced IR, each pass with its node counts and time, the
    final IR, the kernels and memory plan, the guards, and seconds per phase.  Like
    torch._dynamo.explain it runs fn once, so the step's side effects (an optimizer update) happen.
    It compiles with fullgraph=False and lists each graph break with its line and reason; the text
    it returns also has .graph_count, .graph_break_count and .break_reasons.
    """
    from .breaks import Explanation, break_lines
    compiled = compile(fn, backend=backend, fullgraph=False)
    compiled(*args, **kwargs)
    entry = compiled.last
    breaks = compiled._breaks
    lines = [f"== graphc.explain: {getattr(fn, '__name__', fn)} on backend {compiled.backend_name} ==", "",
             "-- graph breaks --"] + break_lines(breaks)
    last = f" (the last of {len(breaks) + 1} graphs)" if breaks else ""
    lines += ["", f"-- traced IR{last} --", entry.stages["trace"], "", "-- passes --"]
    for name, seconds, (before, after) in entry.pass_report:
        lines.append(f"// IR after {name} ({before} -> {after} nodes, {seconds * 1e3:.1f} ms)")
    lines += ["", "-- final IR --", entry.stages["final"]]
    if entry.source is not None:
        for kind in ("fused", "plan"):
            try:
                lines += ["", f"-- {kind} --", entry.source(kind)]
            except GraphcError:
                pass
    record = entry.record
    if breaks:
        lines += ["", "-- guards --", "none: the Python code runs on every call (it broke), and each of its graphs "
                                      "is looked up by its structure"]
    else:
        lines += ["", "-- guards (a change in any of these recompiles) --",
                  "argument shapes and dtypes: " + ", ".join(f"%{v.name}: {v.type_str()}" for v in record.data_inputs),
                  f"grad mode: {'enabled' if _context.grad_enabled else 'disabled'}",
                  f"train/eval flags of {len(record.all_modules)} modules, the state structure of "
                  f"{len(record.optimizers)} optimizers, and {len(record.grads_read)} .grad tensors read before "
                  f"being reset"]
    lines += ["", "-- seconds per phase --"]
    lines += [f"{k:>14}: {v:.3f}" for k, v in entry.timings.items()]
    text = "\n".join(lines)
    print(text)
    return Explanation(text, breaks)

