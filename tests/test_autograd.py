"""Eager autograd: accumulation, explicit output gradients, grad modes, detach, requires_grad
propagation, in-place updates of leaves, autograd.grad, shared subexpressions, int tensors.

    x = graphc.tensor([1., 2.], requires_grad=True); (x * x).sum().backward(); x.grad -> [2., 4.]
"""
import numpy as np
import pytest

import graphc
from graphc.autograd import gradcheck


def leaf(values, dtype=np.float32):
    return graphc.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# --- backward ------------------------------------------------------------------------------------

def test_grad_accumulates_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0 + 3.0, 4.0 + 3.0])


def test_grad_reset_to_none_starts_over():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_grad_zero_in_place():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    g = x.grad
    g.zero_()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_leaf_grad_does_not_alias_the_seed():
    x = leaf([1.0, 2.0])
    seed = graphc.tensor([1.0, 1.0])
    (x + 0.0).backward(seed)
    x.grad.zero_()
    np.testing.assert_array_equal(seed.numpy(), [1.0, 1.0])


def test_backward_with_explicit_gradient_for_non_scalar_output():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    y.backward(graphc.tensor([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [3.0, 16.0]])


def test_backward_gradient_may_be_an_array():
    x = leaf([1.0, 2.0])
    (x * 2.0).backward(np.array([1.0, -1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -2.0])
    assert x.grad.dtype == np.float32


def test_backward_on_a_scalar_needs_no_gradient():
    x = leaf(3.0)
    (x * x).backward()
    assert x.grad.shape == () and float(x.grad) == 6.0


def test_backward_of_a_one_element_tensor_needs_no_gradient():
    x = leaf([3.0])
    (x * x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0])


def test_backward_without_requires_grad_raises():
    with pytest.raises(graphc.GradError, match="does not require grad"):
        graphc.tensor([1.0, 2.0]).sum().backward()


def test_backward_gradient_of_the_wrong_shape_raises():
    x = leaf([1.0, 2.0])
    with pytest.raises(graphc.GradError, match=r"gradient has shape \(3,\) but the output has \(2,\)"):
        (x * 2.0).backward(graphc.tensor([1.0, 1.0, 1.0]))


def test_non_leaf_grad_stays_none():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    y.sum().backward()
    assert y.grad is None and not y.is_leaf and x.is_leaf


# --- grad modes -----------------------------------------------------------------------------------

def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with graphc.no_grad():
        assert not graphc.is_grad_enabled()
        y = x * 2.0
    assert graphc.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_enable_grad_inside_no_grad():
    x = leaf([1.0, 2.0])
    with graphc.no_grad():
        with graphc.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and not z.requires_grad


@pytest.mark.parametrize("mode", [False, True])
def test_set_grad_enabled(mode):
    x = leaf([1.0, 2.0])
    with graphc.set_grad_enabled(mode):
        assert graphc.is_grad_enabled() is mode
        y = x * 2.0
    assert y.requires_grad is mode
    assert graphc.is_grad_enabled()


def test_grad_modes_as_decorators():
    x = leaf([1.0])

    @graphc.no_grad()
    def off():
        return x * 2.0

    @graphc.enable_grad()
    def on():
        return x * 2.0

    @graphc.set_grad_enabled(False)
    def off_too():
        return x * 2.0

    assert not off().requires_grad and not off_too().requires_grad
    with graphc.no_grad():
        assert on().requires_grad
    assert graphc.is_grad_enabled()


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with graphc.no_grad():
            1 / 0
    assert graphc.is_grad_enabled()


# --- detach, propagation ------------------------------------------------------------------------------

def test_detach_shares_values_and_cuts_the_tape():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), [1.0, 2.0])
    (x * d).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0])   # d counts as a constant


def test_detach_in_place():
    y = leaf([1.0, 2.0]) * 2.0
    assert y.detach_() is y
    assert not y.requires_grad and y.is_leaf


def test_data_is_detached():
    x = leaf([1.0, 2.0])
    assert not x.data.requires_grad


def test_requires_grad_propagates():
    x, c = leaf([1.0, 2.0]), graphc.tensor([3.0, 4.0])
    assert not c.requires_grad
    assert (x * c).requires_grad and (c + x).requires_grad and x.exp().requires_grad
    assert (x * c).grad_fn is not None and not (x * c).is_leaf
    assert not (c * 2.0).requires_grad
    assert not (x > 1.0).requires_grad            # comparisons are not differentiable
    assert not x.argmax().requires_grad


def test_requires_grad_underscore_returns_the_tensor():
    x = graphc.tensor([1.0])
    assert x.requires_grad_() is x and x.requires_grad and x.is_leaf
    x.requires_grad_(False)
    assert not x.requires_grad


def test_numpy_of_a_tensor_that_requires_grad_raises():
    with pytest.raises(RuntimeError, match="detach"):
        leaf([1.0]).numpy()


# --- in-place updates of leaves ----------------------------------------------------------------------

def test_leaf_update_under_no_grad_works_in_place():
    w = leaf([1.0, 2.0])
    (w * w).sum().backward()
    before = w._value
    with graphc.no_grad():
        w.sub_(0.1 * w.grad)
    assert w._value is before        # same storage
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6])
    assert w.requires_grad and w.is_leaf


def test_leaf_augmented_assignment_under_no_grad_works_in_place():
    w = leaf([1.0, 2.0])
    (w * w).sum().backward()
    original = w
    with graphc.no_grad():
        w -= 0.1 * w.grad
        w *= 2.0
    assert w is original
    np.testing.assert_allclose(original.detach().numpy(), [1.6, 3.2])
    assert w.requires_grad and w.is_leaf


def test_leaf_update_outside_no_grad_raises():
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place operation"):
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="no_grad"):
        w.zero_()
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 2.0])


def test_leaf_augmented_assignment_outside_no_grad_raises():
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w += 1.0


def test_leaf_setitem_outside_no_grad_raises():
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="in-place operation"):
        w[0] = 5.0


def test_setitem_on_a_non_leaf_is_on_the_tape():
    x, v = leaf([[1.0, 2.0], [3.0, 4.0]]), leaf([10.0, 20.0])
    y = x * 1.0
    y[1] = v
    (y * graphc.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(v.grad.numpy(), [3.0, 4.0])


# --- autograd.grad, shared subexpressions ------------------------------------------------------------

def test_autograd_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    x.grad = graphc.tensor([100.0, 100.0])
    gx, gw = graphc.autograd.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.numpy(), [3.0, 4.0])
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), [100.0, 100.0])
    assert w.grad is None


def test_autograd_grad_single_input_and_grad_outputs():
    x = leaf([1.0, 2.0])
    (g,) = graphc.autograd.grad(x * x, x, grad_outputs=graphc.tensor([1.0, 0.5]))
    np.testing.assert_allclose(g.numpy(), [2.0, 2.0])


def test_autograd_grad_unused_input():
    x, unused = leaf([1.0]), leaf([2.0])
    with pytest.raises(graphc.GradError, match="allow_unused=True"):
        graphc.autograd.grad((x * x).sum(), [x, unused])
    gx, gu = graphc.autograd.grad((x * x).sum(), [x, unused], allow_unused=True)
    assert gu is None and gx.item() == 2.0


def test_diamond_graph_sums_both_paths():
    x = leaf([0.5, -1.0, 2.0])
    y = x * 2.0                    # y feeds both branches
    z = (y * y + y.exp()).sum()
    z.backward()
    xv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), (2 * (2 * xv) + np.exp(2 * xv)) * 2, rtol=1e-6)


def test_same_tensor_twice_in_one_op():
    x = leaf([3.0, -2.0])
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, -3.0])


def test_tape_of_a_shared_subexpression_survives_a_first_backward():
    x = leaf([0.5, 1.0])
    h = x.exp()
    (h * 2.0).sum().backward(retain_graph=True)
    (h * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 5.0 * np.exp([0.5, 1.0]), rtol=1e-6)


def test_deep_chain_does_not_recurse():
    x = leaf([1.0])
    y = x
    for _ in range(3000):          # deeper than Python's recursion limit
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])


# --- int tensors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [[1, 2], [True, False]], ids=["int64", "bool"])
def test_int_tensors_cannot_require_grad(values):
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients"):
        graphc.tensor(values, requires_grad=True)
    with pytest.raises(RuntimeError, match="only floating point"):
        graphc.tensor(values).requires_grad_()


def test_cast_to_int_does_not_require_grad():
    assert not leaf([1.5, 2.5]).long().requires_grad


def test_int_arithmetic_with_a_float_leaf_flows_to_the_float_only():
    x, i = leaf([1.0, 2.0]), graphc.tensor([3, 4])
    (x * i).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert i.grad is None and not i.requires_grad


# --- gradcheck itself ------------------------------------------------------------------------------

def test_gradcheck_passes_a_correct_gradient():
    assert gradcheck(lambda a, b: (a * b.exp()).sum(1), (leaf([[0.1, 0.2]], np.float64), leaf([0.3, -0.4], np.float64)))


def test_gradcheck_keeps_non_float_inputs():
    x = leaf([[0.1, 0.2, 0.3]], np.float64)
    labels = graphc.tensor([2])
    assert gradcheck(lambda x, y: (x.log_softmax(1) * graphc.functional.apply_op(
        "one_hot", y, num_classes=3, dtype=np.dtype(np.float64))).sum(), (x, labels))


def test_post_accumulate_grad_hook_sees_the_final_grad_once_per_backward():
    w = graphc.tensor([1., 2.], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    (w * w + w * 3).sum().backward()               # two paths into w: the hook runs once, after both
    assert len(seen) == 1 and np.allclose(seen[0], [5., 7.])
    handle.remove()
    (w * w).sum().backward()
    assert len(seen) == 1
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)
