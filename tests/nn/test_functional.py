"""graphc.nn.functional: forward vs numpy, gradients vs float64 finite differences, dropout, errors, torch parity."""
import warnings

import numpy as np
import pytest

import graphc
import graphc.nn.functional as F
from graphc.autograd import gradcheck
from graphc.errors import GraphcError, ShapeError
from graphc.ops.source import uniform_bits

from .helpers import arr, leaf, rand

# --- activations: forward vs numpy, gradient vs finite differences ----------------------------

ACTIVATIONS = [
    ("relu", F.relu, lambda x: np.maximum(x, 0)),
    ("relu6", F.relu6, lambda x: np.clip(x, 0, 6)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    ("elu", F.elu, lambda x: np.where(x > 0, x, np.exp(np.minimum(x, 0)) - 1)),
    ("sigmoid", F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", F.tanh, np.tanh),
    ("silu", F.silu, lambda x: x / (1 + np.exp(-x))),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    ("hardtanh", F.hardtanh, lambda x: np.clip(x, -1, 1)),
    ("softmax", lambda x: F.softmax(x, dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    ("log_softmax", lambda x: F.log_softmax(x, dim=1),
     lambda x: x - np.log(np.exp(x).sum(1, keepdims=True))),
    ("softmin", lambda x: F.softmin(x, dim=1), lambda x: np.exp(-x) / np.exp(-x).sum(1, keepdims=True)),
]


@pytest.mark.parametrize("name,fn,ref", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_forward_and_grad(name, fn, ref):
    x = rand(4, 5, seed=1) * 3
    np.testing.assert_allclose(arr(fn(graphc.tensor(x))), ref(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    # keep finite differences away from the kinks at 0, +-1 and 6
    xg = x.astype(np.float64)
    xg = np.where(np.abs(xg) < 0.05, 0.3, xg)
    xg = np.where(np.abs(np.abs(xg) - 1) < 0.05, 1.3, xg)
    assert gradcheck(fn, (leaf(xg, np.float64),))


def test_gelu_exact_is_close_to_erf():
    from math import erf
    x = np.linspace(-5, 5, 41)
    want = np.array([0.5 * v * (1 + erf(v / np.sqrt(2))) for v in x])
    np.testing.assert_allclose(arr(F.gelu(graphc.tensor(x))), want, atol=1e-6)
    assert gradcheck(F.gelu, (leaf(x[::4], np.float64),))


def test_softmax_is_stable_for_large_inputs():
    out = F.softmax(graphc.tensor([[1000., 1001.]]), dim=1)
    np.testing.assert_allclose(arr(out), [[0.26894142, 0.73105858]], rtol=1e-6)


# --- linear ------------------------------------------------------------------------------------

def test_linear_matches_numpy_and_grads():
    x, w, b = rand(3, 4, seed=1), rand(5, 4, seed=2), rand(5, seed=3)
    np.testing.assert_allclose(arr(F.linear(graphc.tensor(x), graphc.tensor(w), graphc.tensor(b))),
                               x @ w.T + b, rtol=1e-6, atol=1e-6)
    assert gradcheck(F.linear, tuple(leaf(a, np.float64) for a in (x, w, b)))
    assert gradcheck(lambda x, w: F.linear(x, w), (leaf(x, np.float64), leaf(w, np.float64)))


def test_linear_feature_mismatch_error():
    with pytest.raises(ShapeError) as e:
        F.linear(graphc.zeros(64, 784), graphc.zeros(128, 700))
    assert str(e.value).startswith("linear: input has 784 features but the weight expects 700: input (64, 784), "
                                   "weight (128, 700)")
    assert "x.flatten(1)" in str(e.value)


# --- convolution and pooling ------------------------------------------------------------------

def _conv_ref(x, w, b, stride, padding):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


@pytest.mark.parametrize("stride,padding,bias", [(1, 0, True), (2, 1, True), (1, 2, False)])
def test_conv2d_forward_and_grad(stride, padding, bias):
    x, w, b = rand(2, 3, 7, 6, seed=1), rand(4, 3, 3, 2, seed=2), rand(4, seed=3)
    got = F.conv2d(graphc.tensor(x), graphc.tensor(w), graphc.tensor(b) if bias else None, stride, padding)
    np.testing.assert_allclose(arr(got), _conv_ref(x, w, b if bias else None, stride, padding), rtol=1e-4, atol=1e-5)
    args = (leaf(x[:1, :, :5, :5], np.float64), leaf(w, np.float64)) + ((leaf(b, np.float64),) if bias else ())
    assert gradcheck(lambda *a: F.conv2d(*(a if bias else a + (None,)), stride=stride, padding=padding), args)


def test_conv2d_padding_strings_and_unbatched():
    x, w = graphc.tensor(rand(1, 2, 5, 5)), graphc.tensor(rand(3, 2, 3, 3))
    assert F.conv2d(x, w, padding="same").shape == (1, 3, 5, 5)
    assert F.conv2d(x, w, padding="valid").shape == (1, 3, 3, 3)
    np.testing.assert_allclose(arr(F.conv2d(x[0], w, padding=1)), arr(F.conv2d(x, w, padding=1))[0])
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(GraphcError, match="even kernel size"):
        F.conv2d(x, graphc.tensor(rand(3, 2, 2, 2)), padding="same")


def test_conv2d_channel_mismatch_error():
    with pytest.raises(ShapeError) as e:
        F.conv2d(graphc.zeros(8, 3, 28, 28), graphc.zeros(32, 1, 3, 3))
    assert str(e.value).startswith("conv2d: input has 3 channels but the weight expects 1: input (8, 3, 28, 28), "
                                   "weight (32, 1, 3, 3)")


def test_conv2d_groups_and_dilation_are_refused_clearly():
    x, w = graphc.zeros(1, 2, 5, 5), graphc.zeros(2, 1, 3, 3)
    with pytest.raises(GraphcError, match="conv2d: groups=2 is not supported by graphc"):
        F.conv2d(x, w, groups=2)
    with pytest.raises(GraphcError, match="conv2d: dilation=2 is not supported by graphc"):
        F.conv2d(x, graphc.zeros(2, 2, 3, 3), dilation=2)


def _pool_ref(x, k, s, p, fn, pad_value):
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    oh, ow = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    return np.stack([np.stack([fn(x[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3)) for j in range(ow)], -1)
                     for i in range(oh)], -2)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (2, 1, 0)])
def test_max_pool2d_forward_and_grad(k, s, p):
    x = rand(2, 3, 7, 7, seed=4)
    got = F.max_pool2d(graphc.tensor(x), k, s, p)
    np.testing.assert_allclose(arr(got), _pool_ref(x, k, s or k, p, np.max, -np.inf))
    assert gradcheck(lambda t: F.max_pool2d(t, k, s, p), (leaf(x[:1, :2], np.float64),))


def test_max_pool2d_ties_send_gradient_once():
    x = leaf(np.ones((1, 1, 2, 2)))
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(arr(x.grad), [[[[1, 0], [0, 0]]]])


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1)])
def test_avg_pool2d_forward_and_grad(k, s, p):
    x = rand(2, 3, 7, 7, seed=5)
    np.testing.assert_allclose(arr(F.avg_pool2d(graphc.tensor(x), k, s, p)), _pool_ref(x, k, s or k, p, np.mean, 0),
                               rtol=1e-5, atol=1e-6)
    assert gradcheck(lambda t: F.avg_pool2d(t, k, s, p), (leaf(x[:1, :1], np.float64),))


def test_adaptive_avg_pool2d():
    x = rand(2, 3, 6, 6, seed=6)
    np.testing.assert_allclose(arr(F.adaptive_avg_pool2d(graphc.tensor(x), 1)), x.mean((2, 3), keepdims=True),
                               rtol=1e-6)
    np.testing.assert_allclose(arr(F.adaptive_avg_pool2d(graphc.tensor(x), (3, 2))),
                               x.reshape(2, 3, 3, 2, 2, 3).mean((3, 5)), rtol=1e-5, atol=1e-6)
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, (4, 5)), (leaf(x[:1, :1], np.float64),))


def test_pad_constant():
    x = rand(1, 2, 3, 3, seed=7)
    got = F.pad(graphc.tensor(x), (1, 2, 0, 1), value=-1.0)
    np.testing.assert_array_equal(arr(got), np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 2)), constant_values=-1))
    assert gradcheck(lambda t: F.pad(t, (1, 1, -1, 1)), (leaf(x, np.float64),))


# --- dropout --------------------------------------------------------------------------------------

def test_dropout_mask_is_reproducible_scaled_and_from_the_counter_stream():
    x = graphc.ones(200, 50)
    graphc.manual_seed(123)
    a = arr(F.dropout(x, 0.3))
    graphc.manual_seed(123)
    b = arr(F.dropout(x, 0.3))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a).tolist()) == {0.0, np.float32(1 / 0.7)}
    assert abs((a == 0).mean() - 0.3) < 0.02
    # the mask is the counter-based stream at (seed, offset): the same numbers a compiled step draws
    expected = (uniform_bits(123, np.arange(200 * 50, dtype=np.uint64)).reshape(200, 50) >= 0.3) / np.float32(0.7)
    np.testing.assert_allclose(a, expected, rtol=1e-6)
    # the offset advanced, so the next call draws a different mask
    assert int(graphc.default_generator.offset_tensor.item()) == 200 * 50
    assert not np.array_equal(arr(F.dropout(x, 0.3)), a)


def test_dropout_gradient_is_the_mask():
    graphc.manual_seed(0)
    x = leaf(rand(30, 20))
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(arr(x.grad), (arr(y) != 0) * 2.0)


def test_dropout_eval_and_edge_probabilities():
    x = graphc.tensor(rand(4, 5))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(arr(F.dropout(x, 1.0)), np.zeros((4, 5)))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {bad}"):
            F.dropout(x, bad)
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            F.dropout2d(graphc.zeros(2, 2, 2, 2), bad)


def test_dropout2d_drops_whole_channels_on_4d():
    graphc.manual_seed(1)
    x = graphc.ones(16, 8, 5, 5)
    y = arr(F.dropout2d(x, 0.5))
    per_channel = y.reshape(16, 8, -1)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))          # each plane all-zero or all-kept
    assert set(np.unique(per_channel).tolist()) == {0.0, 2.0}
    assert 0.3 < (per_channel[:, :, 0] == 0).mean() < 0.7
    assert int(graphc.default_generator.offset_tensor.item()) == 16 * 8   # one draw per (sample, channel)


def test_dropout2d_on_3d_is_channelwise_with_warning():
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        y = arr(F.dropout2d(graphc.ones(4, 6, 7), 0.5))
    assert np.all(y.min(-1) == y.max(-1))


def test_dropout2d_on_2d_is_elementwise_with_torchs_warning():
    graphc.manual_seed(2)
    with pytest.warns(UserWarning) as rec:
        y = arr(F.dropout2d(graphc.ones(64, 128), 0.5))
    assert str(rec[0].message) == (
        "dropout2d: Received a 2-D input to dropout2d, which is deprecated and will result in an error in a future "
        "release. To retain the behavior and silence this warning, please use dropout instead. Note that dropout2d "
        "exists to provide channel-wise dropout on inputs with 2 spatial dimensions, a channel dimension, and an "
        "optional batch dimension (i.e. 3D or 4D inputs).")
    assert 0.4 < (y == 0).mean() < 0.6
    assert not np.all(y.min(1) == y.max(1))   # not whole rows: element-wise


def test_dropout2d_eval_warns_but_is_identity():
    x = graphc.ones(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert F.dropout2d(x, 0.5, training=False) is x


# --- encodings --------------------------------------------------------------------------------------

def test_one_hot_is_int64():
    out = F.one_hot(graphc.tensor([2, 0, 1]), 4)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(arr(out), np.eye(4, dtype=np.int64)[[2, 0, 1]])
    assert F.one_hot(graphc.tensor([2, 0])).shape == (2, 3)


def test_flatten():
    assert F.flatten(graphc.zeros(2, 3, 4), 1).shape == (2, 12)


# --- torch parity -----------------------------------------------------------------------------------

def _parity_cases(torch):
    TF = torch.nn.functional
    return [
        ("relu", F.relu, TF.relu, [(3, 4)]),
        ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2), [(3, 4)]),
        ("elu", F.elu, TF.elu, [(3, 4)]),
        ("sigmoid", F.sigmoid, torch.sigmoid, [(3, 4)]),
        ("tanh", F.tanh, torch.tanh, [(3, 4)]),
        ("silu", F.silu, TF.silu, [(3, 4)]),
        ("gelu", F.gelu, TF.gelu, [(3, 4)]),
        ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"), [(3, 4)]),
        ("softmax", lambda x: F.softmax(x, 1), lambda x: TF.softmax(x, 1), [(3, 4)]),
        ("log_softmax", lambda x: F.log_softmax(x, 1), lambda x: TF.log_softmax(x, 1), [(3, 4)]),
        ("linear", F.linear, TF.linear, [(3, 4), (5, 4), (5,)]),
        ("conv2d", lambda x, w, b: F.conv2d(x, w, b, 2, 1), lambda x, w, b: TF.conv2d(x, w, b, 2, 1),
         [(2, 3, 8, 8), (4, 3, 3, 3), (4,)]),
        ("conv2d_same", lambda x, w: F.conv2d(x, w, padding="same"), lambda x, w: TF.conv2d(x, w, padding="same"),
         [(2, 3, 6, 6), (4, 3, 5, 3)]),
        ("max_pool2d", lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [(2, 3, 9, 9)]),
        ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1), lambda x: TF.avg_pool2d(x, 3, 2, 1), [(2, 3, 9, 9)]),
        ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (4, 3)),
         lambda x: TF.adaptive_avg_pool2d(x, (4, 3)), [(2, 3, 9, 7)]),
        ("pad", lambda x: F.pad(x, (1, 2, 3, 0), value=0.5), lambda x: TF.pad(x, (1, 2, 3, 0), value=0.5),
         [(2, 3, 4, 4)]),
        ("batch_norm", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
         lambda x, w, b: TF.batch_norm(x, None, None, w, b, training=True), [(4, 3, 5, 5), (3,), (3,)]),
    ]


@pytest.mark.parametrize("index", range(18))
def test_torch_parity(index):
    torch = pytest.importorskip("torch")
    name, fn, tfn, shapes = _parity_cases(torch)[index]
    inputs = [rand(*s, seed=10 + i) for i, s in enumerate(shapes)]
    gs = [leaf(a) for a in inputs]
    ts = [torch.tensor(a, requires_grad=True) for a in inputs]
    out, tout = fn(*gs), tfn(*ts)
    np.testing.assert_allclose(arr(out), tout.detach().numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    seed = rand(*tout.shape, seed=99)
    (out * graphc.tensor(seed)).sum().backward()
    (tout * torch.tensor(seed)).sum().backward()
    for g, t in zip(gs, ts):
        np.testing.assert_allclose(arr(g.grad), t.grad.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)


def test_torch_parity_max_pool_indices():
    torch = pytest.importorskip("torch")
    x = rand(2, 3, 9, 9, seed=3)
    out, idx = F.max_pool2d(graphc.tensor(x), 3, 2, 1, return_indices=True)
    tout, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(arr(idx), tidx.numpy())
    np.testing.assert_array_equal(arr(out), tout.numpy())


def test_torch_parity_one_hot():
    torch = pytest.importorskip("torch")
    labels = np.array([3, 0, 2])
    np.testing.assert_array_equal(arr(F.one_hot(graphc.tensor(labels), 5)),
                                  torch.nn.functional.one_hot(torch.tensor(labels), 5).numpy())
