"""Elementwise trigonometric primitives: sin and cos.

    sin([0., pi/2]) -> [0., 1.];  cos([0., pi]) -> [1., -1.]

Primitives because no composition of the others gives them; randn's Box-Muller transform needs
cos, so that normal noise comes from the same counter-based stream in eager and compiled code.
"""
from __future__ import annotations

import numpy as np

from .registry import ELEMENTWISE, defop, unary_float


@defop("sin", kind=ELEMENTWISE, infer=unary_float("sin"))
class Sin:
    """Elementwise sine.   sin([0., 1.5708]) -> [0., 1.]"""
    impl = staticmethod(np.sin)
    scalar = "math.sin({0})"

    def vjp(g, ans, x):
        return (g * x.cos(),)


@defop("cos", kind=ELEMENTWISE, infer=unary_float("cos"))
class Cos:
    """Elementwise cosine.   cos([0., 3.1416]) -> [1., -1.]"""
    impl = staticmethod(np.cos)
    scalar = "math.cos({0})"

    def vjp(g, ans, x):
        return (-(g * x.sin()),)
