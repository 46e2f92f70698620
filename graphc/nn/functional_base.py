"""What every nn.functional module shares: argument pairs, unsupported-feature errors, conv padding, dropout.

    pair(3) -> (3, 3);  conv_padding("conv2d", "same", (3, 3), (1, 1)) -> (1, 1)

Kept apart so that nn.functional and the modules it re-exports (functional_layers) both import it
instead of each other.
"""
from __future__ import annotations

from .. import random as _random
from ..errors import GraphcError


def pair(v, name="argument"):
    """An int or a 1- or 2-sequence as a pair of ints.   pair(3) -> (3, 3); pair([2, 1]) -> (2, 1)"""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return (int(v[0]), int(v[0]))
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def unsupported(op, what, hint):
    """The error for a torch feature graphc does not have.   unsupported("conv2d", "groups=2", "...")"""
    return GraphcError(op, f"{what} is not supported by graphc", hint=hint)


def conv_padding(op, padding, kernel_hw, stride, dilation=(1, 1)):
    """Resolve 'valid' / 'same' / int / pair padding to a pair of ints (symmetric padding only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding != "same":
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        if stride != (1, 1):
            raise ValueError("padding='same' is not supported for strided convolutions")
        if any(k % 2 == 0 for k in kernel_hw):
            raise unsupported(op, f"padding='same' with an even kernel size {tuple(kernel_hw)}",
                              "that needs asymmetric padding: pad explicitly with F.pad(x, (left, right, top, "
                              "bottom)) and use padding=0")
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel_hw, dilation))
    return pair(padding, "padding")


# --- dropout ----------------------------------------------------------------------------------

def check_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout_mask(input, p, mask_shape):
    # The counter-based stream, not numpy: eager, interpreted and compiled runs draw the same mask.
    keep = _random.default_generator.uniform(mask_shape) >= p
    return keep.to(input.dtype) * (1.0 / (1.0 - p))


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return input * dropout_mask(input, p, tuple(input.shape))
