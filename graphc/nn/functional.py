"""graphc.nn.functional: torch.nn.functional's layers as compositions of graphc primitives.

    F.relu(F.linear(x, w, b)); F.max_pool2d(F.conv2d(x, w), 2); F.cross_entropy(logits, labels)

Everything here is built from Tensor methods, graphc.functional and `apply(primitive)`, never
from numpy arrays, so the same code runs eagerly and is traced into the compiler's IR.  Python
decisions depend only on shapes, dtypes, flags and hyper-parameters, never on tensor values.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import functional as G
from ..errors import GraphcError, ShapeError
from ..ops.registry import fmt_shape
from ..tensor import Tensor, apply
from .functional_losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,  # noqa: F401
                                huber_loss, l1_loss, mse_loss, nll_loss, smooth_l1_loss)
from .functional_base import check_p as _check_p, conv_padding, dropout  # noqa: F401
from .functional_base import dropout_mask as _dropout_mask, pair as _pair, unsupported as _unsupported
from .functional_layers import (conv_transpose2d, embedding, group_norm, interpolate, kl_div,  # noqa: F401
                                layer_norm, normalize, pad_by_index, scaled_dot_product_attention, softplus)

# --- activations ------------------------------------------------------------------------------
# NOTE: inplace=True computes out of place: graphc's tape cannot record an in-place op on an
# intermediate, and the result's values are the same.


def relu(input, inplace=False):
    """max(x, 0).   relu([-1., 2.]) -> [0., 2.]"""
    return apply("relu", input)


def _clamp(x, lo=None, hi=None):
    # maximum/minimum with a scalar: the gradient passes where lo <= x <= hi, exactly as clamp's.
    # NOTE: not graphc.clamp, whose primitive's shape rule currently rejects its min/max attributes.
    if lo is not None:
        x = G.maximum(x, lo)
    return x if hi is None else G.minimum(x, hi)


def relu6(input, inplace=False):
    return _clamp(input, 0.0, 6.0)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x where x > 0, else slope * x.   leaky_relu([-1., 2.], 0.1) -> [-0.1, 2.]"""
    return G.where(input > 0, input, input * negative_slope)


def elu(input, alpha=1.0, inplace=False):
    # exp of the clamped input: the branch where() discards must not overflow into a nan gradient
    return G.where(input > 0, input, (G.exp(_clamp(input, hi=0.0)) - 1.0) * alpha)


def sigmoid(input):
    return G.sigmoid(input)


def tanh(input):
    return G.tanh(input)


def silu(input, inplace=False):
    """x * sigmoid(x).   silu([0.]) -> [0.]"""
    return input * G.sigmoid(input)


def gelu(input, approximate="none"):
    """x * Phi(x) (approximate='tanh' uses torch's tanh formula).   gelu([0.]) -> [0.]"""
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * 0.5 * (G.tanh(inner) + 1.0)
    if approximate != "none":
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return input * 0.5 * (G.erf(input * (1.0 / math.sqrt(2.0))) + 1.0)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return _clamp(input, min_val, max_val)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along dim.   softmax([0., 0.], dim=0) -> [0.5, 0.5]"""
    return G.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """x - logsumexp(x) along dim, computed stably.   log_softmax([0., 0.], dim=0) -> [-0.6931, -0.6931]"""
    return G.log_softmax(input, dim, dtype=dtype)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return G.softmax(-input, dim, dtype=dtype)


# --- linear and convolution -------------------------------------------------------------------

def linear(input, weight, bias=None):
    """input @ weight.T + bias.   linear(x[64,784], w[128,784], b[128]) -> [64,128]"""
    if input.ndim >= 1 and weight.ndim == 2 and input.shape[-1] != weight.shape[1]:
        raise ShapeError("linear", f"input has {input.shape[-1]} features but the weight expects "
                                   f"{weight.shape[1]}: input {fmt_shape(input.shape)}, weight "
                                   f"{fmt_shape(weight.shape)}",
                         hint="in_features of the Linear must equal the input's last dimension; flatten "
                              "images first with x.flatten(1)")
    out = G.matmul(input, weight.t())
    return out if bias is None else out + bias


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over NCHW input.   conv2d(x[8,1,28,28], w[32,1,3,3]) -> [8,32,26,26]"""
    if groups != 1:
        raise _unsupported("conv2d", f"groups={groups}", "graphc's conv2d primitive handles groups=1 only")
    if _pair(dilation, "dilation") != (1, 1):
        raise _unsupported("conv2d", f"dilation={dilation}", "graphc's conv2d primitive handles dilation=1 only")
    stride = _pair(stride, "stride")
    padding = conv_padding("conv2d", padding, tuple(weight.shape[2:]), stride)
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    out = apply("conv2d", input, weight, stride=stride, padding=padding)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out.squeeze(0) if unbatched else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution over [N,C,L] as a conv2d of height 1.   conv1d(x[8,4,32], w[16,4,3]) -> [8,16,30]"""
    one = lambda v: v[0] if isinstance(v, (tuple, list)) else v   # noqa: E731
    pad = padding if isinstance(padding, str) else (0, one(padding))   # 'same'/'valid' resolve per dim in conv2d
    unbatched = input.ndim == 2
    x = input.unsqueeze(0) if unbatched else input
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, one(stride)), pad, (1, one(dilation)), groups)
    out = out.squeeze(2)
    return out.squeeze(0) if unbatched else out


# --- pooling ----------------------------------------------------------------------------------

def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each kernel window.   max_pool2d(x[8,32,24,24], 2) -> [8,32,12,12]"""
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _pair(stride)
    if _pair(dilation, "dilation") != (1, 1):
        raise _unsupported("max_pool2d", f"dilation={dilation}", "use dilation=1")
    if ceil_mode:
        raise _unsupported("max_pool2d", "ceil_mode=True", "pad the input (F.pad) so the windows tile it exactly")
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    # The argmax indices (first maximum per window) drive both the forward gather and the backward
    # scatter, so ties get their gradient exactly once, as in PyTorch.
    idx = apply("maxpool2d_argmax", input, kernel=kernel, stride=stride, padding=_pair(padding))
    out = apply("maxpool2d_gather", input, idx)
    if unbatched:
        out, idx = out.squeeze(0), idx.squeeze(0)
    return (out, idx) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each kernel window, as a sum of kh*kw strided slices.   avg_pool2d(x[1,1,4,4], 2) -> [1,1,2,2]"""
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _pair(stride)
    ph, pw = _pair(padding, "padding")
    if ceil_mode:
        raise _unsupported("avg_pool2d", "ceil_mode=True", "pad the input so the windows tile it exactly")
    if ph or pw:
        if not count_include_pad:
            raise _unsupported("avg_pool2d", "count_include_pad=False with padding", "use count_include_pad=True")
        input = pad(input, (pw, pw, ph, ph))
    h, w = input.shape[-2], input.shape[-1]
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ShapeError("avg_pool2d", f"kernel {(kh, kw)} is larger than the input {fmt_shape(input.shape[-2:])}")
    total = None
    for i in range(kh):
        for j in range(kw):
            win = input[..., i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            total = win if total is None else total + win
    return total * (1.0 / (divisor_override or kh * kw))


def _adaptive_matrix(n_in, n_out, dtype):
    # Row i averages input cells [floor(i*n/o), ceil((i+1)*n/o)), torch's adaptive windows.
    m = np.zeros((n_out, n_in), dtype=dtype)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return Tensor._constant(m)


def adaptive_avg_pool2d(input, output_size):
    """Average into a fixed output grid.   adaptive_avg_pool2d(x[8,64,7,7], 1) -> [8,64,1,1]"""
    oh, ow = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    h, w = input.shape[-2], input.shape[-1]
    oh, ow = h if oh is None else oh, w if ow is None else ow
    if (oh, ow) == (1, 1):
        return input.mean((-2, -1), keepdim=True)
    # Adaptive averaging is separable: out = Ph @ x @ Pw.T with constant averaging matrices.
    out = G.matmul(input, _adaptive_matrix(w, ow, input.dtype).t())
    return G.matmul(_adaptive_matrix(h, oh, input.dtype), out)


# --- dropout ----------------------------------------------------------------------------------

def _feature_dropout(input, p, training, name):
    _check_p(p)
    if not training or p == 0.0:
        return input
    if input.ndim < 2:
        raise ShapeError(name, f"expected an input with a batch and a channel dimension, got "
                               f"{fmt_shape(input.shape)}", hint="use F.dropout for 1-D inputs")
    if p == 1.0:
        return input * 0.0
    # One draw per (sample, channel), broadcast over the remaining dims (torch's feature_dropout).
    mask_shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return input * _dropout_mask(input, p, mask_shape)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of an [N,C,H,W] input with probability p; scale the rest by 1/(1-p)."""
    _check_p(p)
    inp_dim = input.dim()
    if inp_dim not in (3, 4):
        warn_msg = (f"dropout2d: Received a {inp_dim}-D input to dropout2d, which is deprecated "
                    "and will result in an error in a future release. To retain the behavior "
                    "and silence this warning, please use dropout instead. Note that dropout2d "
                    "exists to provide channel-wise dropout on inputs with 2 spatial dimensions, "
                    "a channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).")
        warnings.warn(warn_msg, stacklevel=2)
    if inp_dim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
                      "is the channel dim. This behavior will change in a future release to interpret the "
                      "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
                      "channel-wise dropout behavior, please switch to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training, "dropout2d")


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of an [N,C,L] input with probability p."""
    if input.dim() not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.dim()}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, "
                           "a channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    if input.dim() == 2:   # unbatched [C, L]: channels are dim 0
        return _feature_dropout(input.unsqueeze(0), p, training, "dropout1d").squeeze(0)
    return _feature_dropout(input, p, training, "dropout1d")


# --- shapes and encodings ---------------------------------------------------------------------

def flatten(input, start_dim=0, end_dim=-1):
    return G.flatten(input, start_dim, end_dim)


def one_hot(tensor, num_classes=-1):
    """Class indices to int64 indicator rows.   one_hot(tensor([2, 0]), 3) -> [[0, 0, 1], [1, 0, 0]]"""
    if num_classes < 0:
        if tensor._is_traced():
            raise GraphcError("one_hot", "num_classes=-1 reads the labels' values, which are not known while "
                                         "tracing", hint="pass num_classes explicitly")
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    return apply("one_hot", tensor, num_classes=int(num_classes), dtype=np.dtype(np.int64))


def pad(input, pad, mode="constant", value=None):
    """Pad the last len(pad)//2 dims: (left, right, top, bottom, ...).   pad(x[1,1,2,2], (1, 1, 1, 1)) -> [1,1,4,4]"""
    if mode not in ("constant", "reflect", "replicate"):
        raise _unsupported("pad", f"mode={mode!r}", "use mode='constant', 'reflect' or 'replicate'")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"Padding length must be divisible by 2 and at most twice the input's dims, got {len(pad)}")
    if mode != "constant":
        return pad_by_index(input, pad, mode)
    value = 0.0 if value is None else value
    out = input
    for k in range(len(pad) // 2):
        dim = out.ndim - 1 - k
        before, after = int(pad[2 * k]), int(pad[2 * k + 1])
        if before < 0 or after < 0:   # negative padding crops
            index = [slice(None)] * out.ndim
            index[dim] = slice(max(-before, 0), out.shape[dim] - max(-after, 0))
            out = out[tuple(index)]
            before, after = max(before, 0), max(after, 0)
        parts = []
        for n in (before, None, after):
            if n is None:
                parts.append(out)
            elif n:
                shape = list(out.shape)
                shape[dim] = n
                parts.append(G.full(tuple(shape), value, dtype=out.dtype))
        out = G.cat(parts, dim) if len(parts) > 1 else out
    return out


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Normalise over every dim but the channels (dim 1); in training, update the running stats in place."""
    axes = (0,) + tuple(range(2, input.ndim))
    shape = (1, -1) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // input.shape[1]
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{input.shape}")
        mean = input.mean(axes)
        var = input.var(axes, unbiased=False)
        if running_mean is not None:
            from ..autograd import no_grad
            with no_grad():
                # momentum may be a 0-d tensor (the cumulative average of momentum=None)
                running_mean.copy_(running_mean * (1.0 - momentum) + mean.detach() * momentum)
                # The unbiased variance as var() computes it (a division by n - 1, a number affine in the
                # batch size), not the biased one times n / (n - 1): that float would tie a compiled step to B.
                unbiased = input.var(axes, unbiased=True).detach()
                running_var.copy_(running_var * (1.0 - momentum) + unbiased * momentum)
    else:
        mean, var = running_mean, running_var
    out = (input - mean.reshape(shape)) * G.rsqrt(var.reshape(shape) + eps)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
