"""Elementwise special functions and float tests: erf, isnan, isinf.

    erf([0., 1.]) -> [0., 0.8427];  isnan([1., nan]) -> [False, True]

Primitives, not composites: erf has no closed form in the other primitives (GELU needs it
exact), and isnan/isinf are one comparison each, which `x != x` would spell only for NaN.
Each has a scalar template (numba's math module has erf, isnan, isinf on CPU and CUDA), so
they fuse into elementwise kernels.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..errors import DTypeError
from .registry import ELEMENTWISE, defop, unary_float

TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@defop("erf", kind=ELEMENTWISE, infer=unary_float("erf"))
class Erf:
    """Elementwise Gauss error function.   erf([0., 1.]) -> [0., 0.8427]"""
    scalar = "math.erf({0})"

    @staticmethod
    def impl(x):
        return special.erf(x).astype(x.dtype, copy=False)

    def vjp(g, ans, x):
        return (g * (-(x * x)).exp() * TWO_OVER_SQRT_PI,)


def _float_test(op):
    def infer(x):
        if x.dtype.kind not in "biuf":
            raise DTypeError(op, f"expected a numeric tensor, got {x.dtype}")
        return tuple(x.shape), np.dtype(np.bool_)
    return infer


@defop("isnan", kind=ELEMENTWISE, infer=_float_test("isnan"), nondiff=True)
class IsNan:
    """Elementwise x is NaN, a bool tensor.   isnan([1., nan]) -> [False, True]"""
    impl = staticmethod(np.isnan)
    scalar = "math.isnan({0})"


@defop("isinf", kind=ELEMENTWISE, infer=_float_test("isinf"), nondiff=True)
class IsInf:
    """Elementwise x is +inf or -inf, a bool tensor.   isinf([1., -inf]) -> [False, True]"""
    impl = staticmethod(np.isinf)
    scalar = "math.isinf({0})"
