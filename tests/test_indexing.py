"""Advanced indexing beyond the op table's cases: compiled == eager, masks under trace, in-place rules."""
import numpy as np
import pytest
import torch

import graphc
from graphc.errors import GradError, ShapeError, TraceError


def overlay(x, y):
    """Write each row's label as a one-hot of x.max() into its first 10 columns (a forward-forward input)."""
    x_ = x.clone()
    x_[:, :10] *= 0.0
    x_[range(x.shape[0]), y] = x.max()
    return x_


def test_overlay_compiled_equals_eager_and_torch():
    rng = np.random.default_rng(0)
    x, y = rng.random((6, 16), dtype=np.float32), rng.integers(0, 10, 6)
    eager = overlay(graphc.tensor(x), graphc.tensor(y)).numpy()
    compiled = graphc.compile(overlay, backend="interpreter")(graphc.tensor(x), graphc.tensor(y)).numpy()
    want = overlay(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_array_equal(eager, want)
    np.testing.assert_array_equal(compiled, want)


def picked_loss(x, w, y):
    logits = x @ w
    return -logits[range(logits.shape[0]), y].sum() + (logits[:, [0, 2]] ** 2).mean()


def test_gather_gradients_compiled_equal_eager_and_torch():
    rng = np.random.default_rng(1)
    x, w, y = rng.random((5, 3), dtype=np.float32), rng.random((3, 4), dtype=np.float32), rng.integers(0, 4, 5)
    want = torch.tensor(w, requires_grad=True)
    picked_loss(torch.tensor(x), want, torch.tensor(y)).backward()

    model = graphc.nn.Linear(3, 4, bias=False)
    with graphc.no_grad():
        model.weight.copy_(graphc.tensor(w.T))

    def step(x, y):
        model.weight.grad = None
        loss = picked_loss(x, model.weight.T, y)
        loss.backward()
        return loss

    eager_loss = step(graphc.tensor(x), graphc.tensor(y))
    eager = model.weight.grad.numpy().T.copy()
    compiled_loss = graphc.compile(step, backend="interpreter")(graphc.tensor(x), graphc.tensor(y))
    np.testing.assert_allclose(eager, want.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.weight.grad.numpy().T, want.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled_loss.item(), eager_loss.item(), rtol=1e-6)


def test_repeated_indices_accumulate_their_gradient():
    x = graphc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_bool_mask_get_and_set_match_torch():
    a = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]], dtype=np.float32)
    for lib in (graphc, torch):
        x = lib.tensor(a)
        got = x[x > 0]
        m = x < 0
        x[m] = 0.0
        y = lib.tensor(a)
        y[y[:, 0] > 0] = lib.tensor([9.0, 9.0, 9.0])
        if lib is graphc:
            mine = (got.numpy(), x.numpy(), y.numpy())
        else:
            theirs = (got.numpy(), x.numpy(), y.numpy())
    for m, t in zip(mine, theirs):
        np.testing.assert_array_equal(m, t)


def test_bool_mask_under_compile_names_the_line():
    def positives(x):
        return x[x > 0].sum()   # the masked line

    step = graphc.compile(positives, backend="interpreter", fullgraph=True)
    with pytest.raises(TraceError, match="bool mask") as info:
        step(graphc.randn(4))
    assert "the masked line" in str(info.value) and "help:" in str(info.value)


def test_bool_mask_assign_of_a_scalar_compiles():
    def clip_negative(x):
        y = x.clone()
        y[y < 0] = 0.0
        return y

    x = graphc.tensor([-1.0, 2.0, -3.0])
    np.testing.assert_array_equal(graphc.compile(clip_negative, backend="interpreter")(x).numpy(), [0.0, 2.0, 0.0])


def test_out_of_bounds_and_float_indices_are_graphc_errors():
    x = graphc.zeros(3, 4)
    with pytest.raises(ShapeError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x[[0, 5]]
    with pytest.raises(ShapeError, match="must be long, int or bool"):
        x[graphc.tensor([0.0, 1.0])]
    with pytest.raises(ShapeError, match="cannot be broadcast"):
        x[[0, 1], [0, 1, 2]]


def test_inplace_write_into_a_saved_tensor_fails_at_backward():
    x = graphc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 1.0
    y = h.exp()
    h[[0, 2]] = 0.0   # exp's backward needs h (through its output) as it was
    with pytest.raises(GradError, match="modified by an inplace operation.*expected version 0"):
        y.sum().backward()


def test_inplace_write_into_a_saved_input_under_no_grad_fails_at_backward():
    w = graphc.ones(3, requires_grad=True)
    a = graphc.tensor([1.0, 2.0, 3.0])
    loss = (w * a).sum()
    with graphc.no_grad():
        a[range(2)] = 5.0
    with pytest.raises(GradError, match="modified by an inplace operation"):
        loss.backward()


def test_write_into_a_clone_keeps_gradients_right():
    x = graphc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.clone()
    y[[1]] = 0.0
    (y * y).sum().backward()
    xt = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    yt = xt.clone()
    yt[[1]] = 0.0
    (yt * yt).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
