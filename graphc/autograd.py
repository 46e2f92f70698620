"""Eager reverse-mode autodiff: a tape of (op, inputs, attrs) on each Tensor, walked backwards.

    x = graphc.tensor([1., 2.], requires_grad=True); (x * x).sum().backward(); x.grad -> [2., 4.]

The VJP rules come from the op table; this driver owns the generic work: reverse topological
order, accumulation, and summing gradients back over broadcast dimensions.
"""
from __future__ import annotations

import contextlib

import numpy as np

from . import _context, storage_version
from .errors import GradError
from .ops.registry import run_vjp


class set_grad_enabled(contextlib.ContextDecorator):
    """Set grad mode to `mode` inside the block.   with set_grad_enabled(False): ..."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self.prev = _context.grad_enabled
        _context.set_grad_enabled(self.mode)

    def __exit__(self, *exc):
        _context.set_grad_enabled(self.prev)


class no_grad(set_grad_enabled):
    """Disable gradient recording inside the block (also as a decorator).   with no_grad(): y = x * 2"""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Re-enable gradient recording inside a no_grad block."""

    def __init__(self):
        super().__init__(True)


def is_grad_enabled():
    return _context.grad_enabled


def _topo_order(root):
    """Tensors reachable from root through the tape, inputs before outputs (iterative DFS)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for inp in t._ctx[1]:
                if inp.requires_grad and id(inp) not in seen:
                    stack.append((inp, False))
    return order


def backward(root, gradient=None, create_graph=False):
    """Accumulate d(root)/d(leaf) into every leaf's .grad."""
    from .tensor import Tensor
    if not root.requires_grad:
        raise GradError("backward", "the tensor does not require grad and has no grad_fn",
                        hint="call .requires_grad_() on the inputs you differentiate with respect to, and do not "
                             "compute the loss under no_grad()")
    if gradient is None:
        if root.numel() != 1:
            raise GradError("backward", f"grad can be implicitly created only for scalar outputs, "
                                        f"got a tensor of shape {tuple(root.shape)}",
                            hint="reduce it first (loss.sum() or loss.mean()), or pass backward(gradient=...) "
                                 "of the same shape")
        gradient = Tensor(np.ones(root.shape, dtype=root.dtype))
    elif not isinstance(gradient, Tensor):
        gradient = Tensor(np.asarray(gradient, dtype=root.dtype))
    if tuple(gradient.shape) != tuple(root.shape):
        raise GradError("backward", f"gradient has shape {tuple(gradient.shape)} but the output has "
                                    f"{tuple(root.shape)}", hint="pass a gradient of the output's shape")
    grads = {id(root): gradient}
    with set_grad_enabled(create_graph):
        for t in reversed(_topo_order(root)):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._ctx is None:
                accumulate_leaf(t, g)
                continue
            op, inputs, attrs = t._ctx
            _check_versions(t)
            for inp, gi in zip(inputs, run_vjp(op, g, t, inputs, attrs)):
                if gi is not None:
                    prev = grads.get(id(inp))
                    grads[id(inp)] = gi if prev is None else prev + gi


def _check_versions(t):
    """PyTorch's rule: a value the VJP reads must not have been written over in place since it was recorded."""
    saved = getattr(t, "_saved_versions", None)
    if saved is None:
        return
    op, inputs, _ = t._ctx
    for k, (tensor, was) in enumerate(zip(list(inputs) + [t], saved)):
        now = storage_version.version(tensor._value)
        if now != was:
            role = f"input {k} of {op.name}" if k < len(inputs) else f"the output of {op.name}"
            raise GradError("backward", f"one of the variables needed for gradient computation has been modified "
                                        f"by an inplace operation: {role}, a {tensor.dtype}{list(tensor.shape)} "
                                        f"tensor, is at version {now}; expected version {was} instead",
                            hint="write into a copy instead (y = x.clone(); y[i] = v), or make the in-place change "
                                 "before the tensor is used, or after backward()")


def accumulate_leaf(t, g):
    if not t._leaf_wants_grad():
        return
    if g.dtype != t.dtype:
        g = g.to(t.dtype)
    g = g.detach() if not _context.grad_enabled else g
    if t.grad is None:
        # A fresh array: the leaf's grad must never alias an intermediate the tape still holds.
        # Under create_graph the gradient stays on the tape (clone is g + 0 for a g that requires grad).
        t.grad = g.clone() if g.requires_grad else g._copy_fresh()
    else:
        t.grad = t.grad + g
    run_post_accumulate_hooks(t)


def run_post_accumulate_hooks(t):
    """Tell the leaf's hooks (Tensor.register_post_accumulate_grad_hook) that its .grad is final."""
    hooks = t.__dict__.get("_post_accumulate_grad_hooks")
    if hooks:
        for hook in list(hooks.values()):
            hook(t)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """d(outputs)/d(inputs) as a tuple, without touching .grad.   grad(y, [x]) -> (dy/dx,)"""
    from .tensor import Tensor
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    saved = [(t, t.grad) for t in inputs]
    try:
        for t in inputs:
            t.grad = None
        backward(outputs, grad_outputs, create_graph=create_graph)
        result = tuple(t.grad for t in inputs)
    finally:
        for t, g in saved:
            t.grad = g
    if not allow_unused and any(r is None for r in result):
        raise GradError("grad", "one of the inputs was not used to compute the outputs",
                        hint="pass allow_unused=True to get None for it")
    return result


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare autograd against float64 central differences.   gradcheck(lambda x: (x * x).sum(), (x,)) -> True"""
    from .tensor import Tensor
    inputs = tuple(inputs)
    # Floats are widened to float64; int labels and bool masks keep their dtype.
    xs = [Tensor(np.array(t.detach().numpy(), dtype=np.float64 if t.dtype.kind == "f" else t.dtype),
                 requires_grad=t.requires_grad) for t in inputs]
    out = fn(*xs)
    seed = np.random.default_rng(0).standard_normal(out.shape)
    analytic = grad((out * Tensor(seed)).sum(), [x for x in xs if x.requires_grad], allow_unused=True)
    k = 0
    for x in xs:
        if not x.requires_grad:
            continue
        num = np.zeros(x.shape)
        flat = x._value.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = float((fn(*xs).detach().numpy() * seed).sum())
            flat[i] = orig - eps
            minus = float((fn(*xs).detach().numpy() * seed).sum())
            flat[i] = orig
            num.reshape(-1)[i] = (plus - minus) / (2 * eps)
        got = np.zeros(x.shape) if analytic[k] is None else analytic[k].numpy()
        k += 1
        if not np.allclose(got, num, atol=atol, rtol=rtol):
            if raise_exception:
                err = np.abs(got - num).max()
                raise GradError("gradcheck", f"analytic and numerical gradients differ (max abs error {err:.3g}) "
                                             f"for an input of shape {tuple(x.shape)}",
                                detail=f"analytic {got.ravel()[:6]} ... numerical {num.ravel()[:6]} ...")
            return False
    return True


def __getattr__(name):
    # torch.autograd's names for anomaly mode, which graphc.debug implements.  debug sits above this
    # module (it replays compiled graphs), so it is loaded by name on first use instead of imported.
    if name in ("detect_anomaly", "set_detect_anomaly"):
        import importlib
        return getattr(importlib.import_module("graphc.debug"), name)
    raise AttributeError(f"module 'graphc.autograd' has no attribute {name!r}")
