"""Gradient parity: every differentiable case against float64 central differences
(graphc.autograd.gradcheck), and every input's gradient in the input's own shape and dtype.

    gradcheck(lambda a, b: a * b, (a[3,1], b[4,])) -> True;  a.grad.shape == (3, 1)
"""
import numpy as np
import pytest

import graphc
from graphc.autograd import gradcheck
from graphc.functional import apply_op

from .cases import CASES, params

DIFFERENTIABLE = [c for c in CASES if c.grad]


def with_float_args(case, arrays):
    """fn over the case's float inputs only; ints and bools (labels, masks) are held fixed."""
    fixed = [graphc.tensor(a) for a in arrays]
    slots = case.float_inputs()

    def fn(*floats):
        args = list(fixed)
        for i, t in zip(slots, floats):
            args[i] = t
        return case.fn(*args)
    return fn, [graphc.tensor(arrays[i], requires_grad=True) for i in slots]


@pytest.mark.parametrize("case", params(DIFFERENTIABLE, "gradcheck"))
def test_gradcheck_float64(case):
    fn, floats = with_float_args(case, case.inputs(np.float64))
    assert gradcheck(fn, floats)


@pytest.mark.parametrize("case", params(DIFFERENTIABLE, "grad_shape"))
def test_grad_has_input_shape_and_dtype(case):
    """A broadcast (or 0-d) input gets its gradient summed back to its own shape, in float32."""
    fn, floats = with_float_args(case, case.inputs(np.float32))
    out = fn(*floats)
    assert out.requires_grad, f"{case.name}: the result of a differentiable case does not require grad"
    seed = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32)
    out.backward(graphc.tensor(seed))
    for x in floats:
        assert x.grad is not None, f"{case.name}: no gradient reached an input of shape {tuple(x.shape)}"
        assert tuple(x.grad.shape) == tuple(x.shape), \
            f"{case.name}: grad {tuple(x.grad.shape)} for input {tuple(x.shape)}"
        assert x.grad.dtype == np.float32, f"{case.name}: grad dtype {x.grad.dtype}"
        assert x.grad.is_leaf and not x.grad.requires_grad


def test_gradcheck_detects_a_wrong_gradient():
    """The checker itself fails on a wrong VJP: detach() hides half of x * x."""
    x = graphc.tensor([0.5, -1.0, 2.0], dtype=np.float64, requires_grad=True)
    assert not gradcheck(lambda x: x * x.detach(), (x,), raise_exception=False)
    with pytest.raises(graphc.GradError, match="gradcheck: analytic and numerical gradients differ"):
        gradcheck(lambda x: x * x.detach(), (x,))


# --- broadcasting: the gradient of a broadcast input is the sum over the broadcast axes -------------

BROADCAST_PAIRS = [((3, 1), (4,)), ((), (2, 3)), ((2, 1, 3), (4, 1)), ((1,), (3, 1)), ((2, 3), ())]
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b, g: (g, g)),
    "sub": (lambda a, b: a - b, lambda a, b, g: (g, -g)),
    "mul": (lambda a, b: a * b, lambda a, b, g: (g * b, g * a)),
    "div": (lambda a, b: a / b, lambda a, b, g: (g / b, -g * a / b ** 2)),
    "maximum": (lambda a, b: graphc.maximum(a, b), lambda a, b, g: (g * (a >= b), g * (a < b))),
    "where": (lambda a, b: graphc.where(a > 0, a, b), lambda a, b, g: (g * (a > 0), g * (a <= 0))),
}


def np_sum_to(g, shape):
    lead = g.ndim - len(shape)
    g = g.sum(tuple(range(lead))) if lead else g
    return g.sum(tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=lambda s: f"{s[0]}+{s[1]}")
def test_broadcast_input_grad_is_summed(op, shapes):
    fn, vjp = BINARY[op]
    rng = np.random.default_rng(0)
    a_np = np.asarray(rng.uniform(0.5, 2.0, shapes[0]) * rng.choice([-1, 1], shapes[0]))
    b_np = np.asarray(rng.uniform(0.5, 2.0, shapes[1]))
    a = graphc.tensor(a_np, requires_grad=True)
    b = graphc.tensor(b_np, requires_grad=True)
    out = fn(a, b)
    g = rng.standard_normal(tuple(out.shape))
    out.backward(graphc.tensor(g))
    want_a, want_b = vjp(*np.broadcast_arrays(a_np, b_np), g)
    assert tuple(a.grad.shape) == shapes[0] and tuple(b.grad.shape) == shapes[1]
    np.testing.assert_allclose(a.grad.numpy(), np_sum_to(want_a, shapes[0]), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np_sum_to(want_b, shapes[1]), rtol=1e-12)


def test_matmul_batch_broadcast_grad_shapes():
    a = graphc.randn(2, 1, 3, 4, requires_grad=True)
    b = graphc.randn(5, 4, 2, requires_grad=True)
    (a @ b).sum().backward()
    assert a.grad.shape == (2, 1, 3, 4) and b.grad.shape == (5, 4, 2)


# --- gradients at kinks and ties: pinned to PyTorch's conventions ------------------------------------

def grad_of(fn, *values):
    xs = [graphc.tensor(np.asarray(v, dtype=np.float64), requires_grad=True) for v in values]
    fn(*xs).sum().backward()
    return [x.grad.numpy() for x in xs]


def test_relu_grad_at_zero_is_zero():
    np.testing.assert_array_equal(grad_of(graphc.relu, [-1.0, 0.0, 2.0])[0], [0.0, 0.0, 1.0])


def test_abs_grad_at_zero_is_zero():
    np.testing.assert_array_equal(grad_of(abs, [-1.0, 0.0, 2.0])[0], [-1.0, 0.0, 1.0])


def test_clamp_grad_at_the_bounds_passes():
    np.testing.assert_array_equal(grad_of(lambda x: x.clamp(-1.0, 1.0), [-2.0, -1.0, 0.0, 1.0, 2.0])[0],
                                  [0.0, 1.0, 1.0, 1.0, 0.0])


def test_maximum_tie_sends_the_gradient_to_the_first_operand():
    ga, gb = grad_of(graphc.maximum, [1.0, 2.0], [1.0, 3.0])
    np.testing.assert_array_equal(ga, [1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.0, 1.0])


def test_amax_ties_share_the_gradient_evenly():
    np.testing.assert_array_equal(grad_of(lambda x: x.amax(1), [[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])[0],
                                  [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_max_pool_tie_sends_the_gradient_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0], [3.0, 2.0]]]])
    np.testing.assert_array_equal(grad_of(lambda x: apply_op(
        "maxpool2d_gather", x, apply_op("maxpool2d_argmax", x, kernel=(2, 2), stride=(2, 2), padding=(0, 0))), x)[0],
        [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_stop_gradient_blocks_the_gradient():
    x = graphc.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * apply_op("stop_gradient", x)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, -2.0, 3.0])


def test_cast_grad_comes_back_in_the_input_dtype():
    x = graphc.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * graphc.tensor(np.array([3.0, 4.0]))
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


def test_second_order_through_create_graph():
    """The VJP rules are graphc ops, so gradients are differentiable: d2/dx2 tanh = -2 tanh (1 - tanh^2)."""
    x = graphc.tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)
    (g,) = graphc.autograd.grad(x.tanh().sum(), [x], create_graph=True)
    assert g.requires_grad
    g.sum().backward()
    t = np.tanh(x.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), -2 * t * (1 - t * t), rtol=1e-12)
