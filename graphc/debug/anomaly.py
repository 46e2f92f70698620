"""graphc.detect_anomaly: name the op (eager, backward, or compiled node) that first produced a NaN or an inf.

    with graphc.detect_anomaly():             # also graphc.autograd.detect_anomaly(), as in PyTorch
        loss = step(x, y)                     # AnomalyError: log: produced NaN ... at train.py:12

Eager mode pays one flag test per op (`_context.anomaly`), a compiled call one observer call and a
flag test (`Entry.observers`), until a detect_anomaly block (or verify) needs more.
"""
from __future__ import annotations

import contextlib
import sys
import threading

import numpy as np

from .. import _context
from ..errors import GraphcError, format_location, user_frame
from ..ir.printer import value_names
from .values import copy_array, interpreter_values, ir_line


class AnomalyError(GraphcError, RuntimeError):
    """An op produced NaN or inf inside graphc.detect_anomaly()."""


_HINTS = {
    "log": "log of zero or of a negative number: clamp the input (x.clamp(min=1e-12)) or use log_softmax / "
           "cross_entropy, which stay finite",
    "div": "division by zero (or 0/0): add a small eps to the denominator",
    "sqrt": "sqrt of a negative number, or its gradient at 0 (inf): add a small eps inside the sqrt",
    "exp": "exp overflowed (float32 overflows above ~88): subtract the max first (logsumexp / log_softmax), "
           "or lower the learning rate",
    "pow_scalar": "a power of zero with a negative exponent, or an overflow: clamp the base",
    "matmul": "the values overflowed: the inputs are huge (exploding activations or weights); lower the learning "
              "rate, normalise the inputs, or clip gradients",
    "conv2d": "the values overflowed: the inputs are huge; lower the learning rate or normalise the inputs",
    "mul": "inf * 0 gives NaN, and large products overflow: look for an inf reaching this op",
    "sub": "inf - inf gives NaN: look for an inf reaching this op",
    "add": "inf + (-inf) gives NaN, and large sums overflow: look for an inf reaching this op",
    "sum": "the sum overflowed or one of its terms is inf: look for huge values reaching this op",
}
_DEFAULT_HINT = "check the values reaching this op; if they grow step by step, lower the learning rate or clip " \
                "the gradients"


def _describe_bad(arr):
    arr = np.asarray(arr)
    n_nan = int(np.count_nonzero(np.isnan(arr)))
    n_inf = int(np.count_nonzero(np.isinf(arr)))
    kinds = [f"NaN ({n_nan} of {arr.size})"] if n_nan else []
    if n_inf:
        kinds.append(f"inf ({n_inf} of {arr.size})")
    return " and ".join(kinds)


def _finite(arr):
    arr = np.asarray(arr)
    return arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all())


def _type_text(a):
    from ..ir.graph import type_str
    return type_str(np.shape(a), np.asarray(a).dtype)


def _backward_context():
    """('vjp', forward op, forward output) while eager backward runs a VJP; ('accumulate', None, leaf); or None."""
    from .. import autograd
    from ..ops.registry import run_vjp
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code is run_vjp.__code__:
            return "vjp", frame.f_locals.get("op"), frame.f_locals.get("ans")
        if code is autograd.accumulate_leaf.__code__:
            return "accumulate", None, frame.f_locals.get("t")
        if code is autograd.backward.__code__:
            return "backward", None, None
        frame = frame.f_back
    return None


def check_op_result(op, args, attrs, out):
    """The eager hook (tensor.apply calls it inside detect_anomaly): raise AnomalyError on a NaN/inf result."""
    value = out._value
    if out._ctx is not None:
        out._anomaly_loc = user_frame()   # the forward line, for an error in this op's backward
    if not _anomaly_state.check_nan or _finite(value):
        return
    inputs = ", ".join(_type_text(a._value) + ("" if _finite(a._value) else f" holding {_describe_bad(a._value)}")
                       for a in args)
    from_outside = [i for i, a in enumerate(args) if not _finite(a._value)]
    where = _backward_context()
    detail = f"inputs: {inputs}" + (f"; attributes: {attrs}" if attrs else "")
    if from_outside:
        origin = (f"its input {from_outside[0]} already holds non-finite values, made outside graphc's ops "
                  f"(the data, or a tensor filled from numpy)")
    else:
        origin = "from finite inputs"
    if where is None:
        raise AnomalyError(op.name, f"produced {_describe_bad(value)} {origin}", detail=detail,
                           hint=_HINTS.get(op.name, _DEFAULT_HINT))
    kind, fwd_op, fwd_out = where
    fwd_loc = getattr(fwd_out, "_anomaly_loc", None) if fwd_out is not None else None
    here = format_location(user_frame())
    if kind == "vjp":
        fwd_name = getattr(fwd_op, "name", "?")
        message = (f"the gradient became {_describe_bad(value)} in backward: op '{op.name}' of the VJP of "
                   f"'{fwd_name}' produced it {origin}")
        note = f"{detail}; backward called {here}" if here else detail
        if fwd_loc is None:
            note += "; the forward line is unknown (run the forward pass inside detect_anomaly too)"
        raise AnomalyError(f"{fwd_name} backward", message, loc=fwd_loc or (), detail=note,
                           hint=_HINTS.get(fwd_name, _HINTS.get(op.name, _DEFAULT_HINT)))
    raise AnomalyError(f"{op.name} (backward)", f"produced {_describe_bad(value)} {origin} while "
                                               f"accumulating a gradient", detail=detail,
                       hint=_HINTS.get(op.name, _DEFAULT_HINT))


class _AnomalyState:
    check_nan = True


_anomaly_state = _AnomalyState()
_install_lock = threading.Lock()
_installed = []


def _observe_call(entry, inputs):
    """The observer of compiled calls: inside detect_anomaly, check what the call produced.

    Outside a detect_anomaly block it costs a flag test per compiled call.
    """
    if not (_context.anomaly and _anomaly_state.check_nan):
        return None
    inputs = [copy_array(a) for a in inputs]   # copies: the run writes parameters back
    return lambda result: check_compiled_result(entry, inputs, result)


def _install_observer():
    """Watch compiled calls from now on (once per process)."""
    from ..frontend.compile import Entry
    with _install_lock:
        if not _installed:
            Entry.observers.append(_observe_call)
            _installed.append(_observe_call)


def check_compiled_result(entry, inputs, result):
    """After a compiled call: if a result or updated state holds NaN/inf, replay the graph through the
    interpreter and raise AnomalyError naming the first node that produced it."""
    rec = entry.record
    graph = entry.graph
    bad = []   # (what, graph value)
    for k, i in enumerate(rec.returns):
        if i is not None and result[k] is not None and not _finite(result[k]._value):
            bad.append((f"result {k}", graph.outputs[i], result[k]._value))
    for t, (target, new) in zip(rec.updates, graph.updates):
        if not _finite(t._value):
            bad.append((f"the update of %{target.name}", new, t._value))
    for t, i in zip(rec.escapes, rec.escape_outputs):
        if not _finite(t._value):
            bad.append(("a new .grad or optimizer state", graph.outputs[i], t._value))
    if not bad:
        return
    what = ", ".join(f"{w} ({_describe_bad(a)})" for w, _, a in bad[:3])
    names = value_names(graph)
    wanted = "nan" if any(np.isnan(np.asarray(a, dtype=np.float64)).any() for _, _, a in bad) else "inf"
    needed = _ancestors([v for _, v, _ in bad])
    try:
        env = interpreter_values(graph, inputs)
    except GraphcError:
        env = None
    if env is not None:
        for v, a in zip(graph.inputs, inputs):
            if id(v) in needed and not _finite(a):
                raise AnomalyError(graph.name, f"the compiled step produced {what}: graph input %{v.name} "
                                               f"({v.kind}) already holds {_describe_bad(a)}",
                                   loc=(), hint="the NaN/inf came in with the data or state; check where "
                                                f"%{v.name} was last written")
        for node in graph.nodes:
            if id(node) not in needed:
                continue
            out = env.get(id(node.out))
            if out is None or _finite(out):
                continue
            if wanted == "nan" and not np.isnan(np.asarray(out, dtype=np.float64)).any():
                continue
            inputs_text = ", ".join(_type_text(env[id(v)]) for v in node.inputs)
            raise AnomalyError(node.op, f"produced {_describe_bad(out)} in compiled graph `{graph.name}` "
                                        f"(the first node to do so; the step returned {what})",
                               loc=node.loc or (), detail=f"{ir_line(node, names)}; inputs: {inputs_text}",
                               hint=_HINTS.get(node.op, _DEFAULT_HINT))
    raise AnomalyError(graph.name, f"the compiled step produced {what}, but the interpreter computes finite "
                                   f"values for every node on the same inputs",
                       loc=(), hint="the backend itself produced them: run graphc.verify(fn, *args) to find the "
                                    "node whose compiled code differs")


def _ancestors(values):
    """ids of the nodes the given values depend on (themselves included)."""
    seen, stack = set(), [v.node for v in values if v.node is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(v.node for v in node.inputs if v.node is not None)
    return seen | {id(v) for v in _inputs_reached(values)}


def _inputs_reached(values):
    out, seen, stack = [], set(), list(values)
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if v.node is None:
            out.append(v)
        else:
            stack.extend(v.node.inputs)
    return out


class detect_anomaly(contextlib.ContextDecorator):
    """Inside the block every op result is checked for NaN/inf, in forward and backward, eager or compiled.

        with graphc.detect_anomaly():          # or graphc.autograd.detect_anomaly()
            loss = crit(net(x), y); loss.backward()
        AnomalyError: log: produced NaN (1 of 4) from finite inputs
          at train.py:12   loss = torch.log(p).mean()

    Eager mode checks each op as it runs (and, in backward, names the VJP that produced the value and
    the forward line). A compiled call checks its results and updated state; if one holds NaN/inf, the
    graph is replayed through the interpreter to name the first node that produced it. Slow: for
    debugging. check_nan=False turns the checks off inside the block (as in PyTorch).
    """

    def __init__(self, check_nan=True):
        self.check_nan = bool(check_nan)

    def __enter__(self):
        _install_observer()
        self._prev = (_context.anomaly, _anomaly_state.check_nan)
        _context.anomaly = check_op_result
        _anomaly_state.check_nan = self.check_nan
        return self

    def __exit__(self, *exc):
        _context.anomaly, _anomaly_state.check_nan = self._prev
        return False


class set_detect_anomaly(detect_anomaly):
    """Switch anomaly detection on or off (also as a context manager).   graphc.autograd.set_detect_anomaly(True)"""

    def __init__(self, mode, check_nan=True):
        super().__init__(check_nan)
        self.mode = bool(mode)
        self._prev = (_context.anomaly, _anomaly_state.check_nan)
        if self.mode:
            _install_observer()
        _context.anomaly = check_op_result if self.mode else False
        _anomaly_state.check_nan = self.check_nan

    def __enter__(self):
        return self


def is_anomaly_enabled():
    return bool(_context.anomaly)
