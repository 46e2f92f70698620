"""conv2d and max-pool primitives (NCHW, groups=1), forward and their adjoints.

    conv2d(x[100,32,26,26], w[64,32,3,3], stride=(1,1), padding=(0,0)) -> [100,64,24,24]

max_pool2d is three primitives: the argmax indices (first maximum of each window, so ties are
right), a gather by those indices, and its adjoint scatter.  Keeping the indices is what makes
the backward correct on ties, where a mask `x == pooled` would send gradient to every tie.
"""
from __future__ import annotations

from ..errors import DTypeError, ShapeError
from .registry import CONV, MOVEMENT, defop, fmt_shape, fn, require_float


def _kernels(name):
    # The eager array kernels live in one separate module (numba there, never in the op table).
    from ..eager_kernels import conv, pool
    return getattr(conv, name, None) or getattr(pool, name)


def conv_out_hw(hw, kernel_hw, stride, padding):
    return tuple((hw[i] + 2 * padding[i] - kernel_hw[i]) // stride[i] + 1 for i in range(2))


def _infer_conv2d(x, w, stride, padding):
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ShapeError("conv2d", f"expected input [N,C,H,W] and weight [O,C,KH,KW], got "
                                   f"{fmt_shape(x.shape)} and {fmt_shape(w.shape)}",
                         hint="add a batch dimension with x.unsqueeze(0) for a single image")
    if x.dtype != w.dtype:
        raise DTypeError("conv2d", f"input is {x.dtype} but weight is {w.dtype}", hint="convert the input with .float()")
    require_float("conv2d", x)
    if x.shape[1] != w.shape[1]:
        raise ShapeError("conv2d", f"input has {x.shape[1]} channels but the weight expects {w.shape[1]}: "
                                   f"input {fmt_shape(x.shape)}, weight {fmt_shape(w.shape)}",
                         hint="in_channels of the Conv2d must equal the input's dim 1")
    oh, ow = conv_out_hw(x.shape[2:], w.shape[2:], stride, padding)
    if oh <= 0 or ow <= 0:
        raise ShapeError("conv2d", f"kernel {fmt_shape(w.shape[2:])} is larger than the padded input "
                                   f"{fmt_shape(x.shape[2:])} (padding {tuple(padding)})",
                         hint="use a smaller kernel or more padding")
    return (x.shape[0], w.shape[0], oh, ow), x.dtype


@defop("conv2d", kind=CONV, infer=_infer_conv2d, attrs=("stride", "padding"))
class Conv2d:
    """2-D cross-correlation, no bias.   conv2d(x[1,1,3,3] of ones, w[1,1,2,2] of ones) -> 4s, shape [1,1,2,2]"""

    @staticmethod
    def impl(x, w, stride, padding):
        return _kernels("conv2d")(x, w, stride, padding)

    def vjp(g, ans, x, w, stride, padding, needs=(True, True)):
        gx = fn.apply_op("conv2d_grad_input", g, w, input_hw=tuple(x.shape[2:]), stride=stride,
                         padding=padding) if needs[0] else None
        gw = fn.apply_op("conv2d_grad_weight", g, x, kernel_hw=tuple(w.shape[2:]), stride=stride,
                         padding=padding) if needs[1] else None
        return gx, gw


def _infer_grad_input(gy, w, input_hw, stride, padding):
    return (gy.shape[0], w.shape[1]) + tuple(input_hw), gy.dtype


@defop("conv2d_grad_input", kind=CONV, infer=_infer_grad_input, attrs=("input_hw", "stride", "padding"))
class Conv2dGradInput:
    """conv2d's adjoint in its input (a transposed convolution).   shape: gy[N,O,OH,OW], w[O,C,KH,KW] -> [N,C,H,W]"""

    @staticmethod
    def impl(gy, w, input_hw, stride, padding):
        return _kernels("conv2d_grad_input")(gy, w, tuple(input_hw), stride, padding)

    def vjp(g, ans, gy, w, input_hw, stride, padding):
        # <g, convT(gy, w)> = <conv(g, w), gy> = <w, grad_weight(gy, g)>
        return (fn.apply_op("conv2d", g, w, stride=stride, padding=padding),
                fn.apply_op("conv2d_grad_weight", gy, g, kernel_hw=tuple(w.shape[2:]), stride=stride, padding=padding))


def _infer_grad_weight(gy, x, kernel_hw, stride, padding):
    return (gy.shape[1], x.shape[1]) + tuple(kernel_hw), gy.dtype


@defop("conv2d_grad_weight", kind=CONV, infer=_infer_grad_weight, attrs=("kernel_hw", "stride", "padding"))
class Conv2dGradWeight:
    """conv2d's adjoint in its weight.   shape: gy[N,O,OH,OW], x[N,C,H,W] -> [O,C,KH,KW]"""

    @staticmethod
    def impl(gy, x, kernel_hw, stride, padding):
        return _kernels("conv2d_grad_weight")(gy, x, tuple(kernel_hw), stride, padding)

    def vjp(g, ans, gy, x, kernel_hw, stride, padding):
        # <g, gw(gy, x)> = <conv(x, g), gy> = <x, convT(gy, g)>
        return (fn.apply_op("conv2d", x, g, stride=stride, padding=padding),
                fn.apply_op("conv2d_grad_input", gy, g, input_hw=tuple(x.shape[2:]), stride=stride, padding=padding))


def _infer_pool_argmax(x, kernel, stride, padding):
    if len(x.shape) != 4:
        raise ShapeError("max_pool2d", f"expected input [N,C,H,W], got {fmt_shape(x.shape)}",
                         hint="add a batch dimension with x.unsqueeze(0)")
    if any(2 * padding[i] > kernel[i] for i in range(2)):
        raise ShapeError("max_pool2d", f"padding {tuple(padding)} must be at most half the kernel {tuple(kernel)}")
    oh, ow = conv_out_hw(x.shape[2:], kernel, stride, padding)
    if oh <= 0 or ow <= 0:
        raise ShapeError("max_pool2d", f"kernel {tuple(kernel)} is larger than the input {fmt_shape(x.shape[2:])}")
    import numpy as np
    return (x.shape[0], x.shape[1], oh, ow), np.dtype(np.int64)


@defop("maxpool2d_argmax", kind=CONV, infer=_infer_pool_argmax, nondiff=True, attrs=("kernel", "stride", "padding"))
class MaxPool2dArgmax:
    """Flat (h*W+w) index of each window's first maximum.   x[1,1,2,2]=[[1,3],[3,2]], kernel 2 -> [[[[1]]]]"""

    @staticmethod
    def impl(x, kernel, stride, padding):
        return _kernels("maxpool2d_argmax")(x, kernel, stride, padding)


def _infer_gather(x, idx):
    return tuple(idx.shape), x.dtype


@defop("maxpool2d_gather", kind=MOVEMENT, infer=_infer_gather)
class MaxPool2dGather:
    """Pick each window's value by its argmax index.   gather(x, maxpool2d_argmax(x)) -> max_pool2d(x)"""

    @staticmethod
    def impl(x, idx):
        return _kernels("maxpool2d_gather")(x, idx)

    def vjp(g, ans, x, idx):
        return (fn.apply_op("maxpool2d_scatter", g, idx, input_hw=tuple(x.shape[2:])), None)


def _infer_scatter(gy, idx, input_hw):
    return tuple(gy.shape[:2]) + tuple(input_hw), gy.dtype


@defop("maxpool2d_scatter", kind=MOVEMENT, infer=_infer_scatter, attrs=("input_hw",))
class MaxPool2dScatter:
    """Add each window's gradient into its argmax position (the gather's adjoint).   scatter([[[[5.]]]], [[[[1]]]], input_hw=(2, 2)) -> [[[[0., 5.], [0., 0.]]]]"""

    @staticmethod
    def impl(gy, idx, input_hw):
        return _kernels("maxpool2d_scatter")(gy, idx, tuple(input_hw))

    def vjp(g, ans, gy, idx, input_hw):
        return (fn.apply_op("maxpool2d_gather", g, idx), None)
