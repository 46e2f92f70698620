"""Elementwise primitives: one loop over (broadcast) elements, so any chain of them fuses.

    neg, exp, log, sqrt, abs, relu, sigmoid, tanh, pow_scalar, clamp, cast, sign,
    add, sub, mul, div, maximum, minimum, eq/ne/lt/le/gt/ge, logical_and/or/not, where

VJP rules receive graphc Tensors (eager values or IR tracers alike) and return gradients of the
*output* shape; the autograd driver sums them back over broadcast axes.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError
from .registry import (ELEMENTWISE, binary_bool, binary_same, broadcast_shapes, defop, fn, require_float,
                       same_dtype, unary_float, unary_same)



# --- unary --------------------------------------------------------------------------------------

def _infer_neg(x):
    if x.dtype == np.bool_:
        raise DTypeError("neg", "negation, the `-` operator, on a bool tensor is not supported",
                         hint="to invert a mask use ~mask or graphc.logical_not(mask)")
    return tuple(x.shape), x.dtype


@defop("neg", kind=ELEMENTWISE, infer=_infer_neg)
class Neg:
    """Elementwise -x.   neg([1., -2.]) -> [-1., 2.]"""
    impl = staticmethod(np.negative)
    scalar = "(-{0})"

    def vjp(g, ans, x):
        return (-g,)


@defop("exp", kind=ELEMENTWISE, infer=unary_float("exp"))
class Exp:
    """Elementwise e**x.   exp([0., 1.]) -> [1., 2.71828]"""
    impl = staticmethod(np.exp)
    scalar = "math.exp({0})"

    def vjp(g, ans, x):
        return (g * ans,)


@defop("log", kind=ELEMENTWISE, infer=unary_float("log"))
class Log:
    """Elementwise natural log.   log([1., e]) -> [0., 1.]"""
    impl = staticmethod(np.log)
    scalar = "math.log({0})"

    def vjp(g, ans, x):
        return (g / x,)


@defop("sqrt", kind=ELEMENTWISE, infer=unary_float("sqrt"))
class Sqrt:
    """Elementwise square root.   sqrt([4., 9.]) -> [2., 3.]"""
    impl = staticmethod(np.sqrt)
    scalar = "math.sqrt({0})"

    def vjp(g, ans, x):
        return (g / (ans * 2.0),)


@defop("abs", kind=ELEMENTWISE, infer=unary_same("abs"))
class Abs:
    """Elementwise |x|.   abs([-2., 3.]) -> [2., 3.]"""
    impl = staticmethod(np.abs)
    scalar = "abs({0})"

    def vjp(g, ans, x):
        return (g * fn.sign(x),)


@defop("sign", kind=ELEMENTWISE, infer=unary_same("sign"), nondiff=True)
class Sign:
    """Elementwise sign, 0 at 0.   sign([-2., 0., 3.]) -> [-1., 0., 1.]"""
    impl = staticmethod(np.sign)
    scalar = "(1.0 if {0} > 0 else (-1.0 if {0} < 0 else ({0} * 0.0 if {0} == 0 else {0})))"   # NaN stays NaN


@defop("relu", kind=ELEMENTWISE, infer=unary_same("relu"))
class Relu:
    """Elementwise max(x, 0).   relu([-1., 2.]) -> [0., 2.]"""
    scalar = "({0} if not ({0} <= 0) else 0.0)"   # NaN stays NaN, as in numpy

    @staticmethod
    def impl(x):
        return np.maximum(x, 0, dtype=x.dtype)

    def vjp(g, ans, x):
        # NOTE: the gradient at exactly 0 is 0, as in PyTorch; a mask on ans > 0 gives just that.
        return (fn.where(ans > 0, g, 0.0),)


@defop("sigmoid", kind=ELEMENTWISE, infer=unary_float("sigmoid"))
class Sigmoid:
    """Elementwise 1 / (1 + e**-x), a primitive for stability.   sigmoid([0.]) -> [0.5]"""
    scalar = "(1.0 / (1.0 + math.exp(-{0})))"

    @staticmethod
    def impl(x):
        # Split by sign so that exp never overflows.
        out = np.empty_like(x)
        pos = x >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
        e = np.exp(x[~pos])
        out[~pos] = e / (1.0 + e)
        return out

    def vjp(g, ans, x):
        return (g * ans * (1.0 - ans),)


@defop("tanh", kind=ELEMENTWISE, infer=unary_float("tanh"))
class Tanh:
    """Elementwise tanh.   tanh([0.]) -> [0.]"""
    impl = staticmethod(np.tanh)
    scalar = "math.tanh({0})"

    def vjp(g, ans, x):
        return (g * (1.0 - ans * ans),)


@defop("pow_scalar", kind=ELEMENTWISE, infer=unary_float("pow_scalar"), attrs=("exponent",))
class PowScalar:
    """Elementwise x ** exponent for a constant exponent.   pow_scalar([2., 3.], exponent=2) -> [4., 9.]"""
    @staticmethod
    def scalar(c, args, out, exponent):
        """Small integer powers as products (exact, and far faster than pow)."""
        if float(exponent).is_integer() and abs(exponent) <= 4:
            e = int(exponent)
            if e == 0:
                return "1.0"
            body = " * ".join([args[0]] * abs(e))
            return f"({body})" if e > 0 else f"(1.0 / ({body}))"
        return f"({args[0]} ** {float(exponent)!r})"

    @staticmethod
    def impl(x, exponent):
        return np.power(x, x.dtype.type(exponent))

    def vjp(g, ans, x, exponent):
        if exponent == 2:
            return (g * x * 2.0,)
        return (g * fn.pow(x, exponent - 1) * float(exponent),)


@defop("clamp", kind=ELEMENTWISE, infer=unary_same("clamp"), attrs=("min", "max"))
class Clamp:
    """Elementwise clip to [min, max] (either may be None).   clamp([-1., 5.], min=0., max=2.) -> [0., 2.]"""
    @staticmethod
    def scalar(c, args, out, min=None, max=None):
        """Either bound may be None; a NaN passes through (compares false), as in numpy.clip."""
        text = args[0]
        if max is not None:
            text = f"({c.literal(max, out)} if {text} > {c.literal(max, out)} else {text})"
        if min is not None:
            text = f"({c.literal(min, out)} if {args[0]} < {c.literal(min, out)} else {text})"
        return text

    @staticmethod
    def impl(x, min=None, max=None):
        return np.clip(x, min, max).astype(x.dtype, copy=False)

    def vjp(g, ans, x, min=None, max=None):
        inside = None
        if min is not None:
            inside = x >= min
        if max is not None:
            upper = x <= max
            inside = upper if inside is None else fn.logical_and(inside, upper)
        return (g if inside is None else fn.where(inside, g, 0.0),)


def _infer_cast(x, dtype):
    return tuple(x.shape), np.dtype(dtype)


@defop("cast", kind=ELEMENTWISE, infer=_infer_cast, attrs=("dtype",))
class Cast:
    """Elementwise dtype conversion.   cast([1.7], dtype=int64) -> [1]"""
    @staticmethod
    def scalar(c, args, out, dtype):
        return f"({args[0]} != 0)" if np.dtype(dtype).kind == "b" else c.cast(args[0], dtype)

    @staticmethod
    def impl(x, dtype):
        return x.astype(dtype)

    def vjp(g, ans, x, dtype):
        if x.dtype.kind != "f":
            return (None,)
        return (g.to(x.dtype),)


@defop("logical_not", kind=ELEMENTWISE, infer=unary_same("logical_not"), nondiff=True)
class LogicalNot:
    """Elementwise not.   logical_not([True, False]) -> [False, True]"""
    impl = staticmethod(np.logical_not)
    scalar = "(not {0})"


# --- binary, with broadcasting ---------------------------------------------------------------

@defop("add", kind=ELEMENTWISE, infer=binary_same("add"))
class Add:
    """a + b with broadcasting.   add([1., 2.], [10.]) -> [11., 12.]"""
    impl = staticmethod(np.add)
    scalar = "({0} + {1})"

    def vjp(g, ans, a, b):
        return (g, g)


# NOTE: sub is a primitive, not add-of-neg: optimizer updates and log_softmax use it on every
# step, and eager mode would pay a second full pass over the data for the neg.
@defop("sub", kind=ELEMENTWISE, infer=binary_same("sub"))
class Sub:
    """a - b with broadcasting.   sub([5., 7.], [1.]) -> [4., 6.]"""
    impl = staticmethod(np.subtract)
    scalar = "({0} - {1})"

    def vjp(g, ans, a, b):
        return (g, -g)


@defop("mul", kind=ELEMENTWISE, infer=binary_same("mul"))
class Mul:
    """a * b with broadcasting.   mul([1., 2.], [3.]) -> [3., 6.]"""
    impl = staticmethod(np.multiply)
    scalar = "({0} * {1})"

    def vjp(g, ans, a, b):
        return (g * b, g * a)


def _infer_div(a, b):
    shape, dtype = binary_same("div")(a, b)
    require_float("div", a)
    return shape, dtype


@defop("div", kind=ELEMENTWISE, infer=_infer_div)
class Div:
    """a / b with broadcasting (true division).   div([3., 6.], [3.]) -> [1., 2.]"""
    impl = staticmethod(np.divide)
    scalar = "({0} / {1})"

    def vjp(g, ans, a, b):
        return (g / b, -g * ans / b)


@defop("maximum", kind=ELEMENTWISE, infer=binary_same("maximum"))
class Maximum:
    """Elementwise max of a and b.   maximum([1., 5.], [3.]) -> [3., 5.]"""
    impl = staticmethod(np.maximum)
    scalar = "({0} if ({0} >= {1} or {0} != {0}) else {1})"   # a NaN wins, as in numpy

    def vjp(g, ans, a, b):
        # Ties send the gradient to a, like numpy's argmax would pick the first.
        a_wins = a >= b
        return (fn.where(a_wins, g, 0.0), fn.where(a_wins, 0.0, g))


@defop("minimum", kind=ELEMENTWISE, infer=binary_same("minimum"))
class Minimum:
    """Elementwise min of a and b.   minimum([1., 5.], [3.]) -> [1., 3.]"""
    impl = staticmethod(np.minimum)
    scalar = "({0} if ({0} <= {1} or {0} != {0}) else {1})"   # a NaN wins, as in numpy

    def vjp(g, ans, a, b):
        a_wins = a <= b
        return (fn.where(a_wins, g, 0.0), fn.where(a_wins, 0.0, g))


def _comparison(name, ufunc, symbol):
    cls = type(name.capitalize(), (), {
        "__doc__": f"Elementwise a {symbol} b, a bool tensor.   {name}([1., 2.], [2.]) -> "
                   f"{list(ufunc(np.array([1., 2.]), np.array([2.])))}",
        "impl": staticmethod(ufunc),
        "scalar": "({0} %s {1})" % symbol,
    })
    return defop(name, kind=ELEMENTWISE, infer=binary_bool(name), nondiff=True)(cls)


EQ = _comparison("eq", np.equal, "==")
NE = _comparison("ne", np.not_equal, "!=")
LT = _comparison("lt", np.less, "<")
LE = _comparison("le", np.less_equal, "<=")
GT = _comparison("gt", np.greater, ">")
GE = _comparison("ge", np.greater_equal, ">=")


@defop("logical_and", kind=ELEMENTWISE, infer=binary_bool("logical_and"), nondiff=True)
class LogicalAnd:
    """Elementwise and of two bool tensors.   logical_and([True, True], [False, True]) -> [False, True]"""
    impl = staticmethod(np.logical_and)
    scalar = "({0} and {1})"


@defop("logical_or", kind=ELEMENTWISE, infer=binary_bool("logical_or"), nondiff=True)
class LogicalOr:
    """Elementwise or of two bool tensors.   logical_or([True, False], [False, False]) -> [True, False]"""
    impl = staticmethod(np.logical_or)
    scalar = "({0} or {1})"


def _infer_where(cond, a, b):
    if cond.dtype != np.bool_:
        raise DTypeError("where", f"condition must be a bool tensor, got {cond.dtype}",
                         hint="build the condition with a comparison such as x > 0")
    dtype = same_dtype("where", a, b)
    return broadcast_shapes("where", tuple(cond.shape), tuple(a.shape), tuple(b.shape)), dtype


@defop("where", kind=ELEMENTWISE, infer=_infer_where)
class Where:
    """Elementwise cond ? a : b.   where([True, False], [1., 2.], [9.]) -> [1., 9.]"""
    scalar = "({1} if {0} else {2})"

    @staticmethod
    def impl(cond, a, b):
        from ..eager_kernels.select import where   # a flat numba loop in the common cases
        return where(cond, a, b)

    def vjp(g, ans, cond, a, b):
        return (None, fn.where(cond, g, 0.0), fn.where(cond, 0.0, g))
