"""Loss functions of graphc.nn.functional, built from log_softmax, one_hot and reductions.

    F.cross_entropy(logits[64,10], labels[64]) -> 0-d tensor;  F.nll_loss(F.log_softmax(x, 1), y)

Class-index targets become one-hot rows (the `one_hot` primitive), so picking each sample's
log-probability is a multiply and a sum: elementwise and reduction ops the compiler fuses, and
no gather primitive is needed.  Shape and dtype checks read shapes only, never values.
"""
from __future__ import annotations

import warnings

from .. import functional as G
from ..errors import DTypeError, ShapeError
from ..ops.registry import fmt_shape
from ..tensor import apply

_REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average=None, reduce=None, reduction="mean"):
    """torch's mapping of the deprecated size_average/reduce flags onto `reduction`."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else ("sum" if reduce else "none")
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                  stacklevel=3)
    return ret


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce(loss, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _class_dim_last(x):
    """[N, C, d1, ...] -> [N, d1, ..., C], so one-hot rows line up with it."""
    if x.ndim <= 2:
        return x
    return x.permute((0,) + tuple(range(2, x.ndim)) + (1,))


def _check_class_target(op, input, target):
    """Validate class-index targets for an [N, C, ...] (or [C]) input; shapes and dtypes only."""
    if target.dtype.kind not in "iu":
        hint = "class-index targets must be integers: convert them with target.long()"
        if tuple(target.shape) == tuple(input.shape):
            hint = "this target has the input's shape; for class probabilities use F.cross_entropy, " \
                   "for class indices convert them with target.long()"
        raise DTypeError(op, f"expected class-index targets of an integer dtype (int64), got {target.dtype} "
                             f"targets of shape {fmt_shape(target.shape)} for input {input.dtype}"
                             f"{fmt_shape(input.shape)}", hint=hint)
    if input.ndim == 1:
        expected = ()
    else:
        expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != expected:
        if input.ndim >= 2 and target.ndim >= 1 and target.shape[0] != input.shape[0]:
            msg = (f"Expected input batch_size ({input.shape[0]}) to match target batch_size ({target.shape[0]}): "
                   f"input {fmt_shape(input.shape)}, target {fmt_shape(target.shape)}")
            hint = "the model's output and the labels must come from the same batch"
        else:
            msg = (f"expected a target of shape {fmt_shape(expected)} for an input of shape "
                   f"{fmt_shape(input.shape)}, got {fmt_shape(target.shape)}")
            hint = "targets hold one class index per sample (input [N, C] -> target [N])"
        raise ShapeError(op, msg, hint=hint)


def _check_weight(op, weight, num_classes):
    if weight is not None and tuple(weight.shape) != (num_classes,):
        raise ShapeError(op, f"weight tensor should be defined either for all {num_classes} classes or no "
                             f"classes but got weight tensor of shape: {fmt_shape(weight.shape)}",
                         hint="pass one weight per class")


def _class_terms(op, input, target, weight, ignore_index):
    """(one-hot rows [.., C] of the valid targets, per-sample weights [..] incl. the ignore mask)."""
    num_classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    _check_weight(op, weight, num_classes)
    # Ignored targets (typically -100) would be out of range for one_hot: map them to class 0,
    # then zero their weight.  Unconditional, because which targets are ignored is a value.
    valid = target != ignore_index
    safe = G.where(valid, target, 0)
    onehot = apply("one_hot", safe, num_classes=num_classes, dtype=input.dtype)
    w = valid.to(input.dtype)
    if weight is not None:
        w = w * G.matmul(onehot, weight.to(input.dtype))
    return onehot, w


def _weighted_reduce(loss, w, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        # torch divides by the total weight of the non-ignored targets (their count when unweighted)
        return loss.sum() / w.sum()
    return loss.sum() if reduction == "sum" else loss


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Mean of -input[i, target[i]] (log-probability inputs).   nll_loss(log_softmax(x, 1), y) -> 0-d"""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_class_target("nll_loss", input, target)
    onehot, w = _class_terms("nll_loss", input, target, weight, ignore_index)
    picked = (_class_dim_last(input) * onehot).sum(-1)
    return _weighted_reduce(-picked * w, w, reduction)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """log_softmax over dim 1, then nll_loss; float targets of the input's shape are class probabilities.

        cross_entropy(logits[64,10], labels[64]) -> 0-d tensor
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = 0 if input.ndim == 1 else 1
    if input.ndim == 0:
        raise ShapeError("cross_entropy", "expected an input of shape [C] or [N, C, ...], got a 0-d tensor")
    if target.dtype.kind == "f" and tuple(target.shape) == tuple(input.shape):
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing, class_dim)
    _check_class_target("cross_entropy", input, target)
    logp = G.log_softmax(input, class_dim)
    num_classes = input.shape[class_dim]
    onehot, w = _class_terms("cross_entropy", input, target, weight, ignore_index)
    logp_last = _class_dim_last(logp)
    nll = -(logp_last * onehot).sum(-1)
    loss = _weighted_reduce(nll * w, w, reduction)
    if label_smoothing == 0.0:
        return loss
    # torch: (1 - eps) * nll + eps / C * smooth, where smooth = -sum_c w_c * logp_c over valid targets,
    # normalised by the same total weight as the nll term in mean reduction.
    per_class = logp_last if weight is None else logp_last * weight.to(input.dtype)
    smooth = -per_class.sum(-1) * (target != ignore_index).to(input.dtype)
    smooth = _weighted_reduce(smooth, w, reduction)
    return loss * (1.0 - label_smoothing) + smooth * (label_smoothing / num_classes)


def _cross_entropy_probs(input, target, weight, reduction, label_smoothing, class_dim):
    num_classes = input.shape[class_dim]
    _check_weight("cross_entropy", weight, num_classes)
    logp = G.log_softmax(input, class_dim)
    if label_smoothing > 0.0:
        target = target * (1.0 - label_smoothing) + label_smoothing / num_classes
    terms = logp * target
    if weight is not None:
        terms = terms * weight.to(input.dtype).reshape((-1,) + (1,) * (input.ndim - class_dim - 1))
    loss = -terms.sum(class_dim)
    _check_reduction(reduction)
    if reduction == "mean":
        # torch averages over the batch (and spatial) elements, not over the weights
        return loss.sum() / float(max(input.numel() // num_classes, 1))
    return loss.sum() if reduction == "sum" else loss


def _check_same_shape(op, input, target):
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size "
                      f"({input.shape}). This will likely lead to incorrect results due to broadcasting. "
                      f"Please ensure they have the same size.", stacklevel=3)
    if target.dtype != input.dtype:
        if target.dtype.kind != "f" and input.dtype.kind != "f":
            raise DTypeError(op, f"expected floating-point input and target, got {input.dtype} and {target.dtype}",
                             hint="convert with .float()")
        target = target.to(input.dtype)
    return target


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error.   mse_loss([1., 2.], [1., 4.]) -> 2."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    target = _check_same_shape("mse_loss", input, target)
    d = input - target
    loss = d * d
    return _reduce(loss if weight is None else loss * weight, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error.   l1_loss([1., 2.], [1., 4.]) -> 1."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    target = _check_same_shape("l1_loss", input, target)
    loss = G.abs(input - target)
    return _reduce(loss if weight is None else loss * weight, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Quadratic below beta, linear above.   smooth_l1_loss([0.], [2.]) -> 1.5"""
    reduction = legacy_reduction(size_average, reduce, reduction)
    target = _check_same_shape("smooth_l1_loss", input, target)
    d = G.abs(input - target)
    if beta == 0.0:
        return _reduce(d, reduction)
    return _reduce(G.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """delta * smooth_l1 with beta=delta.   huber_loss([0.], [2.]) -> 1.5"""
    target = _check_same_shape("huber_loss", input, target)
    d = G.abs(input - target)
    loss = G.where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-(y log p + (1 - y) log(1 - p)), logs clamped at -100 like torch.   bce([0.5], [1.]) -> 0.6931"""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError("binary_cross_entropy", f"Using a target size ({fmt_shape(target.shape)}) that is different "
                                                 f"to the input size ({fmt_shape(input.shape)}) is not supported",
                         hint="give one target probability per input element")
    target = target.to(input.dtype)
    loss = -(target * G.maximum(G.log(input), -100.0) + (1.0 - target) * G.maximum(G.log(1.0 - input), -100.0))
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """bce(sigmoid(x), y) computed stably from logits.   bce_with_logits([0.], [1.]) -> 0.6931"""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError("binary_cross_entropy_with_logits",
                         f"Target size ({fmt_shape(target.shape)}) must be the same as input size "
                         f"({fmt_shape(input.shape)})", hint="give one target per logit")
    target = target.to(input.dtype)
    # torch's formula: shifting by m = max(-x, 0) keeps exp in range, and maximum's gradient at x = 0
    # (ties go to -x, unlike relu's or abs's zero there) gives the exact sigmoid(0) - y.
    m = G.maximum(-input, 0.0)
    softplus_neg = G.log(G.exp(-m) + G.exp(-input - m)) + m      # log(1 + exp(-x))
    if pos_weight is not None:
        softplus_neg = softplus_neg * ((pos_weight - 1.0) * target + 1.0)
    loss = (1.0 - target) * input + softplus_neg
    return _reduce(loss if weight is None else loss * weight, reduction)


__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "legacy_reduction"]
