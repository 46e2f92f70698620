"""Tracing: run the user's Python code with tracer Tensors whose values are IR Values.

    tracer = Tracer("step"); with tracer: loss = step(x, y)    # every op appended to tracer.graph

Eager tensors the code touches (parameters, grads, optimizer state, RNG offsets) are lifted to
graph inputs on first use; when the code rebinds them (in-place updates, `.grad = ...`), the
tracer records it, and `finish` turns those records into graph outputs and updates.
"""
from __future__ import annotations

import numpy as np

from .. import _context
from ..builder import GraphBuilder, proxy
from ..errors import GradError, TraceError
from ..ir import Graph, Value
from ..tensor import Tensor


class Lifted:
    """An eager tensor that became a graph input: the tensor, its input Value, its array before the trace."""

    __slots__ = ("tensor", "value", "array")

    def __init__(self, tensor, value, array):
        self.tensor, self.value, self.array = tensor, value, array


class Tracer(GraphBuilder):
    """Records one call of the user's function as a Graph."""

    def __init__(self, name):
        super().__init__(Graph(name))
        self.lifted: dict[int, Lifted] = {}
        self.grad_slots: dict[int, Tensor] = {}
        self.optimizers: dict[int, object] = {}
        self.modules: dict[int, object] = {}
        self.scalars: dict[tuple, tuple] = {}
        self.detached: dict[int, Value] = {}
        self.data_inputs: list[Value] = []
        self.grad_before: dict[int, object] = {}
        self.grads_read_first: dict[int, Tensor] = {}   # .grad read before any rebinding: part of the guard
        self.state_before: dict[int, dict] = {}         # per optimizer: {param: its state dict} before the trace

    def __enter__(self):
        _context.TRACE_LOCK.acquire()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        _context.TRACE_LOCK.release()

    # --- inputs ----------------------------------------------------------------------------
    def data_input(self, tensor, name):
        value = self.graph.add_input(tensor.shape, tensor.dtype, "data", name)
        self.data_inputs.append(value)
        return proxy(value, tensor.requires_grad)

    def lift(self, tensor):
        entry = self.lifted.get(id(tensor))
        if entry is not None:
            return entry.value
        from ..nn.parameter import Parameter
        kind = "param" if isinstance(tensor, Parameter) else "state"
        array = tensor._value
        value = self.graph.add_input(array.shape, array.dtype, kind, f"{kind}{len(self.graph.inputs)}")
        self.lifted[id(tensor)] = Lifted(tensor, value, array)
        tensor._value = value
        return value

    def scalar_input(self, group, key):
        """A hyper-parameter as a 0-d float32 input read from group[key] at every call."""
        entry = self.scalars.get((id(group), key))
        if entry is None:
            value = self.graph.add_input((), np.float32, "scalar", key)
            entry = self.scalars[(id(group), key)] = (group, key, value)
        return proxy(entry[2])

    def value_of(self, t):
        if not isinstance(t, Tensor):
            raise TraceError("trace", f"expected a Tensor, got {type(t).__name__}")
        v = t._value
        if type(v) is Value:
            return v
        return self.lift(t)

    # --- ops -------------------------------------------------------------------------------
    def emit(self, op, args, attrs):
        values = [self.value_of(a) for a in args]
        if not _context.grad_enabled:
            # Values computed under no_grad must stop gradients even when their inputs carry them.
            values = [self._detach(v) if a.requires_grad else v for a, v in zip(args, values)]
        out = self.graph.add_node(op.name, values, attrs, self.location())
        requires = _context.grad_enabled and not op.nondiff and any(a.requires_grad for a in args)
        return proxy(out, requires)

    def _detach(self, value):
        d = self.detached.get(id(value))
        if d is None:
            d = self.detached[id(value)] = self.graph.add_node("stop_gradient", [value], {}, self.location())
        return d

    def assign(self, tensor, new):
        if type(tensor._value) is not Value:
            self.lift(tensor)
        super().assign(tensor, new)

    # --- state the code touches ------------------------------------------------------------
    def note_grad_read(self, tensor):
        """The code read tensor.grad: if it did so before rebinding it, the trace depends on it."""
        if id(tensor) not in self.grad_slots and id(tensor) not in self.grads_read_first:
            self.grads_read_first[id(tensor)] = (tensor, tensor._grad)

    def note_grad(self, tensor, value):
        if id(tensor) not in self.grad_slots:
            self.grad_slots[id(tensor)] = tensor
            self.grad_before[id(tensor)] = tensor._grad

    def note_optimizer(self, optimizer):
        if id(optimizer) not in self.optimizers:
            self.optimizers[id(optimizer)] = optimizer
            # What abort() puts back: state entries created while tracing (zeros_state) must not survive it.
            self.state_before[id(optimizer)] = {p: dict(s) for p, s in optimizer.state.items()}

    def note_module(self, module):
        self.modules[id(module)] = module

    # --- backward ----------------------------------------------------------------------------
    def backward(self, loss, gradient=None):
        """Record `grad(loss, wrt)` requests for every leaf the loss depends on; accumulate into .grad."""
        if not loss.requires_grad:
            raise GradError("backward", "the tensor does not require grad and has no grad_fn",
                            hint="call .requires_grad_() on the inputs you differentiate with respect to")
        loss_v = self.value_of(loss)
        seed = []
        if gradient is None:
            if loss_v.size != 1:
                raise GradError("backward", f"grad can be implicitly created only for scalar outputs, got a tensor "
                                            f"of shape {loss_v.shape}",
                                hint="reduce it first (loss.sum() or loss.mean()), or pass backward(gradient=...)")
        else:
            seed = [self.value_of(gradient if isinstance(gradient, Tensor) else Tensor(np.asarray(gradient)))]
        reachable = self._differentiable_ancestors(loss_v)
        leaves = [e.tensor for e in self.lifted.values()
                  if e.tensor.requires_grad and e.tensor._ctx is None and id(e.tensor._value) in reachable]
        for leaf in leaves:
            g = proxy(self.graph.add_node("grad", [loss_v, leaf._value] + seed, {}, self.location()))
            if g.dtype != leaf.dtype:
                g = g.to(leaf.dtype)
            leaf.grad = g if leaf.grad is None else leaf.grad + g
        from ..autograd import run_post_accumulate_hooks
        for leaf in leaves:   # after every grad request: a hook may read several leaves' grads
            run_post_accumulate_hooks(leaf)

    def _differentiable_ancestors(self, value):
        seen, stack = set(), [value]
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            if v.node is not None and not v.node.opdef.nondiff:
                stack.extend(v.node.inputs)
        return seen

    def abort(self):
        """Undo what tracing did to user-visible state after the user's code raised."""
        for entry in self.lifted.values():
            entry.tensor._value = entry.array
        for key, t in self.grad_slots.items():
            t._grad = self.grad_before[key]
        for key, opt in self.optimizers.items():
            before = self.state_before[key]
            for p in list(opt.state):
                if p not in before:
                    del opt.state[p]
                else:
                    opt.state[p].clear()
                    opt.state[p].update(before[p])

    # --- end of trace ----------------------------------------------------------------------------
    def finish(self, result):
        """Turn what the code returned and mutated into graph outputs/updates; restore eager tensors.

        Returns a TraceRecord that says where each graph input comes from and where each output goes.
        """
        graph = self.graph
        self.entry_signature = self._entry_signature()
        flat, spec = flatten_result(result)
        returns = []
        for item in flat:
            if isinstance(item, Tensor):
                returns.append(len(graph.outputs))
                graph.outputs.append(self.value_of(item))
            else:
                returns.append(None)
        updates = []
        for entry in self.lifted.values():
            final = entry.tensor._value
            if final is not entry.value:
                graph.updates.append((entry.value, final))
                updates.append(entry.tensor)
        escapes = []   # tensors created in the trace that live on in user-visible state
        grad_slots = []
        for t in self.grad_slots.values():
            g = t._grad
            grad_slots.append((t, g))
            if g is not None and type(g._value) is Value and id(g) not in self.lifted:
                escapes.append(g)
        for opt in self.optimizers.values():
            for state in opt.state.values():
                escapes.extend(v for v in state.values()
                               if isinstance(v, Tensor) and type(v._value) is Value and id(v) not in self.lifted)
        seen, unique = set(), []
        for t in escapes:
            if id(t) not in seen:
                seen.add(id(t))
                unique.append(t)
        escape_outputs = []
        for t in unique:
            escape_outputs.append(len(graph.outputs))
            graph.outputs.append(t._value)
        for entry in self.lifted.values():
            entry.tensor._value = entry.array
        self._name_inputs()
        return TraceRecord(self, spec, returns, updates, unique, escape_outputs, grad_slots)

    def _entry_signature(self):
        """The guard as the state was when the trace began (see frontend.compile._state_signature).

        Optimizer state made by this trace as graph values (SGD's first momentum buffer with
        dampening) did not exist before it: the next call finds it and must trace again.  State
        made eagerly during the trace (zeros_state) is read as an input, as it is on every later call.
        """
        optimizers = []
        for opt in self.optimizers.values():
            before = {p: {k: v for k, v in s.items()
                          if not (isinstance(v, Tensor) and type(v._value) is Value and id(v) not in self.lifted)}
                      for p, s in opt.state.items()}
            optimizers.append(opt.trace_signature(before))
        grads = [(g is None, id(g)) for _, g in self.grads_read_first.values()]
        return optimizers, grads

    def _name_inputs(self):
        """Readable input names: module paths for parameters, '<param>.grad', optimizer state names."""
        names = {}
        for module in self.modules.values():
            for name, p in module.named_parameters():
                names.setdefault(id(p), name)
            for name, b in module.named_buffers():
                names.setdefault(id(b), name)
        for t in list(self.grad_slots.values()):
            if t._grad is not None and id(t) in names:
                names.setdefault(id(t._grad), names[id(t)] + ".grad")
        for opt in self.optimizers.values():
            for p, state in opt.state.items():
                base = names.get(id(p), "p")
                for key, v in state.items():
                    if isinstance(v, Tensor):
                        names.setdefault(id(v), f"{base}.{key}")
        from ..random import default_generator
        names.setdefault(id(default_generator.seed_tensor), "rng.seed")
        names.setdefault(id(default_generator.offset_tensor), "rng.offset")
        used = {v.name for v in self.graph.inputs if v.kind in ("data", "scalar")}
        for entry in self.lifted.values():
            base = names.get(id(entry.tensor), entry.value.name)
            name, k = base, 1
            while name in used:
                k += 1
                name = f"{base}_{k}"
            used.add(name)
            entry.value.name = name
        scalar_names = {}
        for group, key, value in self.scalars.values():
            scalar_names.setdefault(key, []).append(value)
        for key, values in scalar_names.items():
            if len(values) > 1:
                for i, v in enumerate(values):
                    v.name = f"{key}_g{i}"


class TraceRecord:
    """What a finished trace knows beyond the graph: where inputs come from and outputs go."""

    def __init__(self, tracer, spec, returns, updates, escapes, escape_outputs, grad_slots):
        self.graph = tracer.graph
        self.spec = spec
        self.returns = returns
        self.lifted = list(tracer.lifted.values())
        self.scalars = list(tracer.scalars.values())
        self.data_inputs = tracer.data_inputs
        self.updates = updates
        self.escapes = escapes
        self.escape_outputs = escape_outputs
        self.grad_slots = grad_slots
        self.modules = list(tracer.modules.values())
        self.grads_read = [t for t, _ in tracer.grads_read_first.values()]
        seen, self.all_modules = set(), []
        for module in self.modules:
            for m in module.modules():
                if id(m) not in seen:
                    seen.add(id(m))
                    self.all_modules.append(m)
        self.optimizers = list(tracer.optimizers.values())
        optimizers, grads = tracer.entry_signature
        self.entry_signature = tuple([m.training for m in self.all_modules] + optimizers + grads)


def flatten_result(result):
    """Flatten nested tuples/lists/dicts of results into a list and a spec to rebuild them."""
    flat = []
    return flat, _spec_of(result, flat)


def _spec_of(x, flat):
    if isinstance(x, (tuple, list)):
        return (type(x), [_spec_of(v, flat) for v in x])
    if isinstance(x, dict):
        return (dict, [(k, _spec_of(v, flat)) for k, v in x.items()])
    flat.append(x)
    return None


def unflatten_result(spec, flat):
    """Rebuild what flatten_result flattened.   unflatten_result(None, [t]) -> t"""
    if spec is None:
        return flat[0]
    return _build(spec, iter(flat))


def _build(s, it):
    if s is None:
        return next(it)
    kind, items = s
    if kind is dict:
        return {k: _build(v, it) for k, v in items}
    built = [_build(v, it) for v in items]
    return kind(built) if kind in (tuple, list) else kind(*built)
