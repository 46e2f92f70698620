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
from ..ir.symbolic import SYMBOL, SizeTemplate
from ..tensor import Tensor
from .backend_failure import backend_failure
from .lowering import restore as _restore, run_passes, snapshot as _snapshot
from .trace import TraceRecord, Tracer, unflatten_result

DEFAULT_BACKEND = "numba_cpu"


def compile(fn=None, *, backend=None, fullgraph=False, dynamic=None, mode=None, options=None):
    """Compile a function or Module: a bare decorator, a decorator with arguments, or a call.

    fullgraph=False (torch's default): code that cannot be traced (.item(), .numpy(), `if tensor:`,
    x[mask]) becomes a graph break (frontend/breaks.py); fullgraph=True: a TraceError naming its line.
    dynamic: True makes dim 0 of the tensor arguments a symbolic size B from the first call, so one
    compile serves every batch size; None (the default, torch's automatic dynamic) compiles for the
    first size and, the first time dim 0 changes, once more with it symbolic; False compiles once per size.
    mode: torch's names, mapped to graphc settings (MODES).
    options: the backend's own compile options, checked by name (numba_cpu: fusion, keep_values, cache_dir).
    """
    if dynamic not in (None, True, False):
        raise GraphcError("compile", f"dynamic must be True, False or None, got {dynamic!r}",
                          hint="dynamic=True: one compile for every batch size; None: symbolic after the "
                               "first change; False: one compile per size")
    if fn is None:
        return lambda f: compile(f, backend=backend, fullgraph=fullgraph, dynamic=dynamic, mode=mode, options=options)
    backend = backend or DEFAULT_BACKEND
    mode_settings = _check_mode(mode)
    options = _check_options(backend, options or {})
    from ..nn.module import Module
    if isinstance(fn, Module):
        compiled = CompiledModule(fn, backend, options, dynamic)
    else:
        compiled = CompiledFunction(fn, backend, options, dynamic)
    compiled.fullgraph = bool(fullgraph)
    compiled.mode_settings = mode_settings
    return compiled


# torch.compile's modes as the graphc settings each one sets while this function's graphs compile.
# "reduce-overhead" is the default here: every compiled step is already one driver call over a
# memory plan fixed at compile time (what CUDA graphs buy torch).  "max-autotune" has no autotuner
# to run; it spends compile time on speed: parallel (prange) loops down to the measured crossover
# (131,072 elements) instead of the default's 1M, for this function only.
_AUTOTUNE = {"parallel": True, "parallel_min_elements": 1 << 17}
MODES = {"default": {}, "reduce-overhead": {}, "max-autotune": _AUTOTUNE, "max-autotune-no-cudagraphs": _AUTOTUNE}


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
def _sig(x, batch=None):
    if isinstance(x, Tensor):
        shape = x._value.shape
        if batch is not None and shape and shape[0] == batch:
            shape = (SYMBOL,) + shape[1:]
        return ("T", shape, x.dtype.str, x.requires_grad)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__,) + tuple([_sig(v, batch) for v in x])
    if isinstance(x, dict):
        return ("dict",) + tuple([(k, _sig(v, batch)) for k, v in sorted(x.items())])
    try:
        hash(x)
        return ("V", x)
    except TypeError:
        return ("id", id(x))


def _batch_key(args, kwargs):
    """(guard key with dim 0 of the tensor arguments that share the first one's named B, B), or None.

    The key keeps which arguments share B and everything else about them, not B's value: that is all a
    symbolic trace depends on.  Sizes 0 and 1 stay static, as in torch (a size-1 dim broadcasts).
    """
    flat = flat_tensor_args(args, kwargs)
    batch = next((t._value.shape[0] for t in flat if t._value.ndim), None)
    if batch is None or batch < 2:
        return None
    return (_sig(tuple(args), batch) + (_sig(kwargs, batch),), _context.grad_enabled), batch


def _batched_names(record, batch):
    names = [f"%{v.name}" for v in record.data_inputs if v.shape and v.shape[0] == batch]
    return ", ".join(names) or "the tensor arguments"


def _batched_names_of(args, kwargs, batch):
    """'arguments 0, 2': the tensor arguments (in flat order) whose dim 0 is the batch size."""
    flat = flat_tensor_args(args, kwargs)
    return "tensor arguments " + ", ".join(str(i) for i, t in enumerate(flat)
                                           if t._value.ndim and t._value.shape[0] == batch)


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

    def __init__(self, fn, backend, options, dynamic=None):
        self._lock = threading.RLock()
        self.fn = fn
        self.backend_name = backend
        self.options = options
        self.dynamic = dynamic
        self.entries: dict[tuple, list[Entry]] = {}
        self.families: dict[tuple, SizeFamily] = {}   # symbolic-size compiles, by guard key with dim 0 as B
        self._static_only = set()   # guard keys (dim 0 as B) whose code was found to depend on the size
        self.last: Entry | None = None
        self._last_key = None
        self._fallback = False
        self._stats = {"compiles": 0, "cache_hits": 0, "recompiles": [], "phases": {}, "dynamic_sizes": [],
                       "static_sizes": []}
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
        batch_key = _batch_key(args, kwargs) if self.dynamic is not False else None
        if batch_key is not None:
            result = self._call_dynamic(batch_key, args, kwargs)
            if result is not _MISS:
                return result
        reason = self._recompile_reason(key)
        if sum(len(v) for v in self.entries.values()) >= settings.recompile_limit:
            warnings.warn(f"graphc.compile: {getattr(self.fn, '__name__', 'function')} recompiled "
                          f"{settings.recompile_limit} times (last reason: {reason}); running it eagerly from now "
                          f"on. Raise GRAPHC_RECOMPILE_LIMIT or keep shapes fixed (e.g. drop_last=True).",
                          stacklevel=3)
            self._fallback = True
            return self.fn(*args, **kwargs)
        symbolic = batch_key is not None and batch_key[0] not in self._static_only and \
            (self.dynamic or self._size_changed(batch_key))
        if symbolic and not self.dynamic:   # automatic dynamic: say which dim became dynamic, in the same line
            other = self._same_but_size(batch_key)
            reason = (f"{reason}; " if reason else "") + \
                f"dim 0 of {_batched_names(other.record, other.batch_key[1])} became dynamic " \
                f"({other.batch_key[1]} -> {batch_key[1]}): compiling once with it symbolic"
        if reason:
            log("recompiles", f"recompiling {getattr(self.fn, '__name__', 'function')}: {reason}")
            self._stats["recompiles"].append(reason)
        if symbolic:
            entry = self._compile_family(batch_key, args, kwargs)
        else:
            entry = self._compile(args, kwargs)
        if not isinstance(entry, Entry):   # the trace broke (fullgraph=False): the call ran in segments
            self._broken.add(key)
            return entry.result
        if entry.family is None:
            self.entries.setdefault(key, []).append(entry)
        self._last_key = key
        self.last = entry
        return entry.first_result

    # --- symbolic batch size -------------------------------------------------------------------------
    def _call_dynamic(self, batch_key, args, kwargs):
        """Run this size on a symbolic compile whose guard holds; a new size of it traces this size
        (checked against the symbolic module, see graphc.ir.symbolic) without compiling anything."""
        symkey, batch = batch_key
        family = self.families.get(symkey)
        if family is None:
            return _MISS
        for entry in family.by_size.get(batch, ()):
            if _state_signature(entry.record) == entry.state_sig:
                self._stats["cache_hits"] += 1
                self.last = entry
                return self._run(entry, args, kwargs)
        base = family.entry
        if _state_signature(base.record) != base.state_sig:
            return _MISS   # the state the symbolic trace read has changed: an ordinary recompile
        entry = self._compile(args, kwargs, family=family, batch=batch)
        if entry.family is None:   # this size could not use the symbolic module: a static entry
            self.entries.setdefault((_arg_signature(args, kwargs), _context.grad_enabled), []).append(entry)
        self._last_key = (_arg_signature(args, kwargs), _context.grad_enabled)
        self.last = entry
        return entry.first_result

    def _size_changed(self, batch_key):
        """Automatic dynamic: an earlier static compile differs from this call only in B's value."""
        return self._same_but_size(batch_key) is not None

    def _same_but_size(self, batch_key):
        symkey, batch = batch_key
        return next((e for entries in self.entries.values() for e in entries
                     if e.batch_key is not None and e.batch_key[0] == symkey and e.batch_key[1] != batch
                     and _state_signature(e.record) == e.state_sig), None)

    def _compile_family(self, batch_key, args, kwargs):
        """A symbolic-size compile: this size's trace and one at another size make the template."""
        symkey, batch = batch_key
        name = getattr(self.fn, "__name__", "function")
        backend = get_backend_for(self.backend_name)
        if not hasattr(backend, "sized_text"):
            log("recompiles", f"{name}: backend {self.backend_name} compiles static shapes only (no symbolic "
                              f"batch size): one compile per batch size, this one for {batch}")
            self._static_only.add(symkey)
            return self._compile(args, kwargs)
        # automatic dynamic: the earlier static compile at another size is the second sample
        other = None if self.dynamic else self._same_but_size(batch_key)
        if other is None:
            probe = batch + 1
            try:
                texts = self._probe(args, kwargs, batch, probe)
            except Exception as exc:   # noqa: BLE001 -- e.g. another input's batch sits in dim 1, not dim 0
                log("recompiles", f"{name}: no symbolic batch size: tracing at batch size {probe} (dim 0 of "
                                  f"{_batched_names_of(args, kwargs, batch)} only) failed ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0]}); one compile per batch size")
                self._static_only.add(symkey)
                return self._compile(args, kwargs)
        else:
            probe, texts = other.batch_key[1], other.sized_texts
        return self._compile(args, kwargs, family=SizeFamily(symkey, probe, texts), batch=batch)

    def _probe(self, args, kwargs, batch, probe):
        """The sized texts of a trace at batch size `probe` (never run; the state it touched is put back)."""
        flat = flat_tensor_args(args, kwargs)
        fakes = {id(t): Tensor(np.zeros((probe,) + t._value.shape[1:], t._value.dtype),
                               requires_grad=t.requires_grad) if t._value.ndim and t._value.shape[0] == batch else t
                 for t in flat}
        p_args, p_kwargs = replace_tensors(args, fakes), replace_tensors(kwargs, fakes)
        with warnings.catch_warnings():   # the user's code at a size they never passed: its warnings are not theirs
            warnings.simplefilter("ignore")
            tracer, record, graph, manager, backend, _ = self._lower(p_args, p_kwargs, {}, breaks=False)
        tracer.abort()
        return _sized_texts(manager, graph, backend)

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
    def _lower(self, args, kwargs, timings, breaks=None):
        """Trace fn on these arguments and run the pass pipeline: (tracer, record, graph, manager, backend, flat).

        With graph breaks allowed (fullgraph=False; never for a probe trace) a trace that breaks runs the
        call in segments and returns that outcome instead of the tuple."""
        breaks = (not self.fullgraph) if breaks is None else breaks
        t0 = time.perf_counter()
        if not breaks:
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
            tracer = None
            record, flat_args = first_run_with_breaks(self, args, kwargs)
            if not isinstance(record, TraceRecord):
                return record   # it broke: the call ran in segments, and this is its outcome
        timings["trace"] = time.perf_counter() - t0
        backend, graph, manager = run_passes(record.graph, self.backend_name, timings)
        record.trace_graph, record.graph = record.graph, graph
        return tracer, record, graph, manager, backend, flat_args

    def _compile(self, args, kwargs, family=None, batch=None):
        """Trace, lower and compile for these arguments.  With a family (a symbolic-size compile being
        made, or a new size of one), the backend loads the family's symbolic module when this size's
        texts match its template; otherwise this size gets a static compile, and the log says why."""
        timings = {}
        lowered = self._lower(args, kwargs, timings)
        if not isinstance(lowered, tuple):
            return lowered   # the trace broke: the call ran in segments (frontend/breaks.py)
        _, record, graph, manager, backend, flat_args = lowered
        batch_key = _batch_key(args, kwargs) if self.dynamic is not False else None
        sized = _sized_texts(manager, graph, backend) if batch_key is not None and hasattr(backend, "sized_text") \
            else None
        size_options = {}
        if family is not None:
            why = family.adopt(sized, batch)
            if why is not None and not family.by_size:   # no symbolic compile came of it: sizes stay static
                self._static_only.add(family.symkey)
            if why is None:
                size_options = {"size_template": family.templates["source"], "size": batch}
            else:
                log("recompiles", f"{getattr(self.fn, '__name__', 'function')}: static compile for batch size "
                                  f"{batch}: {why}")
                self._stats["static_sizes"].append((batch, why))
                family = None
        saved = _snapshot(list(record.updates) + list(record.escapes) + flat_args)
        run = None
        try:
            t2 = time.perf_counter()
            with override(**self.mode_settings):
                run = backend.compile(graph, **self.options, **size_options)
            timings["backend"] = time.perf_counter() - t2
            timings.update(getattr(run, "stats", {}).get("phases", {}))
            stages = dict(manager.stages)
            stages["final"] = str(graph)
            if family is not None:   # the symbolic graph: f32[B,784]
                stages.update({k: t.text for k, t in family.templates.items() if k in stages})
            log("graph", stages["final"])
            entry = Entry(record, run, None, stages, timings)
            entry.batch_key, entry.sized_texts, entry.family = batch_key, sized, family
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
        if family is not None:
            new_family = not family.by_size
            family.by_size.setdefault(batch, []).append(entry)
            self._stats["dynamic_sizes"].append(batch)
            if not new_family:   # a new size of a symbolic compile: traced and checked, nothing compiled
                return entry
            family.entry = entry
            self.families[family.symkey] = family
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


_MISS = object()


def get_backend_for(name):
    from ..backends import get_backend
    return get_backend(name)


def _sized_texts(manager, graph, backend):
    """What must agree across sizes for one compile to serve them: each IR stage and the backend's text."""
    texts = dict(manager.stages)
    texts["final"] = str(graph)
    try:
        texts["source"] = backend.sized_text(graph)
    except Exception:   # noqa: BLE001 -- this size compiles static; backend.compile then reports the failure
        texts["source"] = None   # as a BackendError, inside the call that restores the user's state
    return texts


class SizeFamily:
    """One symbolic-size compile: the templates (IR stages, generated source) and an entry per size seen.

    Each size has its own traced graph and memory plan (pools sized for it and kept, so a repeated
    size allocates nothing) and runs the one compiled module, which takes B as an argument.
    """

    def __init__(self, symkey, sample_size, sample_texts):
        self.symkey = symkey
        self.sample = (sample_size, sample_texts)
        self.templates = None
        self.by_size: dict[int, list[Entry]] = {}
        self.entry = None   # the entry that made the templates: its state guard is the family's

    def adopt(self, texts, size):
        """None when `texts` (this size's) fit the family; else why this size must be static.

        The backend's text ("source": the generated module, or the IR the interpreter runs) is what
        must fit: each size's graph and memory plan are its own, and they run that one text with B = size.
        The IR stages fit for display (f32[B,784]); a memory plan whose pools are not affine in B
        (a pool is the largest of its values) is shown as the first size planned it.
        """
        if texts is None or texts.get("source") is None:
            return "the backend compiles static shapes only"
        if self.templates is None:
            sample_size, sample = self.sample
            self.templates = {}
            for name, text in texts.items():
                template = _fit_for_display(sample.get(name), sample_size, text, size, name)
                if template is not None:
                    self.templates[name] = template
            if "source" not in self.templates:
                self.templates = None
                return (f"the {'generated source' if texts['final'] != texts['source'] else 'graph'} at batch "
                        f"sizes {sample_size} and {size} differs in more than the size (a Python number or a "
                        f"branch taken from the shape?)")
            return None
        if not self.templates["source"].matches(texts["source"], size):
            return "the code at this size is not the symbolic code (it depends on the size's value)"
        return None


def _fit_for_display(sample, sample_size, text, size, name):
    if sample is None:
        return None
    template = SizeTemplate.fit(sample, sample_size, text, size)
    if template is not None or name == "source" or "\n// " not in text:
        return template
    head, _, tail = text.partition("\n// ")
    sample_head = sample.partition("\n// ")[0]
    template = SizeTemplate.fit(sample_head, sample_size, head, size)
    if template is None:
        return None
    return SizeTemplate(template.pieces[:-1] + [template.pieces[-1] + f"\n// at batch size {size}:\n// " + tail],
                        template.slots)


class CompiledModule(CompiledFunction):
    """graphc.compile(module): calls module(*args) through the compiler; other attributes reach the module."""

    def __init__(self, module, backend, options, dynamic=None):
        super().__init__(module.__call__, backend, options, dynamic)
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

