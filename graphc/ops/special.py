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


def _float_test(name, ufunc, what, example):
    """isnan / isinf: a bool per element, numeric inputs of any dtype (ints and bools are never NaN or inf)."""
    def infer(x):
        if x.dtype.kind not in "biuf":
            raise DTypeError(name, f"expected a numeric tensor, got {x.dtype}")
        return tuple(x.shape), np.dtype(np.bool_)
    cls = type(name, (), {"__doc__": f"Elementwise x is {what}, a bool tensor.   {example}",
                          "impl": staticmethod(ufunc), "scalar": f"math.{name}({{0}})"})
    return defop(name, kind=ELEMENTWISE, infer=infer, nondiff=True)(cls)


ISNAN = _float_test("isnan", np.isnan, "NaN", "isnan([1., nan]) -> [False, True]")
ISINF = _float_test("isinf", np.isinf, "+inf or -inf", "isinf([1., -inf]) -> [False, True]")
