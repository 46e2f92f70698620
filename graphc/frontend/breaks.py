"""Graph breaks: with compile(fullgraph=False), code that needs a tensor's value runs between compiled graphs.

    @graphc.compile(fullgraph=False)
    def step(x, y):
        loss = crit(net(x), y)
        print(loss.item())            # a break: the graph recorded so far runs, Python gets the number
        loss.backward(); opt.step()   # recorded into the next graph
        return loss

The trace runs as usual until the code needs a value (`.item()`, `.numpy()`, `.tolist()`,
`bool(t)`, `float(t)`, `x[mask]`).  There the ops recorded so far become one graph (a segment),
compiled once per structure and run at once; every traced tensor the code can still reach gets
its value, state writes (parameters, .grad, optimizer state, the RNG offset) are written back,
and tracing goes on into the next segment.  Code that broke once runs this way on every call, so
Python decides each branch again; the segments come from the cache.

Autograd across a break: a value that requires grad remembers the segment that made it and what
that segment read.  When a later segment asks for a gradient through it (`loss.backward()`), the
ops that made it are recorded again there (replayed from those inputs: the same numbers, the same
dropout draws), so the `grad` request reaches the parameters.  The forward before the break is
then computed twice; that is the price of `loss.backward()` after `loss.item()`.  Without a
backward through it (`print(loss.item())` after optimizer.step()), a value is a plain input.
"""
from __future__ import annotations

import copy
import warnings
import weakref

import numpy as np

from .. import _context
from ..builder import proxy
from ..config import log, override, settings
from ..errors import BackendError, GradError, GraphcError, format_location, user_frame
from ..ir import Value
from ..ir.graph import clone_graph
from ..tensor import Tensor
from .backend_failure import backend_failure
from .lowering import restore, run_passes, snapshot
from .trace import Tracer, unflatten_result


class Break:
    """One graph break: the user's (file, line, code) and why.   str(b) -> 'at step.py:12   print(...): .item() ...'"""

    __slots__ = ("loc", "reason")

    def __init__(self, loc, reason):
        self.loc, self.reason = loc, reason

    def __repr__(self):
        return f"Break({self})"

    def __str__(self):
        where = format_location(self.loc) or "at an unknown line"
        return f"{where}  -- {self.reason}"


class Explanation(str):
    """What graphc.explain returns: its text, plus torch._dynamo.explain's counts as attributes."""

    def __new__(cls, text, breaks):
        self = super().__new__(cls, text)
        self.break_reasons = list(breaks)
        self.graph_break_count = len(breaks)
        self.graph_count = len(breaks) + 1
        return self


def break_lines(breaks):
    """The explain section that lists the breaks.   ['graphs: 2, graph breaks: 1', '  1. at f.py:3 ...']"""
    lines = [f"graphs: {len(breaks) + 1}, graph breaks: {len(breaks)}"]
    lines += [f"  {i}. {b}" for i, b in enumerate(breaks, start=1)]
    return lines


class _Overwritten:
    """A source a replay cannot use: a tensor that carries grad, written by the segment that read it."""

    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor


class _Origin:
    """Where a value materialised at a break came from: its segment's trace and that segment's inputs."""

    __slots__ = ("graph", "value", "sources")

    def __init__(self, graph, value, sources):
        self.graph, self.value, self.sources = graph, value, sources


class SegmentTracer(Tracer):
    """A Tracer that, where the code needs a value, hands over to its call's graph_break."""

    def __init__(self, name, call):
        super().__init__(name)
        self.call = call
        self.created = []     # weak references to the tracer tensors this segment handed out
        self.crossing = {}    # id(input value) -> (tensor, _Origin): values from earlier segments that need grad
        self.replays = {}     # id(earlier trace graph) -> {id(its value): this segment's value}

    def graph_break(self, tensor, reason):
        """Run the graph so far and return tensor's array (frontend/breaks.py's module docstring)."""
        return self.call.graph_break(self, tensor, reason)

    def _track(self, t):
        self.created.append(weakref.ref(t))
        return t

    def data_input(self, tensor, name):
        return self._track(super().data_input(tensor, name))

    def scalar_input(self, group, key):
        return self._track(super().scalar_input(group, key))

    def emit(self, op, args, attrs):
        return self._track(super().emit(op, args, attrs))

    def live_tensors(self):
        """The tracer tensors the code can still reach: what a break must give values to."""
        seen, live = set(), []
        for ref in self.created:
            t = ref()
            if t is not None and type(t._value) is Value and id(t) not in seen:
                seen.add(id(t))
                live.append(t)
        return live

    def lift(self, tensor):
        value = super().lift(tensor)
        origin = tensor.__dict__.get("_break_origin")
        if origin is not None and tensor.requires_grad:
            self.crossing[id(value)] = (tensor, origin)
        return value

    def backward(self, loss, gradient=None):
        root = self.value_of(loss)
        reconnected = self._reconnect(root)
        if reconnected is not root:   # the loss itself was materialised at a break: differentiate its replay
            loss = proxy(reconnected, True)
        return super().backward(loss, gradient)

    def _reconnect(self, root):
        """Give a grad request its path back through the values that earlier breaks materialised.

        Each such value the root depends on is replayed at the top of this graph (a replay reads
        graph inputs only), and its uses here read the replay instead of the plain input: the same
        numbers, now differentiable back to the parameters.  Replays may reach older breaks' values,
        so repeat until none is left.  Returns the root, or its replay when the root is such a value.
        """
        while self.crossing:
            ancestors = self._differentiable_ancestors(root)
            todo = [key for key in self.crossing if key in ancestors]
            if not todo:
                return root
            swap = {}
            for key in todo:
                tensor, origin = self.crossing[key]
                start = len(self.graph.nodes)
                swap[key] = self._replay(origin, origin.value)
                replayed = self.graph.nodes[start:]
                del self.graph.nodes[start:]
                self.graph.nodes[:0] = replayed
            for node in self.graph.nodes:
                node.inputs = [swap.get(id(v), v) for v in node.inputs]
            root = swap.get(id(root), root)
        return root

    def _replay(self, origin, value):
        """Record again here the ops of origin.graph that compute `value` (inputs: what that segment read)."""
        done = self.replays.setdefault(id(origin.graph), {})
        if id(value) in done:
            return done[id(value)]
        needed, stack = set(), [value]
        while stack:
            v = stack.pop()
            if id(v) not in needed and id(v) not in done:
                needed.add(id(v))
                if v.node is not None:
                    stack.extend(v.node.inputs)
        for v, source in zip(origin.graph.inputs, origin.sources):
            if id(v) in needed:
                if isinstance(source, _Overwritten):
                    raise GradError("backward", "the gradient must flow through a value computed before a graph "
                                                "break from a tensor that the graph before the break then updated "
                                                "in place (e.g. optimizer.step()), so its old value is gone",
                                    hint="call backward() before the update, or compute the value again after it")
                done[id(v)] = self.value_of(source if isinstance(source, Tensor) else Tensor._wrap(source))
        for node in origin.graph.nodes:
            if id(node.out) in needed:
                done[id(node.out)] = self.graph.add_node(node.op, [done[id(v)] for v in node.inputs], node.attrs,
                                                         node.loc, shape=node.out.shape, dtype=node.out.dtype)
        return done[id(value)]


class _Outcome:
    """What a call that broke returns to CompiledFunction._call: its result."""

    def __init__(self, result):
        self.result = result


class SegmentedCall:
    """One call of a compiled function in segments: trace, break, run, trace on."""

    def __init__(self, compiled, first):
        self.compiled = compiled
        self.first = first        # the first call compiles its segments; a later one that must is a recompile
        self.breaks = []
        self.flat_args = []
        self.tracer = None

    def trace(self, args, kwargs):
        """Run the user's function under segment tracers; the record of the last (or only) segment."""
        tracer, self.flat_args, p_args, p_kwargs = self.compiled._start_trace(SegmentTracer, args, kwargs, self)
        self.base_name = tracer.graph.name
        self.tracer = tracer
        with tracer:
            try:
                result = self.compiled.fn(*p_args, **p_kwargs)
                return self.tracer.finish(result)
            except BaseException:
                self.tracer.abort()   # segments that ran already keep their writes, as eager code would
                raise

    def finish(self, record):
        """Run the last segment and return the call's result."""
        outputs = self._run(record)
        self.compiled._breaks = self.breaks
        return unflatten_result(record.spec, outputs)

    def graph_break(self, tracer, tensor, reason):
        self.breaks.append(Break(user_frame(), reason))
        log("graph_breaks", f"graph break {len(self.breaks)}: {self.breaks[-1]}")
        live = tracer.live_tensors()
        if type(tensor._value) is Value and all(t is not tensor for t in live):
            live.append(tensor)
        values = [t._value for t in live]
        record = tracer.finish(live)
        wants_grad = any(t.requires_grad for t in live)
        outputs = self._run(record, keep_sources=wants_grad)
        for t, v, out in zip(live, values, outputs):
            t._value = out._value
            if t.requires_grad:
                t._break_origin = _Origin(record.trace_graph, v, self.sources)
        self.tracer = SegmentTracer(f"{self.base_name}_{len(self.breaks)}", self)
        for m in tracer.modules.values():
            self.tracer.note_module(m)
        _context.set_tracer(self.tracer)
        return tensor._value

    # --- one segment: compile once per structure, run -------------------------------------------
    def _run(self, record, keep_sources=False):
        compiled = self.compiled
        key = (compiled.backend_name, repr(sorted(compiled.options.items())), structure_key(record.graph))
        template = compiled._segments.get(key)
        if template is not None:
            compiled._stats["cache_hits"] += 1
            entry = copy.copy(template)
            entry.record = record
            record.trace_graph, record.graph = record.graph, template.graph
            entry.input_getters = type(template)._input_getters(record)
        else:
            if not self.first:
                self._note_recompile(len(self.breaks))
            entry = self._lower(record)
        compiled.last = entry
        if keep_sources:
            self.sources = _sources(entry, record, self.flat_args)
        if template is not None:
            return entry(self.flat_args)
        saved = snapshot(list(record.updates) + list(record.escapes) + self.flat_args)
        try:
            outputs = entry(self.flat_args)
        except Exception as exc:
            restore(saved)
            if isinstance(exc, GraphcError) and not isinstance(exc, BackendError):
                raise
            raise backend_failure(exc, compiled.backend_name, "the first run of", entry.graph) from None
        compiled._segments[key] = entry
        compiled._stats["compiles"] += 1
        return outputs

    def _note_recompile(self, index):
        """A later call met a segment of a new structure (a branch not taken before, a new Python number)."""
        compiled = self.compiled
        reason = f"graph {index + 1} (after {index} breaks) has a structure not compiled before"
        log("recompiles", f"recompiling {getattr(compiled.fn, '__name__', 'function')}: {reason}")
        compiled._stats["recompiles"].append(reason)
        if len(compiled._stats["recompiles"]) >= settings.recompile_limit and not compiled._fallback:
            warnings.warn(f"graphc.compile: {getattr(compiled.fn, '__name__', 'function')} compiled "
                          f"{settings.recompile_limit} new graphs after its first call (last reason: {reason}); "
                          f"running it eagerly from the next call on. Raise GRAPHC_RECOMPILE_LIMIT, or keep Python "
                          f"numbers read from tensors (.item()) out of later tensor math.", stacklevel=2)
            compiled._fallback = True

    def _lower(self, record):
        """Passes and backend on a copy of the trace: the trace stays whole for replays after a break."""
        compiled = self.compiled
        timings = {}
        trace = record.graph
        backend, graph, manager = run_passes(clone_graph(trace)[0], compiled.backend_name, timings)
        try:
            with override(**compiled.mode_settings):
                run = backend.compile(graph, **compiled.options)
        except Exception as exc:
            if isinstance(exc, GraphcError) and not isinstance(exc, BackendError):
                raise
            raise backend_failure(exc, compiled.backend_name, "compiling", graph) from None
        timings.update(getattr(run, "stats", {}).get("phases", {}))
        for k, v in timings.items():
            compiled._stats["phases"][k] = compiled._stats["phases"].get(k, 0.0) + v
        record.trace_graph, record.graph = trace, graph
        stages = dict(manager.stages)
        stages["final"] = str(graph)
        entry = compiled._entry(record, run, stages, timings)
        entry.pass_report = [(name, manager.timings[name], manager.node_counts[name]) for name in manager.timings]
        entry.run_stats = getattr(run, "stats", {})
        entry.source = getattr(run, "source", None)
        return entry


def _sources(entry, record, flat_args):
    """What a segment reads, for replays: tensors that carry grad as themselves, other inputs as arrays.

    An input the segment writes (the RNG offset, running statistics) is copied before the run, so
    a replay computes with the value this segment saw, not the one it left behind.
    """
    written = {id(t) for t in record.updates}
    sources = []
    for (kind, src), array in zip(entry.input_getters, entry.graph_inputs(flat_args)):
        t = flat_args[src] if kind == "arg" else src if kind == "tensor" else None
        if t is not None and t.requires_grad:
            sources.append(_Overwritten(t) if id(t) in written else t)
        elif t is not None and id(t) in written:
            sources.append(np.array(array, copy=True))
        else:
            sources.append(np.asarray(array))
    return sources


def structure_key(graph):
    """What a compiled segment depends on: input types and kinds, every node, outputs and updates, by position.

    Cheaper than printing the graph (a segment is looked up on every call); names and source
    lines are left out, as the compiled graph reads its inputs by position.
    """
    index, parts = {}, []
    for v in graph.inputs:
        index[id(v)] = len(index)
        parts.append((v.kind, v.shape, v.dtype.str))
    for node in graph.nodes:
        parts.append((node.op, tuple([index[id(v)] for v in node.inputs]), node.out.shape, node.out.dtype.str,
                      tuple(sorted((k, _attr_key(a)) for k, a in node.attrs.items()))))
        index[id(node.out)] = len(index)
    parts.append(tuple([index[id(v)] for v in graph.outputs]))
    parts.append(tuple([(index[id(a)], index[id(b)]) for a, b in graph.updates]))
    return tuple(parts)


def _attr_key(a):
    if isinstance(a, np.ndarray):
        return ("array", a.shape, a.dtype.str, a.tobytes())
    if isinstance(a, (tuple, list)):
        return (type(a).__name__,) + tuple(_attr_key(v) for v in a)
    if isinstance(a, np.dtype):
        return ("dtype", a.str)
    if isinstance(a, float):   # by text: nan != nan would make a new segment on every call
        return ("float", repr(a))
    try:
        hash(a)
        return (type(a).__name__, a)
    except TypeError:
        return ("repr", repr(a))


def first_run_with_breaks(compiled, args, kwargs):
    """The first call under fullgraph=False: (record, flat args) when it never broke, else (outcome, None)."""
    call = SegmentedCall(compiled, first=True)
    record = call.trace(args, kwargs)
    if not call.breaks:
        compiled._breaks = []
        return record, call.flat_args
    return _Outcome(call.finish(record)), None


def run_with_breaks(compiled, args, kwargs):
    """A later call of code that breaks: Python runs again, its segments come from the cache."""
    call = SegmentedCall(compiled, first=False)
    return call.finish(call.trace(args, kwargs))

