"""Optimizer base class: param_groups, state, zero_grad, state_dict, like torch.optim.Optimizer.

    opt = SGD(net.parameters(), lr=0.1); opt.zero_grad(); loss.backward(); opt.step()

Optimizers are ordinary graphc code, so @graphc.compile traces their step like the model.
Two rules keep a compiled step from recompiling: hyper-parameters that change from step to step
(lr, momentum, betas...) enter the arithmetic through `hyper()`, which makes them runtime inputs
of the graph; and state tensors are created before the update's arithmetic (see `eager_state`)
so the first step and all later steps trace to the same graph.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict

import numpy as np

from .. import _context
from ..autograd import no_grad
from ..errors import GraphcError
from ..tensor import Tensor


def hyper(group, key):
    """group[key] for arithmetic: a float eagerly, a runtime scalar input of the graph while tracing."""
    value = group[key]
    tracer = _context.tracer
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if tracer is None:
        return np.float32(value)   # rounded as the compiled step's f32 scalar input is: eager == compiled
    return tracer.scalar_input(group, key)


@contextlib.contextmanager
def eager_state():
    """Create optimizer state as real arrays even while tracing (they then become lifted state)."""
    tracer = _context.tracer
    _context.set_tracer(None)
    try:
        yield
    finally:
        _context.set_tracer(tracer)


def zeros_state(p):
    with eager_state():
        return Tensor._wrap(np.zeros(p.shape, dtype=p.dtype))


def scalar_state(value=0.0):
    with eager_state():
        return Tensor._wrap(np.array(value, dtype=np.float32))


class Optimizer:
    """Base of graphc's optimizers (torch.optim.Optimizer's interface)."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor) or not p.is_leaf:
                raise ValueError("optimizer can only optimize leaf Tensors")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Reset the grads of all parameters (to None by default, as in PyTorch)."""
        self._note_traced()
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None   # unconditionally: the traced step must not depend on whether it was set
                elif p._grad is not None:
                    with no_grad():
                        p.grad = p.grad.detach() if p.grad.requires_grad else p.grad
                        p.grad.zero_()

    def _note_traced(self):
        if _context.tracer is not None:
            _context.tracer.note_optimizer(self)

    def step(self, closure=None):
        """Apply one update to every parameter that has a grad."""
        loss = None
        if closure is not None:
            with _enable_grad():
                loss = closure()
        self._note_traced()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, group, self.state[p])
        return loss

    def _update(self, p, grad, group, state):
        raise NotImplementedError

    # Hyper-parameters whose zero-ness or truth picks a code path in _update (lr never does: it only
    # scales, so a warm-up schedule from lr=0 must not recompile).
    _path_keys = ("momentum", "dampening", "weight_decay", "nesterov", "maximize", "amsgrad")

    def trace_signature(self, state=None):
        """What decides the traced graph's structure (not the values of hyper-parameters): runs every call."""
        state = self.state if state is None else state
        sig = []
        for group in self.param_groups:
            sig.append(tuple([group[k] if isinstance(group[k], bool) else group[k] != 0
                              for k in self._path_keys if k in group]))
            for p in group["params"]:
                s = state.get(p)
                sig.append(tuple(s) if s else ())
        return tuple(sig)

    # --- saving ----------------------------------------------------------------------------
    def state_dict(self):
        """{'state': {index: {name: tensor}}, 'param_groups': [...]}, parameters as indices like PyTorch."""
        index, groups, n = {}, [], 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(n, n + len(group["params"])))
            for p in group["params"]:
                index[id(p)] = n
                n += 1
            groups.append(packed)
        state = {index[id(p)]: {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"]) for g, mine in zip(groups, self.param_groups)):
            raise GraphcError("load_state_dict", "the saved optimizer has a different number of parameter groups "
                                                 "or parameters than this one",
                              hint="build the optimizer over the same parameters, in the same order")
        params = {i: p for g_saved, g in zip(groups, self.param_groups) for i, p in zip(g_saved["params"], g["params"])}
        for g_saved, g in zip(groups, self.param_groups):
            g.update({k: v for k, v in g_saved.items() if k != "params"})
        old = {p: dict(s) for p, s in self.state.items()}
        self.state = defaultdict(dict)
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            restored = {}
            for k, v in s.items():
                if isinstance(v, Tensor):
                    if tuple(v.shape) not in (tuple(p.shape), ()):
                        raise GraphcError("load_state_dict", f"state {k!r} of parameter {i} has shape "
                                                             f"{tuple(v.shape)}, the parameter has {tuple(p.shape)}")
                    prev = old.get(p, {}).get(k)
                    if isinstance(prev, Tensor) and prev.shape == v.shape and prev.dtype == v.dtype:
                        # in place: a compiled step holds the existing state tensors as lifted inputs
                        np.copyto(prev._value, v._value)
                        v = prev
                    else:
                        v = Tensor._wrap(np.array(v._value, copy=True))
                restored[k] = v
            self.state[p] = restored

    def __repr__(self):
        lines = [self.__class__.__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"


@contextlib.contextmanager
def _enable_grad():
    from ..autograd import enable_grad
    with enable_grad():
        yield
