"""torch.nn.functional's normalisation, embedding, resampling and attention layers, as compositions.

    F.layer_norm(x[8,16,32], (32,)); F.embedding(ids[8,16], w[100,32]); F.interpolate(x, scale_factor=2)
    F.scaled_dot_product_attention(q[2,4,8,16], k, v, is_causal=True) -> [2,4,8,16]

Like graphc.nn.functional, everything is built from graphc primitives, so it runs eagerly and traces;
resampling and reflect/replicate padding are constant selection matrices applied with matmul.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import functional as G
from ..errors import GraphcError, ShapeError
from ..ops.registry import fmt_shape
from ..tensor import Tensor, apply
from .functional_base import dropout, pair, unsupported


# --- normalisation ----------------------------------------------------------------------------

def _normalized(x, axes, eps):
    mean = x.mean(axes, keepdim=True)
    d = x - mean
    var = (d * d).mean(axes, keepdim=True)
    return d * G.rsqrt(var + eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last len(normalized_shape) dims.   layer_norm(x[8,32], (32,)) -> mean 0, var 1 per row"""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ShapeError("layer_norm", f"normalized_shape {shape} does not match the input's trailing dims: "
                                       f"input {fmt_shape(input.shape)}",
                         hint="normalized_shape must equal the last dims of the input, e.g. (x.shape[-1],)")
    out = _normalized(input, tuple(range(input.ndim - len(shape), input.ndim)), eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each group of channels of each sample.   group_norm(x[8,32,4,4], 4) -> same shape"""
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise ShapeError("group_norm", f"{c} channels do not split into {num_groups} groups "
                                       f"(input {fmt_shape(input.shape)})",
                         hint="num_groups must divide the number of channels")
    grouped = input.reshape(n, num_groups, -1)
    out = _normalized(grouped, (2,), eps).reshape(tuple(input.shape))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    return out if bias is None else out + bias.reshape(shape)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """x / max(||x||_p, eps) along dim.   normalize([[3., 4.]]) -> [[0.6, 0.8]]"""
    if p == 2.0:
        norm = G.sqrt((input * input).sum(dim, keepdim=True))
    elif p == 1.0:
        norm = G.abs(input).sum(dim, keepdim=True)
    else:
        norm = G.pow(G.pow(G.abs(input), float(p)).sum(dim, keepdim=True), 1.0 / p)
    return input / G.maximum(norm, eps)


# --- activations and losses without a primitive -------------------------------------------------

def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta*x)) / beta, linear above threshold.   softplus([0.]) -> [0.6931]"""
    bx = input * beta
    m = G.maximum(bx, 0.0)
    smooth = (G.log(G.exp(-m) + G.exp(bx - m)) + m) * (1.0 / beta)   # shifted: exp never overflows
    return G.where(bx > threshold, input, smooth)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise, input as log-probabilities.   kl_div(logp, p, reduction='batchmean')"""
    from .functional_losses import legacy_reduction
    reduction = legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = G.exp(target) * (target - input)
    else:
        # 0 * log 0 is taken as 0, as in torch (xlogy)
        positive = target > 0
        safe = G.where(positive, target, G.ones_like(target))
        loss = G.where(positive, target * (G.log(safe) - input), G.zeros_like(input))
    if reduction == "batchmean":
        return loss.sum() / float(input.shape[0]) if input.ndim else loss.sum()
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


# --- embedding ---------------------------------------------------------------------------------

def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """Rows of weight picked by integer ids.   embedding(ids[8,16], w[100,32]) -> [8,16,32]"""
    if input.dtype.kind not in "iu":
        raise GraphcError("embedding", f"expected integer ids, got {input.dtype}",
                          hint="convert the indices with .long()")
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise GraphcError("embedding", "max_norm, scale_grad_by_freq and sparse are not supported by graphc",
                          hint="leave them at their defaults")
    flat = input.reshape(-1)
    rows = weight[flat]
    if padding_idx is not None:
        # The padding row is read but receives no gradient, as in torch.
        padding_idx = padding_idx % weight.shape[0]
        is_pad = (flat == padding_idx).to(weight.dtype).unsqueeze(1)
        rows = rows * (1.0 - is_pad) + weight[padding_idx].detach() * is_pad
    return rows.reshape(tuple(input.shape) + (weight.shape[1],))


# --- convolutions built on conv2d ------------------------------------------------------------------

def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 2-D convolution (conv2d's adjoint).

        conv_transpose2d(x[8,16,7,7], w[16,8,4,4], stride=2, padding=1) -> [8,8,14,14]
    """
    if groups != 1 or pair(dilation) != (1, 1):
        raise unsupported("conv_transpose2d", f"groups={groups}, dilation={dilation}",
                           "graphc's transposed convolution handles groups=1 and dilation=1 only")
    stride, padding, output_padding = pair(stride), pair(padding), pair(output_padding)
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    if x.shape[1] != weight.shape[0]:
        raise ShapeError("conv_transpose2d", f"input has {x.shape[1]} channels, the weight expects "
                                             f"{weight.shape[0]}: input {fmt_shape(x.shape)}, weight "
                                             f"{fmt_shape(weight.shape)}",
                         hint="a transposed convolution's weight is [in_channels, out_channels, kH, kW]")
    out_hw = tuple((x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + weight.shape[2 + i] + output_padding[i]
                   for i in range(2))
    out = apply("conv2d_grad_input", x, weight, input_hw=out_hw, stride=stride, padding=padding)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out.squeeze(0) if unbatched else out


# --- resampling and padding through selection matrices -----------------------------------------

def _apply_along(x, dim, matrix):
    """x with dim mapped through matrix[n_out, n_in] (a constant), by one matmul."""
    m = Tensor._constant(matrix.astype(x.dtype))
    moved = x.transpose(dim, -1)
    return G.matmul(moved, m.t()).transpose(dim, -1)


def _selection(indices, n_in):
    m = np.zeros((len(indices), n_in), dtype=np.float64)
    m[np.arange(len(indices)), indices] = 1.0
    return m


def _nearest_matrix(n_in, n_out, scale):
    src = np.minimum(np.floor(np.arange(n_out) * scale).astype(np.int64), n_in - 1)
    return _selection(src, n_in)


def _linear_matrix(n_in, n_out, scale, align_corners):
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1.0 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims.   interpolate(x[1,3,4,4], scale_factor=2, mode='bilinear') -> [1,3,8,8]"""
    spatial = input.ndim - 2
    if mode not in ("nearest", "bilinear", "linear") or antialias:
        raise GraphcError("interpolate", f"mode={mode!r} (antialias={antialias}) is not supported by graphc",
                          hint="use mode='nearest', 'linear' or 'bilinear'")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined")
    n_in = [input.shape[2 + i] for i in range(spatial)]
    if size is not None:
        n_out = list(size) if isinstance(size, (tuple, list)) else [size] * spatial
        scales = [a / b for a, b in zip(n_in, n_out)]
    else:
        factors = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * spatial
        n_out = [int(math.floor(a * f)) for a, f in zip(n_in, factors)]
        scales = ([a / b for a, b in zip(n_in, n_out)] if recompute_scale_factor
                  else [1.0 / f for f in factors])
    out = input
    for i in range(spatial):
        if mode == "nearest":
            m = _nearest_matrix(n_in[i], n_out[i], scales[i])
        else:
            m = _linear_matrix(n_in[i], n_out[i], scales[i], bool(align_corners))
        out = _apply_along(out, 2 + i, m)
    return out


def pad_by_index(input, pad, mode):
    """Reflect / replicate padding: each padded dim is a gather of existing positions."""
    out = input
    for k in range(len(pad) // 2):
        dim = input.ndim - 1 - k
        n = input.shape[dim]
        before, after = int(pad[2 * k]), int(pad[2 * k + 1])
        pos = np.arange(-before, n + after)
        if mode == "replicate":
            src = np.clip(pos, 0, n - 1)
        else:
            if before >= n or after >= n:
                raise ShapeError("pad", f"reflect padding {(before, after)} must be smaller than the dim's size {n} "
                                        f"(input {fmt_shape(input.shape)})", hint="use mode='replicate'")
            src = np.abs(pos)
            src = np.where(src > n - 1, 2 * (n - 1) - src, src)
        out = _apply_along(out, dim, _selection(src, n))
    return out


# --- attention -----------------------------------------------------------------------------------

def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q @ k^T * scale + mask) @ v.   sdpa(q[2,4,8,16], k[2,4,8,16], v[2,4,8,16]) -> [2,4,8,16]

    A bool attn_mask marks the positions that take part (True = attend); a float mask is added.
    """
    if query.shape[-1] != key.shape[-1]:
        raise ShapeError("scaled_dot_product_attention", f"query and key feature sizes differ: "
                                                         f"{fmt_shape(query.shape)} vs {fmt_shape(key.shape)}")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = G.matmul(query, key.transpose(-2, -1)) * scale
    L, S = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
        attn_mask = Tensor._constant(np.tril(np.ones((L, S), dtype=np.bool_)))
    if attn_mask is not None:
        if attn_mask.dtype == np.bool_:
            scores = G.masked_fill(scores, G.logical_not(attn_mask), float("-inf"))
        else:
            scores = scores + attn_mask
    weights = G.softmax(scores, -1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return G.matmul(weights, value)
