"""The transformer / recurrent / normalisation layers vs torch: same weights, same input, forward and grads.

    graphc module m, torch module tm with m's state_dict -> m(x) == tm(x); x.grad and every weight grad agree
"""
import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F

from .helpers import arr, rand

torch = pytest.importorskip("torch")
TOL = dict(rtol=1e-4, atol=1e-5)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _loss(out, weights):
    """sum(out * w) over every tensor output, so every output's gradient is checked."""
    outs = [out] if not isinstance(out, (tuple, list)) else list(_flatten(out))
    return sum((o * w).sum() for o, w in zip(outs, weights))


def _flatten(out):
    for o in out:
        if isinstance(o, (tuple, list)):
            yield from _flatten(o)
        elif o is not None:
            yield o


def check_module(make, tmake, inputs, *, train=False, float_inputs=None, call=None):
    """Build both modules, copy graphc's weights to torch, compare outputs and all gradients."""
    graphc.manual_seed(0)
    m = make()
    tm = tmake()
    tm.load_state_dict({k: torch.tensor(arr(v)) for k, v in m.state_dict().items()})
    m.train(train), tm.train(train)
    float_inputs = [a.dtype.kind == "f" for a in inputs] if float_inputs is None else float_inputs
    gx = [graphc.tensor(a, requires_grad=f) for a, f in zip(inputs, float_inputs)]
    tx = [torch.tensor(a, requires_grad=f) for a, f in zip(inputs, float_inputs)]
    call = call or (lambda mod, xs: mod(*xs))
    out, tout = call(m, gx), call(tm, tx)
    gouts, touts = list(_flatten([out])), list(_flatten([tout]))
    assert len(gouts) == len(touts)
    weights = [rand(*o.shape, seed=7 + i) for i, o in enumerate(gouts)]
    for o, t in zip(gouts, touts):
        np.testing.assert_allclose(arr(o), t.detach().numpy(), **TOL)
    sum((o * graphc.tensor(w)).sum() for o, w in zip(gouts, weights)).backward()
    sum((t * torch.tensor(w)).sum() for t, w in zip(touts, weights)).backward()
    for a, b, f in zip(gx, tx, float_inputs):
        if f:
            np.testing.assert_allclose(arr(a.grad), b.grad.numpy(), **TOL)
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        np.testing.assert_allclose(arr(p.grad), tparams[name].grad.numpy(), err_msg=name, **TOL)
    return m


# --- modules -------------------------------------------------------------------------------------

def test_layer_norm():
    check_module(lambda: nn.LayerNorm(6), lambda: torch.nn.LayerNorm(6), [rand(3, 4, 6)])
    check_module(lambda: nn.LayerNorm((4, 6), elementwise_affine=False),
                 lambda: torch.nn.LayerNorm((4, 6), elementwise_affine=False), [rand(3, 4, 6)])


def test_group_norm():
    m = check_module(lambda: nn.GroupNorm(2, 4), lambda: torch.nn.GroupNorm(2, 4), [rand(3, 4, 5, 5)])
    assert m.weight.shape == (4,)


def test_embedding_and_padding_idx():
    ids = np.array([[1, 0, 3], [2, 2, 0]], dtype=np.int64)
    m = check_module(lambda: nn.Embedding(5, 4, padding_idx=0), lambda: torch.nn.Embedding(5, 4, padding_idx=0),
                     [ids])
    assert np.all(arr(m.weight.grad)[0] == 0.0)
    assert np.all(arr(m.weight)[0] == 0.0)


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1), dict(padding="same")])
def test_conv1d(kw):
    check_module(lambda: nn.Conv1d(3, 5, 3, **kw), lambda: torch.nn.Conv1d(3, 5, 3, **kw), [rand(2, 3, 9)])


@pytest.mark.parametrize("stride,padding,output_padding", [(1, 0, 0), (2, 1, 0), (2, 1, 1)])
def test_conv_transpose2d(stride, padding, output_padding):
    check_module(lambda: nn.ConvTranspose2d(3, 4, 3, stride=stride, padding=padding, output_padding=output_padding),
                 lambda: torch.nn.ConvTranspose2d(3, 4, 3, stride=stride, padding=padding,
                                                  output_padding=output_padding),
                 [rand(2, 3, 5, 5)])


@pytest.mark.parametrize("name,args", [("GELU", ()), ("GELU", ("tanh",)), ("SiLU", ()), ("LeakyReLU", (0.2,)),
                                       ("ELU", (0.7,)), ("Softplus", (2.0, 5.0)), ("AdaptiveAvgPool2d", ((2, 3),))])
def test_activation_modules(name, args):
    x = rand(3, 4, 5, 6) * 3
    check_module(lambda: getattr(nn, name)(*args), lambda: getattr(torch.nn, name)(*args), [x])


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention(batch_first):
    shape = (2, 5, 8) if batch_first else (5, 2, 8)
    check_module(lambda: nn.MultiheadAttention(8, 2, batch_first=batch_first),
                 lambda: torch.nn.MultiheadAttention(8, 2, batch_first=batch_first),
                 [rand(*shape, seed=1), rand(*shape, seed=2)],
                 call=lambda mod, xs: mod(xs[0], xs[1], xs[1]))


def test_multihead_attention_masks_and_per_head_weights():
    pad = np.array([[False, False, False, True, True], [False] * 5])
    causal = np.triu(np.ones((5, 5), dtype=bool), 1)
    check_module(lambda: nn.MultiheadAttention(8, 2, batch_first=True),
                 lambda: torch.nn.MultiheadAttention(8, 2, batch_first=True),
                 [rand(2, 5, 8, seed=1), pad, causal], float_inputs=[True, False, False],
                 call=lambda mod, xs: mod(xs[0], xs[0], xs[0], key_padding_mask=xs[1], attn_mask=xs[2],
                                          average_attn_weights=False))


def test_multihead_attention_need_weights_false():
    m = nn.MultiheadAttention(8, 2)
    out, w = m(*(graphc.tensor(rand(5, 2, 8)),) * 3, need_weights=False)
    assert w is None and out.shape == (5, 2, 8)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrent_layers(cls, batch_first):
    shape = (2, 4, 3) if batch_first else (4, 2, 3)
    check_module(lambda: getattr(nn, cls)(3, 5, num_layers=2, batch_first=batch_first),
                 lambda: getattr(torch.nn, cls)(3, 5, num_layers=2, batch_first=batch_first), [rand(*shape)])


def test_lstm_with_initial_state_and_unbatched():
    h0, c0 = rand(1, 2, 5, seed=3), rand(1, 2, 5, seed=4)
    check_module(lambda: nn.LSTM(3, 5), lambda: torch.nn.LSTM(3, 5), [rand(4, 2, 3), h0, c0],
                 call=lambda mod, xs: mod(xs[0], (xs[1], xs[2])))
    check_module(lambda: nn.GRU(3, 5), lambda: torch.nn.GRU(3, 5), [rand(4, 3)])


# --- functions ---------------------------------------------------------------------------------

def check_fn(fn, tfn, inputs, **kw):
    gx = [graphc.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    tx = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    out, tout = fn(*gx, **kw), tfn(*tx, **kw)
    np.testing.assert_allclose(arr(out), tout.detach().numpy(), **TOL)
    w = rand(*out.shape, seed=9)
    (out * graphc.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for a, b in zip(gx, tx):
        if b.requires_grad:
            np.testing.assert_allclose(arr(a.grad), b.grad.numpy(), **TOL)


TF = torch.nn.functional if torch else None


@pytest.mark.parametrize("kw", [dict(scale_factor=2, mode="nearest"), dict(size=(5, 7), mode="nearest"),
                                dict(scale_factor=2, mode="bilinear", align_corners=False),
                                dict(size=(5, 7), mode="bilinear", align_corners=True),
                                dict(size=(3, 2), mode="bilinear", align_corners=False)])
def test_interpolate(kw):
    check_fn(F.interpolate, TF.interpolate, [rand(2, 3, 4, 4)], **kw)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_pad_modes(mode):
    check_fn(F.pad, TF.pad, [rand(2, 3, 4, 5)], pad=(1, 2, 2, 1), mode=mode)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_softplus_normalize_kl_div():
    check_fn(F.softplus, TF.softplus, [rand(4, 5) * 10], beta=0.5, threshold=3.0)
    check_fn(F.normalize, TF.normalize, [rand(4, 5)], dim=1)
    check_fn(F.normalize, TF.normalize, [rand(4, 5)], p=1.0, dim=0)
    logp = np.log(np.random.default_rng(0).dirichlet(np.ones(5), 4)).astype(np.float32)
    p = np.random.default_rng(1).dirichlet(np.ones(5), 4).astype(np.float32)
    for reduction in ("batchmean", "sum", "mean", "none"):
        check_fn(F.kl_div, TF.kl_div, [logp, p], reduction=reduction)
    check_fn(F.kl_div, TF.kl_div, [logp, np.log(p + 1e-3)], reduction="batchmean", log_target=True)
    p[0, 0] = 0.0   # 0 * log 0 counts as 0 (torch's target grad there is nan, so compare the values only)
    np.testing.assert_allclose(arr(F.kl_div(graphc.tensor(logp), graphc.tensor(p), reduction="sum")),
                               TF.kl_div(torch.tensor(logp), torch.tensor(p), reduction="sum").numpy(), **TOL)


def test_layer_norm_group_norm_embedding_functions():
    check_fn(lambda x, w, b: F.layer_norm(x, (6,), w, b), lambda x, w, b: TF.layer_norm(x, (6,), w, b),
             [rand(3, 6), rand(6, seed=1), rand(6, seed=2)])
    check_fn(lambda x, w, b: F.group_norm(x, 3, w, b), lambda x, w, b: TF.group_norm(x, 3, w, b),
             [rand(2, 6, 3), rand(6, seed=1), rand(6, seed=2)])
    check_fn(F.embedding, TF.embedding, [np.array([[0, 2], [3, 3]]), rand(4, 3)])


@pytest.mark.parametrize("kw", [dict(), dict(is_causal=True), dict(scale=0.3)])
def test_scaled_dot_product_attention(kw):
    check_fn(F.scaled_dot_product_attention, TF.scaled_dot_product_attention,
             [rand(2, 3, 4, 8), rand(2, 3, 6, 8, seed=1), rand(2, 3, 6, 5, seed=2)], **kw)


def test_scaled_dot_product_attention_masks():
    mask = np.random.default_rng(0).random((4, 6)) > 0.3
    mask[:, 0] = True
    q, k, v = rand(2, 4, 8), rand(2, 6, 8, seed=1), rand(2, 6, 5, seed=2)
    check_fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=graphc.tensor(mask)),
             lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(mask)), [q, k, v])
    bias = rand(4, 6, seed=5)
    check_fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=graphc.tensor(bias)),
             lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=torch.tensor(bias)), [q, k, v])


def test_losses_with_options():
    x, y = rand(6, 4), np.array([0, 3, -100, 1, 2, 2])
    for kw in (dict(label_smoothing=0.1), dict(ignore_index=-100), dict(label_smoothing=0.2, ignore_index=-100)):
        check_fn(lambda a, b: nn.CrossEntropyLoss(**kw)(a, b), lambda a, b: torch.nn.CrossEntropyLoss(**kw)(a, b),
                 [x, y])
    y2 = np.array([0, 3, 2, 1, 2, 2])
    check_fn(lambda a, b: nn.CrossEntropyLoss(ignore_index=2, label_smoothing=0.1)(a, b),
             lambda a, b: torch.nn.CrossEntropyLoss(ignore_index=2, label_smoothing=0.1)(a, b), [x, y2])
    t = (np.random.default_rng(0).random((6, 4)) > 0.5).astype(np.float32)
    pw = np.array([1.0, 2.0, 0.5, 3.0], dtype=np.float32)
    check_fn(lambda a, b: nn.BCEWithLogitsLoss(pos_weight=graphc.tensor(pw))(a, b),
             lambda a, b: torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))(a, b), [x * 3, t])
    check_fn(lambda a, b: nn.SmoothL1Loss(beta=0.5)(a, b), lambda a, b: torch.nn.SmoothL1Loss(beta=0.5)(a, b),
             [x * 2, rand(6, 4, seed=3)])
    check_fn(lambda a, b: nn.HuberLoss(delta=0.7)(a, b), lambda a, b: torch.nn.HuberLoss(delta=0.7)(a, b),
             [x * 2, rand(6, 4, seed=3)])
    check_fn(lambda a, b: nn.KLDivLoss(reduction="batchmean")(a, b),
             lambda a, b: torch.nn.KLDivLoss(reduction="batchmean")(a, b),
             [np.log(np.full((3, 4), 0.25, np.float32)), np.full((3, 4), 0.25, np.float32) + rand(3, 4) * 0.01])
