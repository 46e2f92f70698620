"""SGD with momentum, dampening, Nesterov and weight decay: PyTorch's exact update rule.

    opt = SGD(params, lr=0.01, momentum=0.9)   # buf = m*buf + (1-d)*g;  p -= lr*buf
"""
from __future__ import annotations

from .optimizer import Optimizer, hyper, zeros_state


class SGD(Optimizer):
    """Stochastic gradient descent (torch.optim.SGD)."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"Invalid SGD hyper-parameter: lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _update(self, p, grad, group, state):
        d_p = -grad if group["maximize"] else grad
        if group["weight_decay"] != 0:
            d_p = d_p + p * hyper(group, "weight_decay")
        if group["momentum"] != 0:
            buf = state.get("momentum_buffer")
            if buf is None and group["dampening"] == 0:
                # zeros then the general rule equals PyTorch's buf = clone(g) exactly (0*m + g == g),
                # and keeps the first step's graph equal to every later step's.
                buf = state["momentum_buffer"] = zeros_state(p)
            if buf is None:
                buf = state["momentum_buffer"] = d_p.clone().detach()
            else:
                buf.mul_(hyper(group, "momentum")).add_(d_p, alpha=1 - hyper(group, "dampening")
                                                        if group["dampening"] != 0 else 1)
            d_p = d_p + buf * hyper(group, "momentum") if group["nesterov"] else buf
        p.sub_(d_p * hyper(group, "lr"))
