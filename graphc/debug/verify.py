"""graphc.verify: run a function eagerly and compiled from the same state; name the first IR node whose
value diverges.

    report = graphc.verify(step, x, y)        # compiled (numba_cpu) vs eager, same starting state
    print(report)                             # "OK ... max abs error 2e-07" or the first diverging IR node
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from ..errors import GraphcError, format_location
from ..ir.printer import value_names
from .values import copy_array as _copy
from .values import interpreter_values, ir_line, reference_values

# ==============================================================================================
# Snapshots of everything a function touches
# ==============================================================================================

def _probe(fn, args, kwargs):
    """Trace fn once and throw the graph away: learn which tensors, grads and optimizers it touches.

    The trace is aborted, so every lifted tensor, .grad and optimizer state is as before (optimizer
    state the trace created eagerly, e.g. a fresh momentum buffer, is dropped again).
    """
    from ..frontend.compile import flat_tensor_args, replace_tensors
    from ..frontend.trace import Tracer

    class Probe(Tracer):
        def __init__(self):
            super().__init__("verify_probe")
            self.opt_before = {}

        def note_optimizer(self, optimizer):
            if id(optimizer) not in self.opt_before:
                self.opt_before[id(optimizer)] = (optimizer, _OptimizerState(optimizer))
            super().note_optimizer(optimizer)

    probe = Probe()
    flat = flat_tensor_args(args, kwargs)
    proxies = {id(t): probe.data_input(t, f"arg{i}") for i, t in enumerate(flat)}
    try:
        with probe:
            fn(*replace_tensors(args, proxies), **replace_tensors(kwargs, proxies))
    finally:
        probe.abort()
        for _, saved in probe.opt_before.values():
            saved.restore()
    return probe


_watch = threading.local()   # .calls: the list verify() fills with (entry, copies of its graph inputs)
_install_lock = threading.Lock()
_installed = []


def _record_call(entry, inputs):
    """The observer of compiled calls: inside verify, keep the graph's inputs before the run writes state back."""
    calls = getattr(_watch, "calls", None)
    if calls is not None:
        calls.append((entry, [_copy(a) for a in inputs]))


@contextlib.contextmanager
def _watch_compiled_calls():
    from ..frontend.compile import Entry
    with _install_lock:
        if not _installed:
            Entry.observers.append(_record_call)
            _installed.append(_record_call)
    saved = getattr(_watch, "calls", None)
    _watch.calls = []
    try:
        yield _watch.calls
    finally:
        _watch.calls = saved


class _OptimizerState:
    """An optimizer's state dicts and param groups (structure and tensor contents)."""

    def __init__(self, opt):
        self.opt = opt
        self.state = [(p, dict(s)) for p, s in opt.state.items()]
        self.groups = [dict(g) for g in opt.param_groups]
        self.arrays = [(v, v._value, _copy(v._value)) for _, s in self.state for v in s.values()
                       if _is_eager_tensor(v)]

    def restore(self):
        self.opt.state.clear()
        for p, s in self.state:
            self.opt.state[p] = dict(s)
        for g, saved in zip(self.opt.param_groups, self.groups):
            g.clear()
            g.update(saved)
        for t, arr, saved in self.arrays:
            _put(t, arr, saved)


def _is_eager_tensor(v):
    from ..tensor import Tensor
    return isinstance(v, Tensor) and isinstance(v._value, np.ndarray)


def _put(t, arr, saved):
    """Make tensor t hold `saved` again, in its original array when that array is writable."""
    if arr.flags.writeable:
        np.copyto(arr, saved)
    t._value = arr


class _Snapshot:
    """The state of every tensor, .grad and optimizer a function touches; restore() puts it all back."""

    def __init__(self, probe, flat_args):
        from ..random import default_generator
        seen = set()
        self.tensors = []
        for t in [e.tensor for e in probe.lifted.values()] + list(flat_args):
            if id(t) not in seen and isinstance(t._value, np.ndarray):
                seen.add(id(t))
                self.tensors.append((t, t._value, _copy(t._value)))
        holders = list(probe.grad_slots.values()) + [t for t, _ in probe.grads_read_first.values()]
        for opt, _ in probe.opt_before.values():
            holders.extend(p for g in opt.param_groups for p in g["params"])
        self.grads = []
        seen = set()
        for t in holders:
            if id(t) not in seen:
                seen.add(id(t))
                g = t._grad
                self.grads.append((t, g, None if g is None else g._value, None if g is None else _copy(g._value)))
        self.optimizers = [_OptimizerState(opt) for opt, _ in probe.opt_before.values()]
        self.rng = default_generator
        self.rng_state = default_generator.np.bit_generator.state

    def restore(self):
        for t, arr, saved in self.tensors:
            _put(t, arr, saved)
        for t, g, arr, saved in self.grads:
            t._grad = g
            if g is not None:
                _put(g, arr, saved)
        for opt in self.optimizers:
            opt.restore()
        self.rng.np.bit_generator.state = self.rng_state


class _Names:
    """Readable names for the state a compiled trace touched: 'fc1.weight', 'fc1.weight.grad', 'rng.offset'."""

    def __init__(self, record, snapshot):
        self.record = record
        self.by_id = {id(e.tensor): e.value.name for e in record.lifted}
        opt_ids = {id(v) for opt in record.optimizers for s in opt.state.values() for v in s.values()}
        for saved in snapshot.optimizers:
            opt_ids |= {id(v) for _, s in saved.state for v in s.values()}
        # Optimizer state is compared by (parameter, key): the eager run makes new tensors for it.
        self.tensors = [(self.by_id[id(t)], t) for t, _, _ in snapshot.tensors
                        if id(t) in self.by_id and id(t) not in opt_ids]
        self.grad_params = [t for t, _, _, _ in snapshot.grads]
        self.optimizers = record.optimizers or [s.opt for s in snapshot.optimizers]

    def name(self, t, fallback="tensor"):
        return self.by_id.get(id(t), fallback)

    def capture(self):
        """{name: array copy (or a Python value / None)} of all tracked state, now."""
        out = {}
        for name, t in self.tensors:
            out[name] = _copy(t._value)
        for i, p in enumerate(self.grad_params):
            g = p._grad
            out[self.name(p, f"param{i}") + ".grad"] = None if g is None else _copy(g._value)
        for j, opt in enumerate(self.optimizers):
            for i, (p, s) in enumerate(opt.state.items()):
                base = self.name(p, f"opt{j}.param{i}")
                for k, v in s.items():
                    out[f"{base}.{k}"] = _copy(v._value) if _is_eager_tensor(v) else v
        return out

    def graph_slots(self):
        """Names of the final graph's outputs and updates, as the compiled run wrote them back.

        Call right after the compiled run: an escaping tensor (a new .grad, new optimizer state) is
        found by identity where the run put it.
        """
        rec = self.record
        holder = {}
        for i, p in enumerate(self.grad_params):
            if p._grad is not None:
                holder[id(p._grad)] = self.name(p, f"param{i}") + ".grad"
        for j, opt in enumerate(self.optimizers):
            for i, (p, s) in enumerate(opt.state.items()):
                for k, v in s.items():
                    holder.setdefault(id(v), f"{self.name(p, f'opt{j}.param{i}')}.{k}")
        outputs = [None] * len(rec.graph.outputs)
        for k, i in enumerate(rec.returns):
            if i is not None:
                outputs[i] = ("result", k)
        for t, i in zip(rec.escapes, rec.escape_outputs):
            outputs[i] = ("state", holder.get(id(t)))
        updates = [("state", holder.get(id(t)) or self.name(t)) for t in rec.updates]
        return outputs, updates


def _flat_results(result):
    from ..frontend.trace import flatten_result
    from ..tensor import Tensor
    flat, _ = flatten_result(result)
    return [_copy(x._value) if isinstance(x, Tensor) else x for x in flat]


# ==============================================================================================
# Comparing values
# ==============================================================================================

def _errors(got, want):
    """(max abs error, max rel error, NaN/inf pattern differs) of two arrays of one shape."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.dtype.kind not in "fc" and want.dtype.kind not in "fc":
        diff = got != want
        n = int(np.count_nonzero(diff))
        return (float(n > 0), float(n > 0), False)
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    fin_g, fin_w = np.isfinite(g), np.isfinite(w)
    pattern = bool(np.any(fin_g != fin_w) or np.any((~fin_w) & (~np.isnan(w)) & (g != w)))
    both = fin_g & fin_w
    if not both.any():
        return 0.0, 0.0, pattern
    d = np.abs(g[both] - w[both])
    scale = np.abs(w[both])
    rel = d[scale > 0] / scale[scale > 0]
    return float(d.max()), float(rel.max()) if rel.size else 0.0, pattern


def _close(got, want, rtol, atol):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False
    if got.dtype.kind not in "fc" and want.dtype.kind not in "fc":
        return bool(np.array_equal(got, want))
    return bool(np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True))


class Check:
    """One compared value: a returned result or a piece of state after the call."""

    def __init__(self, name, kind, ok, max_abs=0.0, max_rel=0.0, note=""):
        self.name, self.kind, self.ok = name, kind, ok
        self.max_abs, self.max_rel, self.note = max_abs, max_rel, note

    def __repr__(self):
        return f"<Check {self.name} {'ok' if self.ok else 'DIFFERS'} abs={self.max_abs:.3g} rel={self.max_rel:.3g}>"


def _compare(name, kind, got, want, rtol, atol):
    if isinstance(want, np.ndarray) or isinstance(got, np.ndarray):
        if got is None or want is None:
            return Check(name, kind, False, np.inf, np.inf,
                         f"{'compiled' if got is None else 'eager'} has no value")
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return Check(name, kind, False, np.inf, np.inf, f"shapes differ: compiled {list(got.shape)}, "
                                                            f"eager {list(want.shape)}")
        abs_err, rel_err, pattern = _errors(got, want)
        ok = _close(got, want, rtol, atol)
        note = "NaN/inf in different places" if pattern else ""
        return Check(name, kind, ok, abs_err if not pattern else np.inf, rel_err if not pattern else np.inf, note)
    same = (got == want) or (got != got and want != want)
    return Check(name, kind, bool(same), 0.0 if same else np.inf, 0.0 if same else np.inf,
                 "" if same else f"compiled {got!r}, eager {want!r}")


# ==============================================================================================
# Node by node: the reference values and the backend's
# ==============================================================================================

class _NumbaProbe:
    """A numba_cpu build of the graph in which every kernel output keeps its own buffer after the call.

    `fused=False` makes every node its own kernel, so every node's value is at a kernel boundary.
    keep_values=True switches memory reuse and in-place updates off (a later kernel would overwrite the values).
    """

    def __init__(self, graph, fused, cache_dir=None):
        from ..backends import get_backend
        from ..config import override
        with override(dump=None):   # the real build's dump keeps its name; this one is for verify only
            self.runner = get_backend("numba_cpu").compile(graph, cache_dir=cache_dir, keep_values=True, fusion=fused)
        self.kernel_of = {id(n.out): k for k in self.runner.fused.kernels for n in k.nodes}

    def values(self, graph, inputs):
        # copies (the run must not touch the caller's arrays); np.ascontiguousarray would make 0-d arrays 1-d
        inputs = [np.array(a, copy=True, order="C") for a in inputs]
        with np.errstate(all="ignore"):
            self.runner(inputs)
        env = {id(v): a for v, a in zip(graph.inputs, inputs)}
        for node in graph.nodes:
            value = self.runner.value(node.out, inputs)
            if value is not None:    # None: inside a fused kernel, never materialised
                env[id(node.out)] = _copy(value)
        return env


def _first_divergence(graph, ref, got, rtol, atol, names):
    """The first node (graph order) whose backend value differs from the reference value, or None."""
    for i, node in enumerate(graph.nodes):
        key = id(node.out)
        if key not in got:
            continue
        if _close(got[key], ref[key], rtol, atol):
            continue
        abs_err, rel_err, pattern = _errors(got[key], ref[key])
        local = None
        if all(id(v) in got for v in node.inputs):
            own = reference_values(_single_node_graph(node), [got[id(v)] for v in node.inputs])[key]
            local = _errors(got[key], own)[:2] + (_close(got[key], own, rtol, atol),)
        inputs_ok = all(id(v) not in got or _close(got[id(v)], ref[id(v)], rtol, atol) for v in node.inputs)
        return Divergence(graph, i, node, names, abs_err if not pattern else np.inf,
                          rel_err if not pattern else np.inf, local=local, inputs_ok=inputs_ok)
    return None


def _single_node_graph(node):
    from ..ir import Graph
    g = Graph("node")
    g.inputs = list(node.inputs)
    g.nodes = [node]
    g.outputs = [node.out]
    return g


class Divergence:
    """Where the compiled run first parts from eager mode.

    `where` is "backend" (node/index/ir_line/loc name the first IR node whose compiled value differs from
    the op table's), "graph" (a pass changed the result: see note), "memory plan", "stale graph" (a later
    call reused a graph whose guards missed a change) or "rounding" (float32 noise in an ill-conditioned
    value, not a bug).
    """

    def __init__(self, graph, index, node, names, max_abs, max_rel, *, local=None, inputs_ok=True,
                 kernel=None, note="", where="backend"):
        self.graph, self.index, self.node = graph, index, node
        self.max_abs, self.max_rel = max_abs, max_rel
        self.local = local             # (abs, rel, ok) of the node recomputed from the backend's own inputs
        self.inputs_ok = inputs_ok
        self.kernel = kernel
        self.note = note
        self.where = where
        self.ir_line = ir_line(node, names) if node is not None else ""
        self.loc = node.loc if node is not None else None

    @property
    def op(self):
        return self.node.op if self.node is not None else None

    @property
    def source_line(self):
        """'model.py:12   y = x.exp()' (the user's line that made the node), or ''."""
        return format_location(self.loc)[3:] if self.loc else ""

    def __str__(self):
        lines = []
        if self.node is not None:
            lines.append(f"  {self.ir_line}")
            if self.loc:
                lines.append(f"  at {self.source_line}")
            lines.append(f"  max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g}")
            if self.local is not None:
                abs_l, rel_l, ok_l = self.local
                if not ok_l:
                    lines.append(f"  recomputed from the backend's own inputs the node still differs "
                                 f"(max abs {abs_l:.3g}): this node's code is wrong")
                else:
                    lines.append("  recomputed from the backend's own inputs the node agrees: the difference is "
                                 "inherited from (or amplified from) its inputs")
        if self.kernel is not None:
            lines.append(f"  kernel: {self.kernel}")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


# ==============================================================================================
# verify
# ==============================================================================================

class VerifyReport:
    """What graphc.verify found.  `ok`, `checks`, `max_abs`, `max_rel`, and on a mismatch `divergence`.

    report.node / report.ir_line / report.source_line name the first diverging IR node (None when all agree).
    """

    def __init__(self, name, backend, rtol, atol, checks, divergence=None, graph=None, notes=(), step=0, steps=1):
        self.name, self.backend, self.rtol, self.atol = name, backend, rtol, atol
        self.step, self.steps = step, steps     # the call this report describes (0-based), of how many
        self.checks = checks
        self.divergence = divergence
        self.graph = graph
        self.notes = list(notes)

    @property
    def ok(self):
        return all(c.ok for c in self.checks)

    @property
    def mismatches(self):
        return [c for c in self.checks if not c.ok]

    @property
    def max_abs(self):
        return max((c.max_abs for c in self.checks), default=0.0)

    @property
    def max_rel(self):
        return max((c.max_rel for c in self.checks), default=0.0)

    @property
    def node(self):
        return self.divergence.node if self.divergence else None

    @property
    def ir_line(self):
        return self.divergence.ir_line if self.divergence else None

    @property
    def source_line(self):
        return self.divergence.source_line if self.divergence else None

    def __bool__(self):
        return self.ok

    def __str__(self):
        head = f"graphc.verify({self.name}) on {self.backend}"
        tol = f"rtol={self.rtol:g}, atol={self.atol:g}"
        calls = f" in each of {self.steps} calls" if self.steps > 1 else ""
        if self.ok:
            return (f"{head}: OK, compiled matches eager{calls}: {len(self.checks)} values (results and updated "
                    f"state), max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g} ({tol})")
        at_call = f" after call {self.step + 1} of {self.steps}" if self.steps > 1 else ""
        lines = [f"{head}: MISMATCH{at_call}, {len(self.mismatches)} of {len(self.checks)} values differ ({tol})"]
        width = max(len(c.name) for c in self.checks)
        for c in self.checks:
            flag = "ok" if c.ok else "DIFFERS"
            lines.append(f"  {c.name:<{width}}  max abs {c.max_abs:9.3g}  max rel {c.max_rel:9.3g}  {flag}"
                         + (f"  ({c.note})" if c.note else ""))
        d = self.divergence
        if d is not None:
            if d.where == "backend":
                lines.append(f"first diverging IR node ({self.backend} vs the op table's numpy impls, node by node):")
            elif d.where == "graph":
                lines.append("the graph itself computes something else than eager mode:")
            elif d.where == "rounding":
                lines.append("the difference looks like float32 rounding, not a bug:")
            elif d.where == "stale graph":
                lines.append("a compiled graph was reused where it no longer fits:")
            else:
                lines.append(f"where it diverges ({d.where}):")
            lines.append(str(d))
        lines.extend("note: " + n for n in self.notes)
        return "\n".join(lines)

    __repr__ = __str__


def verify(fn, *args, backend="numba_cpu", rtol=1e-5, atol=1e-6, steps=1, **kwargs):
    """Run fn compiled and eagerly from the same state; compare results and updated state.

        report = graphc.verify(step, x, y); print(report); assert report.ok
        graphc.verify(step, x, y, steps=3)      # three calls each way: also catches a stale graph reused

    Every tensor fn touches (parameters, buffers, .grad, optimizer state, the RNG offset) is put back to
    its starting state before the eager run and again at the end, so verify leaves the program's tensors
    as it found them (plain Python attributes fn changes are not tracked).  On a mismatch the report says
    where the runs part (see Divergence): the first IR node whose compiled value differs from the op
    table's, the pass that changed the graph's result, the memory plan, a stale graph reused by a later
    call, or float32 rounding of an ill-conditioned value.
    """
    from ..frontend.compile import CompiledFunction, flat_tensor_args
    from ..frontend.compile import compile as graphc_compile
    if isinstance(fn, CompiledFunction):
        fn = fn.fn
    name = getattr(fn, "__name__", None) or type(fn).__name__
    flat_args = flat_tensor_args(args, kwargs)
    probe = _probe(fn, args, kwargs)
    start = _Snapshot(probe, flat_args)
    got, want = [], []     # per step: (results, state); compiled runs also keep (entry, inputs, slots)
    try:
        compiled = graphc_compile(fn, backend=backend)
        names = None
        with _watch_compiled_calls() as calls:
            for _ in range(steps):
                seen = len(calls)
                results = _flat_results(compiled(*args, **kwargs))
                if len(calls) == seen:
                    break       # the compiled function fell back to eager mode (recompile limit)
                entry, inputs = calls[-1]
                names = names or _Names(entry.record, start)
                got.append((results, names.capture(), entry, inputs, names.graph_slots()))
        start.restore()
        for _ in range(len(got)):
            want.append((_flat_results(fn(*args, **kwargs)), names.capture()))
    finally:
        start.restore()
    if not got:
        raise GraphcError("verify", f"{name} did not run compiled", hint="see the warning about recompiles")

    worst = None
    for step, ((g_res, g_state, entry, inputs, slots), (w_res, w_state)) in enumerate(zip(got, want)):
        report = VerifyReport(name, backend, rtol, atol, _checks(g_res, g_state, w_res, w_state, rtol, atol),
                              graph=entry.graph, step=step, steps=len(got))
        if worst is None or report.max_rel > worst.max_rel:
            worst = report      # all calls agree so far: the report shows the call with the largest error
        if not report.ok:
            if step == 0:
                _localize(report, entry, inputs, (w_res, w_state), (g_res, g_state), slots, rtol, atol)
            else:
                traced_at = next((i for i, run in enumerate(got[:step]) if run[2] is entry), None)
                _diagnose_later_call(report, fn, args, kwargs, start, entry, traced_at)
            return report
    return worst


def _checks(got, got_state, want, want_state, rtol, atol):
    checks = [_compare(f"result[{i}]" if len(want) > 1 else "result", "result", g, w, rtol, atol)
              for i, (g, w) in enumerate(zip(got, want))]
    if len(got) != len(want):
        checks.append(Check("results", "result", False, np.inf, np.inf, f"{len(got)} compiled vs {len(want)} eager"))
    for key in sorted(set(got_state) | set(want_state)):
        checks.append(_compare(key, "state", got_state.get(key), want_state.get(key), rtol, atol))
    return checks


def _diagnose_later_call(report, fn, args, kwargs, start, entry, traced_at):
    """Call k > 1 differs. Compile afresh from eager mode's state before call k and verify that one call:
    a wrong single call is reported as such; if it is right, either call k reused a stale graph (the fresh
    trace differs from the reused one) or calls 1..k-1 left states that differ within tolerance and call k
    amplifies that (rounding)."""
    from ..ir.printer import print_graph
    step, label = report.step, f"call {report.step + 1}"
    try:
        for _ in range(step):
            fn(*args, **kwargs)
        fresh = verify(fn, *args, backend=report.backend, rtol=report.rtol, atol=report.atol, **kwargs)
    except GraphcError as exc:
        fresh, failure = None, f"{exc.op}: {exc.message}"
    finally:
        start.restore()
    stale = traced_at is not None and (fresh is None or print_graph(fresh.graph, show_loc=False)
                                       != print_graph(entry.graph, show_loc=False))
    if stale:
        how = (f"tracing it afresh there fails ({failure})" if fresh is None else
               "a fresh trace from eager mode's state before it is a different graph" +
               (", which matches eager mode" if fresh.ok else ""))
        report.divergence = Divergence(entry.graph, None, None, {}, np.inf, np.inf, where="stale graph",
                                       note=f"{label} reused the graph traced at call {traced_at + 1}, but {how}: "
                                            f"the guards missed a change the trace depended on (see "
                                            f"graphc/frontend/compile.py _state_signature)")
        if fresh is not None and not fresh.ok:
            report.notes.append(f"the fresh graph is wrong too:\n{fresh}")
    elif fresh is not None and not fresh.ok:
        report.divergence = fresh.divergence
        report.notes.extend(fresh.notes)
        report.notes.append(f"{label} diagnosed by compiling afresh from eager mode's state before it")
    else:
        report.divergence = Divergence(entry.graph, None, None, {}, np.inf, np.inf, where="rounding",
                                       note=f"from eager mode's state before {label}, one compiled call matches "
                                            f"eager mode; the runs drifted apart within tolerance in the calls "
                                            f"before, and {label} amplifies that drift (an ill-conditioned step, "
                                            f"e.g. Adam on a gradient that is mostly rounding noise)")


def _expected_slots(slots, want, want_state):
    """Eager's values for each graph output and update (None where eager has no counterpart)."""
    def value(slot):
        if slot is None:
            return None
        kind, key = slot
        if kind == "result":
            return want[key] if key < len(want) else None
        return want_state.get(key)
    outputs, updates = slots
    return [value(s) for s in outputs], [value(s) for s in updates]


def _localize(report, entry, inputs, eager, compiled, slots, rtol, atol):
    """Fill report.divergence: rounding noise, a wrong graph (which pass), or the first wrong backend node."""
    graph = entry.graph
    names = value_names(graph)
    exp_out, exp_upd = _expected_slots(slots, *eager)
    try:
        ref = reference_values(graph, inputs)
    except Exception as exc:   # the op table cannot evaluate the graph: say so and stop
        report.notes.append(f"the reference evaluation of the final graph failed: {type(exc).__name__}: {exc}")
        return
    bad = _graph_mismatch(graph, ref, exp_out, exp_upd, rtol, atol)
    if bad is None:
        # The graph is right; the backend's results differ. Rounding, or a wrong node?
        got_out, got_upd = _expected_slots(slots, *compiled)
        env = {id(v): g for v, g in zip(graph.outputs, got_out) if isinstance(g, np.ndarray)}
        env.update({id(new): g for (_, new), g in zip(graph.updates, got_upd) if isinstance(g, np.ndarray)})
        wrong = _graph_mismatch(graph, env, exp_out, exp_upd, rtol, atol)
        note = wrong and _rounding_note(graph, inputs, wrong[1], ref[id(wrong[1])],
                                        _errors(env[id(wrong[1])], wrong[2])[0], "compiled and eager")
    else:
        note = _rounding_note(graph, inputs, bad[1], ref[id(bad[1])], _errors(ref[id(bad[1])], bad[2])[0],
                              "the graph (evaluated with the op table) and eager mode")
    if note:
        label = (bad or wrong)[0]
        report.divergence = Divergence(graph, None, None, names, np.inf, np.inf, where="rounding",
                                       note=f"{label}: {note}")
        return
    if bad is not None:
        # The graph computes something else than eager: find the pass that changed the result.
        report.divergence = _blame_pass(entry, inputs, exp_out, exp_upd, rtol, atol, bad[0])
        return
    try:
        if report.backend == "interpreter":
            got = interpreter_values(graph, inputs)
            report.divergence = _first_divergence(graph, ref, got, rtol, atol, names)
        elif report.backend == "numba_cpu":
            report.divergence = _localize_numba(report, graph, ref, inputs, names, rtol, atol)
        else:
            report.notes.append(f"node-by-node localisation is implemented for the interpreter and numba_cpu "
                                f"backends, not {report.backend!r}")
            return
    except Exception as exc:
        report.notes.append(f"could not run the backend node by node: {type(exc).__name__}: {exc}")
        return
    if report.divergence is None:
        report.notes.append("every node's value agrees with the reference when the graph is run on the starting "
                            "inputs: the difference comes from how results are written back to the program's "
                            "tensors (graphc/frontend/compile.py Entry._write_back) or from nondeterminism")


def _graph_mismatch(graph, ref, exp_out, exp_upd, rtol, atol):
    """(label, graph value, eager's array) of the first output/update whose reference value differs, or None."""
    for i, (v, w) in enumerate(zip(graph.outputs, exp_out)):
        if w is not None and isinstance(w, np.ndarray) and not _close(ref[id(v)], w, rtol, atol):
            return f"output {i}", v, w
    for j, ((target, new), w) in enumerate(zip(graph.updates, exp_upd)):
        if w is not None and isinstance(w, np.ndarray) and not _close(ref[id(new)], w, rtol, atol):
            return f"update of %{target.name}", new, w
    return None


def _rounding_note(graph, inputs, value, got, difference, between):
    """A note when float32 rounding alone moves `value` (evaluated: `got`) about as far as the two runs named
    by `between` differ (`difference`, max abs)."""
    try:
        exact = reference_values(graph, inputs, float64=True)[id(value)]
    except Exception:   # an op's impl that insists on float32: no verdict
        return None
    if np.shape(exact) != np.shape(got) or np.asarray(got).dtype.kind != "f":
        return None
    rounding, _, _ = _errors(got, exact)
    if not difference or not np.isfinite(difference) or rounding < 0.1 * difference:
        return None
    return (f"evaluated in float64 this value moves by {rounding:.3g}, comparable to the {difference:.3g} between "
            f"{between}: it is sensitive to rounding (ill-conditioned, e.g. Adam's update of a parameter "
            f"whose gradient is ~0), so the difference is float32 noise rather than a wrong graph")


def _blame_pass(entry, inputs, exp_out, exp_upd, rtol, atol, bad):
    """The first pipeline stage whose graph, evaluated with the op table, disagrees with eager mode."""
    from ..ir.parser import parse_graph
    culprit, previous = None, None
    for stage, text in entry.stages.items():
        if stage in ("trace", "final"):
            continue
        try:
            g = parse_graph(text)
            env = reference_values(g, inputs)
        except Exception:
            previous = stage
            continue
        if _graph_mismatch(g, env, exp_out, exp_upd, rtol, atol) is not None:
            culprit = stage
            break
        previous = stage
    if culprit is None:
        what = "every stage that could be re-read matches eager mode, so the final graph's own evaluation differs"
    elif previous is None:
        what = f"the graph is already wrong after '{culprit}' (the traced graph plus autodiff)"
    else:
        what = f"pass '{culprit}' changed the result (the graph after '{previous}' still matches eager)"
    return Divergence(entry.graph, None, None, {}, np.inf, np.inf, where="graph",
                      note=f"evaluated with the op table, {bad} differs from eager mode: {what}. "
                           f"Compare compiled.ir('{culprit or 'final'}') with the stage before it.")


def _localize_numba(report, graph, ref, inputs, names, rtol, atol):
    # 1. every node its own kernel: names the op whose generated code is wrong.
    try:
        unfused = _NumbaProbe(graph, fused=False)
        d = _first_divergence(graph, ref, unfused.values(graph, inputs), rtol, atol, names)
        if d is not None:
            k = unfused.kernel_of.get(id(d.node.out))
            d.kernel = k.name if k is not None else None
            return d
    except Exception as exc:
        report.notes.append(f"the one-op-per-kernel build failed ({type(exc).__name__}: {exc}); "
                            "trying the fused kernels")
    # 2. the real kernels, each output in its own buffer: a fusion/codegen bug shows at a kernel boundary.
    fused = _NumbaProbe(graph, fused=True)
    d = _first_divergence(graph, ref, fused.values(graph, inputs), rtol, atol, names)
    if d is not None:
        k = fused.kernel_of.get(id(d.node.out))
        d.kernel = f"{k.name} ({k.kind}: {', '.join(n.op for n in k.nodes)})" if k is not None else None
        d.note = "each op is right on its own; the value goes wrong where the ops are fused into this kernel"
        return d
    # 3. same kernels, right values: the memory plan (buffer reuse, in-place updates) is to blame.
    return Divergence(graph, None, None, names, np.inf, np.inf, where="memory plan",
                      note="every kernel computes the right values when each output has a buffer of its own; "
                           "with the real memory plan the results differ, so two values share storage while both "
                           "are live (see compiled.source('plan'))")


# ==============================================================================================
# detect_anomaly
# ==============================================================================================
