"""torch.nn.utils: gradient clipping and flat parameter vectors.

    total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)   # traceable: no .item() inside
    vec = nn.utils.parameters_to_vector(model.parameters()); nn.utils.vector_to_parameters(vec, model.parameters())
"""
from __future__ import annotations

import numpy as np

from .. import functional as G
from ..autograd import no_grad
from ..errors import GraphcError
from ..tensor import Tensor


def _grads(parameters):
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all grads so that their joint norm is at most max_norm; return that norm (before clipping).

    The scale is min(1, max_norm / (norm + 1e-6)) as a tensor, so a compiled step clips without
    reading the norm's value back to Python.
    """
    grads = _grads(parameters)
    if not grads:
        return G.tensor(0.0)
    norm_type = float(norm_type)
    with no_grad():
        if norm_type == float("inf"):
            total = G.stack([G.abs(g).amax() for g in grads]).amax()
        else:
            # sum of |g|^p over all grads, then the p-th root: the norm of the per-tensor norms
            powered = [(g * g).sum() if norm_type == 2.0 else G.pow(G.abs(g), norm_type).sum() for g in grads]
            total = G.pow(G.stack(powered).sum(), 1.0 / norm_type)
        if error_if_nonfinite:
            if total._is_traced():
                raise GraphcError("clip_grad_norm_", "error_if_nonfinite=True reads the norm's value, which is not "
                                                     "known while tracing", hint="pass error_if_nonfinite=False")
            if not np.isfinite(total.numpy()).all():
                raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is "
                                   "non-finite, so it cannot be clipped. To disable this error and scale the "
                                   "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
        scale = G.minimum(max_norm / (total + 1e-6), 1.0)
        for g in grads:
            g.mul_(scale)
    return total


clip_grad_norm = clip_grad_norm_


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every grad element into [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    with no_grad():
        for g in _grads(parameters):
            g.copy_(G.minimum(G.maximum(g, -clip_value), clip_value))


def parameters_to_vector(parameters):
    """All parameters flattened and concatenated.   parameters_to_vector(net.parameters()) -> [n_params]"""
    return G.cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    """Copy consecutive slices of vec into the parameters (in place)."""
    if not isinstance(vec, Tensor) or vec.ndim != 1:
        raise TypeError(f"expected a 1-D Tensor, but got: {type(vec).__name__}")
    offset = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.copy_(vec[offset:offset + n].reshape(tuple(p.shape)))
            offset += n
