"""PyTorch parity: every case with a torch counterpart gives torch's values and result dtype
(float32) and torch's gradients (float64), within 1e-5 relative.  Skips where torch is absent.

    case.fn(graphc tensors) ~= case.torch(torch tensors);  x.grad ~= x_torch.grad
"""
import numpy as np
import pytest

import graphc

from .cases import CASES, params

torch = pytest.importorskip("torch")

WITH_TORCH = [c for c in CASES if c.torch is not None]


def to_torch(a, requires_grad=False):
    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(True) if requires_grad else t


def torch_dtype(t):
    return np.dtype(str(t.dtype).replace("torch.", ""))


@pytest.mark.parametrize("case", params(WITH_TORCH, "torch_forward"))
def test_forward_matches_torch(case):
    arrays = case.inputs(np.float32)
    ours = case.fn(*[graphc.tensor(a) for a in arrays])
    theirs = case.run_torch(*[to_torch(a) for a in arrays])
    assert ours.dtype == torch_dtype(theirs), f"{case.name}: graphc gives {ours.dtype}, torch {theirs.dtype}"
    assert tuple(ours.shape) == tuple(theirs.shape)
    got, want = ours.detach().numpy(), theirs.detach().numpy()
    if ours.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=max(case.atol, 1e-6))


@pytest.mark.parametrize("case", params([c for c in WITH_TORCH if c.grad], "torch_grad"))
def test_gradients_match_torch(case):
    arrays = case.inputs(np.float64)
    slots = set(case.float_inputs())
    ours_in = [graphc.tensor(a, requires_grad=i in slots) for i, a in enumerate(arrays)]
    theirs_in = [to_torch(a, requires_grad=i in slots) for i, a in enumerate(arrays)]
    ours, theirs = case.fn(*ours_in), case.run_torch(*theirs_in)
    seed = np.random.default_rng(2).standard_normal(tuple(ours.shape))
    ours.backward(graphc.tensor(np.asarray(seed)))
    theirs.backward(to_torch(np.asarray(seed)))
    for i in sorted(slots):
        got = ours_in[i].grad
        want = theirs_in[i].grad
        got = np.zeros(arrays[i].shape) if got is None else got.numpy()
        want = np.zeros(arrays[i].shape) if want is None else want.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-10, err_msg=f"{case.name}: input {i}")


def test_amax_tie_gradient_matches_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    g = graphc.tensor(x, requires_grad=True)
    t = to_torch(x, requires_grad=True)
    g.amax(1).sum().backward()
    t.amax(1).sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy())


def test_max_dim_tie_gradient_goes_to_the_returned_index_like_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    g = graphc.tensor(x, requires_grad=True)
    t = to_torch(x, requires_grad=True)
    g.max(1).values.sum().backward()
    t.max(1).values.sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("call", ["max(x, 1)", "min(x, 0, keepdim=True)", "sort(x, 1, descending=True)",
                                  "topk(x, 2, 1)"])
def test_values_indices_results_are_named_like_torch_return_types(call):
    """max/min with dim, sort and topk give torch.return_types-style pairs: same type name, fields, values."""
    x = np.random.default_rng(0).permutation(12).reshape(3, 4).astype(np.float32)
    ours = eval(call, {"x": graphc.tensor(x), **vars(graphc)})
    theirs = eval(call, {"x": to_torch(x), **{n: getattr(torch, n) for n in ("max", "min", "sort", "topk")}})
    assert type(ours).__name__ == type(theirs).__name__ and ours._fields == ("values", "indices")
    values, indices = ours
    np.testing.assert_array_equal(values.numpy(), theirs.values.numpy())
    np.testing.assert_array_equal(indices.numpy(), theirs.indices.numpy())
    assert indices.dtype == np.int64


def test_norm_gradient_at_a_zero_vector_is_zero_like_torch():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    g, t = graphc.tensor(x, requires_grad=True), to_torch(x, requires_grad=True)
    g.norm(dim=1).sum().backward()
    t.norm(dim=1).sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy())
    assert np.isfinite(g.grad.numpy()).all()
