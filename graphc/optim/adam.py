"""Adam and AdamW: PyTorch's update rules, with the step counter as a state tensor.

    opt = Adam(params, lr=1e-3)   # m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g; p -= lr/bc1 * m/(sqrt(v)/sqrt(bc2)+eps)
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .optimizer import Optimizer, hyper, scalar_state, zeros_state


def _power(base, exponent):
    """base ** exponent for a runtime scalar base and a step-counter tensor (traceable either way)."""
    log_base = np.log(base) if isinstance(base, (float, np.floating)) else F.log(base)
    return F.exp(exponent * log_base)


class Adam(Optimizer):
    """Adam (torch.optim.Adam), with weight_decay as L2 on the gradient and optional amsgrad."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        if lr < 0 or eps < 0 or not 0 <= betas[0] < 1 or not 0 <= betas[1] < 1:
            raise ValueError(f"Invalid Adam hyper-parameter: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, beta1=betas[0], beta2=betas[1], eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def add_param_group(self, group):
        # PyTorch keeps betas as a tuple; graphc stores each beta on its own so that it can be a runtime input.
        group = dict(group)
        if "betas" in group:
            group["beta1"], group["beta2"] = group.pop("betas")
        super().add_param_group(group)

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = scalar_state(0.0)
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_state(p)
        if group["maximize"]:
            grad = -grad
        lr, beta1, beta2, eps = (hyper(group, k) for k in ("lr", "beta1", "beta2", "eps"))
        if group["weight_decay"] != 0:
            if self.decoupled:
                p.mul_(1 - lr * hyper(group, "weight_decay"))
            else:
                grad = grad + p * hyper(group, "weight_decay")
        step = state["step"]
        step.add_(1.0)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - _power(beta1, step)
        bias_correction2 = 1 - _power(beta2, step)
        step_size = lr / bias_correction1
        second = exp_avg_sq
        if group["amsgrad"]:
            state["max_exp_avg_sq"].copy_(F.maximum(state["max_exp_avg_sq"], exp_avg_sq))
            second = state["max_exp_avg_sq"]
        denom = second.sqrt() / F.sqrt(bias_correction2) + eps
        p.sub_(exp_avg / denom * step_size)

    def state_dict(self):
        sd = super().state_dict()
        for g in sd["param_groups"]:
            g["betas"] = (g.pop("beta1"), g.pop("beta2"))
        return sd

    def load_state_dict(self, state_dict):
        groups = [dict(g) for g in state_dict["param_groups"]]
        for g in groups:
            if "betas" in g:
                g["beta1"], g["beta2"] = g.pop("betas")
        super().load_state_dict({"state": state_dict["state"], "param_groups": groups})


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): weight decay applied to the parameter, decoupled from the gradient."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, **kw):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, **kw)


class Adadelta(Optimizer):
    """Adadelta (torch.optim.Adadelta), the optimizer of PyTorch's mnist/main.py example."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False, **kw):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, p, grad, group, state):
        if not state:
            state["step"] = scalar_state(0.0)
            state["square_avg"] = zeros_state(p)
            state["acc_delta"] = zeros_state(p)
        if group["maximize"]:
            grad = -grad
        lr, rho, eps = (hyper(group, k) for k in ("lr", "rho", "eps"))
        if group["weight_decay"] != 0:
            grad = grad + p * hyper(group, "weight_decay")
        state["step"].add_(1.0)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        std = (square_avg + eps).sqrt()
        delta = (acc_delta + eps).sqrt() / std * grad
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        p.sub_(delta * lr)
