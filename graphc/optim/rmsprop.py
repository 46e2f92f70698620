"""RMSprop and Adagrad: PyTorch's update rules.

    opt = RMSprop(params, lr=1e-2, alpha=0.99)   # v = a*v + (1-a)*g*g;  p -= lr * g / (sqrt(v) + eps)
    opt = Adagrad(params, lr=1e-2)               # s += g*g;             p -= lr/(1+(t-1)*decay) * g / (sqrt(s) + eps)
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, eager_state, hyper, scalar_state, zeros_state


class RMSprop(Optimizer):
    """RMSprop (torch.optim.RMSprop), with momentum and the centered variant."""

    _path_keys = Optimizer._path_keys + ("centered",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False):
        if lr < 0 or eps < 0 or momentum < 0 or weight_decay < 0 or alpha < 0:
            raise ValueError(f"Invalid RMSprop hyper-parameter: lr={lr}, alpha={alpha}, eps={eps}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = scalar_state(0.0)
            state["square_avg"] = zeros_state(p)
            if group["momentum"] != 0:
                state["momentum_buffer"] = zeros_state(p)
            if group["centered"]:
                state["grad_avg"] = zeros_state(p)
        if group["maximize"]:
            grad = -grad
        lr, alpha, eps = (hyper(group, k) for k in ("lr", "alpha", "eps"))
        if group["weight_decay"] != 0:
            grad = grad + p * hyper(group, "weight_decay")
        state["step"].add_(1.0)
        square_avg = state["square_avg"]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg.lerp_(grad, 1 - alpha)
            avg = (square_avg - grad_avg * grad_avg).sqrt() + eps
        else:
            avg = square_avg.sqrt() + eps
        if group["momentum"] != 0:
            buf = state["momentum_buffer"]
            buf.mul_(hyper(group, "momentum")).add_(grad / avg)
            p.sub_(buf * lr)
        else:
            p.sub_(grad / avg * lr)


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad), with lr_decay and initial_accumulator_value."""

    _path_keys = Optimizer._path_keys + ("lr_decay",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        if lr < 0 or lr_decay < 0 or weight_decay < 0 or initial_accumulator_value < 0 or eps < 0:
            raise ValueError(f"Invalid Adagrad hyper-parameter: lr={lr}, lr_decay={lr_decay}, "
                             f"weight_decay={weight_decay}, initial_accumulator_value={initial_accumulator_value}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize))

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = scalar_state(0.0)
            with eager_state():
                state["sum"] = Tensor._wrap(np.full(p.shape, group["initial_accumulator_value"], dtype=p.dtype))
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad + p * hyper(group, "weight_decay")
        step = state["step"]
        step.add_(1.0)
        lr = hyper(group, "lr")
        if group["lr_decay"] != 0:
            lr = lr / ((step - 1.0) * hyper(group, "lr_decay") + 1.0)
        state["sum"].addcmul_(grad, grad, value=1.0)
        p.sub_(grad / (state["sum"].sqrt() + hyper(group, "eps")) * lr)
