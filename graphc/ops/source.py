"""Ops that make values from attributes (constants, fills), counter-based random bits, one_hot,
stop_gradient and the autodiff pass's gradient request.

    full(shape=(2,), value=0.0, dtype=float32) -> [0., 0.]
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from .registry import AUTODIFF, ELEMENTWISE, SOURCE, defop, fmt_shape


def _infer_const(value):
    value = np.asarray(value)
    return tuple(value.shape), value.dtype


@defop("const", kind=SOURCE, infer=_infer_const, attrs=("value",))
class Const:
    """A literal array held in the graph.   const(value=array([1., 2.])) -> [1., 2.]"""

    @staticmethod
    def impl(value):
        return np.array(value)   # a copy: values in the graph are never written through


def _infer_full(shape, value, dtype):
    return tuple(shape), np.dtype(dtype)


@defop("full", kind=SOURCE, infer=_infer_full, attrs=("shape", "value", "dtype"))
class Full:
    """An array of one repeated value.   full(shape=(2, 2), value=1.0, dtype=float32) -> [[1., 1.], [1., 1.]]"""
    fuse = "loop"   # a literal in the loop nest
    @staticmethod
    def scalar(c, args, out, shape, value, dtype):
        return c.literal(value, out)

    @staticmethod
    def impl(shape, value, dtype):
        return np.full(shape, value, dtype=dtype)


@defop("stop_gradient", kind=ELEMENTWISE, infer=lambda x: (tuple(x.shape), x.dtype), nondiff=True)
class StopGradient:
    """Identity whose gradient is zero: Tensor.detach() and values computed under no_grad.   stop_gradient([1.]) -> [1.]"""
    scalar = "{0}"

    @staticmethod
    def impl(x):
        return x


def _infer_one_hot(labels, num_classes, dtype):
    if labels.dtype.kind not in "iu":
        raise DTypeError("one_hot", f"class labels must be an integer tensor, got {labels.dtype}",
                         hint="labels are class indices: convert with .long()")
    return tuple(labels.shape) + (num_classes,), np.dtype(dtype)


@defop("one_hot", kind=ELEMENTWISE, infer=_infer_one_hot, nondiff=True, attrs=("num_classes", "dtype"))
class OneHot:
    """Class indices to indicator rows.   one_hot([2, 0], num_classes=3) -> [[0, 0, 1], [1, 0, 0]]"""

    @staticmethod
    def impl(labels, num_classes, dtype):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            bad = labels[(labels < 0) | (labels >= num_classes)].ravel()[0]
            raise ShapeError("one_hot", f"class index {int(bad)} is out of range for {num_classes} classes",
                             hint=f"targets must lie in 0 .. {num_classes - 1}")
        return (labels[..., None] == np.arange(num_classes)).astype(dtype)


# --- counter-based random numbers --------------------------------------------------------------
# One function of (seed, position) that eager mode, the interpreter and every backend compute the
# same way: splitmix64's finaliser over seed and counter.  Stateless, so a compiled step and the
# eager step draw identical dropout masks for the same seed and offset.

MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
GOLDEN = 0x9E3779B97F4A7C15


def uniform_bits(seed, counters):
    """The uniform float in [0, 1) at each counter, for this seed.   uniform_bits(0, arange(2)) -> 2 floats"""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) * np.uint64(GOLDEN)) ^ counters.astype(np.uint64)
        z = z + np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _infer_uniform(seed, offset, shape):
    for name, t in (("seed", seed), ("offset", offset)):
        if tuple(t.shape) != () or t.dtype.kind not in "iu":
            raise DTypeError("uniform", f"{name} must be a 0-d integer tensor, got {t.dtype}{fmt_shape(t.shape)}")
    return tuple(shape), np.dtype(np.float32)


@defop("uniform", kind=SOURCE, infer=_infer_uniform, nondiff=True, attrs=("shape",))
class Uniform:
    """Counter-based uniform floats in [0, 1): element i is f(seed, offset + i).   uniform(0, 0, shape=(2,)) -> 2 floats"""
    fuse = "loop"   # element i is f(seed, offset + i): computed inside the loop nest

    @staticmethod
    def impl(seed, offset, shape):
        n = int(np.prod(shape))
        counters = np.arange(n, dtype=np.uint64) + np.uint64(int(offset))
        return uniform_bits(int(seed), counters).reshape(shape)


def _infer_grad(loss, wrt, *seed):
    if seed and tuple(seed[0].shape) != tuple(loss.shape):
        raise ShapeError("grad", f"the gradient seed has shape {fmt_shape(seed[0].shape)} but the output has "
                                 f"{fmt_shape(loss.shape)}")
    return tuple(wrt.shape), wrt.dtype


@defop("grad", kind=AUTODIFF, infer=_infer_grad)
class Grad:
    """d(loss)/d(wrt), optionally seeded; the autodiff pass replaces it by the backward subgraph.   grad(sum(x * x), x) -> 2 * x"""
