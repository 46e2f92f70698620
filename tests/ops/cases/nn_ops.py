"""Op table: softmax, log_softmax and cross_entropy, conv2d and max-pool (primitives and nn.functional).

    C("conv2d", conv2d, np_conv2d, [(2, 3, 5, 5), (4, 3, 3, 3)], torch=t_conv2d(), atol=1e-5)
"""
from __future__ import annotations

import numpy as np

from graphc.functional import apply_op

from .core import C, _tF, _torch, lib, nnf, one_hot
from .references import (np_cnn_block, np_conv2d, np_conv2d_grad_input, np_conv2d_grad_weight, np_cross_entropy,
                         np_log_softmax, np_pool_argmax, np_pool_gather, np_pool_scatter, np_softmax)


# --- graphc-only ops and their torch counterparts -------------------------------------------------

def conv2d(x, w, stride=(1, 1), padding=(0, 0)):
    return apply_op("conv2d", x, w, stride=stride, padding=padding)


def t_conv2d(stride=(1, 1), padding=(0, 0)):
    return lambda x, w: _tF().conv2d(x, w, stride=stride, padding=padding)


def pool_argmax(x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return apply_op("maxpool2d_argmax", x, kernel=kernel, stride=stride, padding=padding)


def max_pool(x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return apply_op("maxpool2d_gather", x, pool_argmax(x, kernel, stride, padding))


def pool_scatter(gy, x, kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return apply_op("maxpool2d_scatter", gy, pool_argmax(x, kernel, stride, padding), input_hw=tuple(x.shape[2:]))


def t_pool_argmax(kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return lambda x: _tF().max_pool2d(x, kernel, stride, padding, return_indices=True)[1]


def t_max_pool(kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    return lambda x: _tF().max_pool2d(x, kernel, stride, padding)


def t_pool_scatter(kernel=(2, 2), stride=(2, 2), padding=(0, 0)):
    def scatter(gy, x):     # max_pool2d's input gradient for output gradient gy, itself differentiable in gy
        x = x.detach().requires_grad_(True)
        y = _tF().max_pool2d(x, kernel, stride, padding)
        return _torch().autograd.grad(y, x, gy, create_graph=True)[0]
    return scatter


def cross_entropy(x, y):
    """The composite nn.functional.cross_entropy is built from: -mean(sum(log_softmax * one_hot))."""
    return -(x.log_softmax(1) * one_hot(y, x.shape[1])).sum(1).mean()


SOFTMAX = [
    # softmax, log_softmax, cross_entropy
    C("softmax", lambda x: x.softmax(-1), lambda x: np_softmax(x, -1), [(3, 5)]),
    C("softmax_fn_dim0", lambda x: lib(x).softmax(x, 0), lambda x: np_softmax(x, 0), [(2, 3, 4)]),
    C("softmax_wide", lambda x: x.softmax(1), lambda x: np_softmax(x, 1), [(2, 4)], "wide"),
    C("softmax_0d", lambda x: x.softmax(0), lambda x: np.ones_like(x), [()]),
    C("log_softmax", lambda x: x.log_softmax(1), lambda x: np_log_softmax(x, 1), [(3, 5)]),
    C("log_softmax_fn_wide", lambda x: lib(x).log_softmax(x, -1), lambda x: np_log_softmax(x, -1), [(2, 4)], "wide",
      atol=1e-4),
    C("cross_entropy", cross_entropy, np_cross_entropy, [(4, 5), (4,)], ("real", ("label", 5)),
      torch=lambda x, y: _tF().cross_entropy(x, y)),
]

CONV_POOL = [
    # conv2d and max-pool (tiny: x[2,3,5,5])
    C("conv2d", conv2d, np_conv2d, [(2, 3, 5, 5), (4, 3, 3, 3)], torch=t_conv2d(), atol=1e-5),
    C("conv2d_stride_pad", lambda x, w: conv2d(x, w, (2, 2), (1, 1)), lambda x, w: np_conv2d(x, w, (2, 2), (1, 1)),
      [(2, 3, 5, 5), (2, 3, 3, 3)], torch=t_conv2d((2, 2), (1, 1)), atol=1e-5),
    C("conv2d_rect", lambda x, w: conv2d(x, w, (1, 2), (0, 1)), lambda x, w: np_conv2d(x, w, (1, 2), (0, 1)),
      [(1, 2, 4, 5), (3, 2, 2, 3)], torch=t_conv2d((1, 2), (0, 1)), atol=1e-5),
    C("conv2d_1x1", conv2d, np_conv2d, [(2, 3, 2, 2), (2, 3, 1, 1)], torch=t_conv2d()),
    C("conv2d_grad_input",
      lambda gy, w: apply_op("conv2d_grad_input", gy, w, input_hw=(5, 5), stride=(2, 2), padding=(1, 1)),
      lambda gy, w: np_conv2d_grad_input(gy, w, (5, 5), (2, 2), (1, 1)), [(2, 4, 3, 3), (4, 3, 3, 3)],
      torch=lambda gy, w: _torch().nn.grad.conv2d_input((2, 3, 5, 5), w, gy, (2, 2), (1, 1)), atol=1e-5),
    C("conv2d_grad_weight",
      lambda gy, x: apply_op("conv2d_grad_weight", gy, x, kernel_hw=(3, 3), stride=(1, 1), padding=(0, 0)),
      lambda gy, x: np_conv2d_grad_weight(gy, x, (3, 3), (1, 1), (0, 0)), [(2, 4, 3, 3), (2, 3, 5, 5)],
      torch=lambda gy, x: _torch().nn.grad.conv2d_weight(x, (4, 3, 3, 3), gy, (1, 1), (0, 0)), atol=1e-5),
    C("maxpool2d_argmax", pool_argmax, lambda x: np_pool_argmax(x, (2, 2), (2, 2), (0, 0)), [(2, 3, 5, 5)],
      "distinct", out="int64", torch=t_pool_argmax()),
    C("maxpool2d_argmax_overlap_pad", lambda x: pool_argmax(x, (3, 3), (2, 2), (1, 1)),
      lambda x: np_pool_argmax(x, (3, 3), (2, 2), (1, 1)), [(1, 2, 5, 5)], "distinct", out="int64",
      torch=t_pool_argmax((3, 3), (2, 2), (1, 1))),
    C("maxpool2d_argmax_ties", pool_argmax, lambda x: np_pool_argmax(x, (2, 2), (2, 2), (0, 0)), [(1, 2, 4, 4)],
      "intfloat", out="int64", torch=t_pool_argmax()),
    C("max_pool2d", max_pool, lambda x: np_pool_gather(x, np_pool_argmax(x, (2, 2), (2, 2), (0, 0))),
      [(2, 3, 5, 5)], "distinct", torch=t_max_pool()),
    C("max_pool2d_overlap_pad", lambda x: max_pool(x, (3, 3), (2, 2), (1, 1)),
      lambda x: np_pool_gather(x, np_pool_argmax(x, (3, 3), (2, 2), (1, 1))), [(1, 2, 5, 5)], "distinct",
      torch=t_max_pool((3, 3), (2, 2), (1, 1))),
    C("maxpool2d_scatter", pool_scatter,
      lambda gy, x: np_pool_scatter(gy, np_pool_argmax(x, (2, 2), (2, 2), (0, 0)), (5, 5)),
      [(2, 3, 2, 2), (2, 3, 5, 5)], ("real", ("fixed", "distinct")), torch=t_pool_scatter()),
    C("maxpool2d_scatter_overlap", lambda gy, x: pool_scatter(gy, x, (3, 3), (2, 2), (1, 1)),
      lambda gy, x: np_pool_scatter(gy, np_pool_argmax(x, (3, 3), (2, 2), (1, 1)), (5, 5)),
      [(1, 2, 3, 3), (1, 2, 5, 5)], ("real", ("fixed", "distinct")), torch=t_pool_scatter((3, 3), (2, 2), (1, 1))),
    C("cnn_block", lambda x, w: max_pool(conv2d(x, w, padding=(1, 1)).relu()), np_cnn_block,
      [(1, 2, 4, 4), (3, 2, 3, 3)], "distinct", atol=1e-5,
      torch=lambda x, w: _tF().max_pool2d(_tF().conv2d(x, w, padding=1).relu(), 2)),
    C("F_conv2d_bias", lambda x, w, b: nnf(x).conv2d(x, w, b, stride=2, padding=1),
      lambda x, w, b: np_conv2d(x, w, (2, 2), (1, 1)) + b[:, None, None], [(2, 3, 5, 5), (4, 3, 3, 3), (4,)],
      atol=1e-5),
    C("F_max_pool2d", lambda x: nnf(x).max_pool2d(x, 2),
      lambda x: np_pool_gather(x, np_pool_argmax(x, (2, 2), (2, 2), (0, 0))), [(2, 3, 5, 5)], "distinct"),
    C("F_max_pool2d_indices", lambda x: nnf(x).max_pool2d(x, 3, 2, 1, return_indices=True)[1],
      lambda x: np_pool_argmax(x, (3, 3), (2, 2), (1, 1)), [(1, 2, 5, 5)], "distinct", out="int64"),
    C("F_cross_entropy", lambda x, y: nnf(x).cross_entropy(x, y), np_cross_entropy, [(4, 5), (4,)],
      ("real", ("label", 5))),
]
