"""Losses: forward vs numpy, gradients vs finite differences, torch parity, and the errors users hit."""
import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.autograd import gradcheck
from graphc.errors import DTypeError, ShapeError

from .helpers import arr, leaf, rand

LABELS = np.array([2, 0, 4, 1, 4, 3])


def _log_softmax(x, axis=1):
    x = x - x.max(axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis, keepdims=True))


def _nll_ref(logp, y, weight=None, ignore_index=-100, reduction="mean"):
    valid = y != ignore_index
    safe = np.where(valid, y, 0)
    w = valid.astype(np.float64) * (1.0 if weight is None else weight[safe])
    picked = np.take_along_axis(logp, safe[:, None], 1)[:, 0]
    loss = -picked * w
    return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / w.sum()}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
def test_cross_entropy_and_nll_match_numpy(reduction, weighted, ignore):
    x = rand(6, 5, seed=1).astype(np.float64)
    y = LABELS.copy()
    if ignore:
        y[1] = -100
    weight = np.array([0.5, 1.0, 2.0, 1.5, 0.25]) if weighted else None
    want = _nll_ref(_log_softmax(x), y, weight, reduction=reduction)
    gw = None if weight is None else graphc.tensor(weight)
    ce = F.cross_entropy(graphc.tensor(x), graphc.tensor(y), weight=gw, reduction=reduction)
    nll = F.nll_loss(F.log_softmax(graphc.tensor(x), 1), graphc.tensor(y), weight=gw, reduction=reduction)
    np.testing.assert_allclose(arr(ce), want, rtol=1e-10)
    np.testing.assert_allclose(arr(nll), want, rtol=1e-10)
    fn = (lambda t: F.cross_entropy(t, graphc.tensor(y), weight=gw, reduction=reduction))
    assert gradcheck(fn, (leaf(x, np.float64),))


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    x = leaf(rand(6, 5, seed=2))
    F.cross_entropy(x, graphc.tensor(LABELS)).backward()
    p = np.exp(_log_softmax(arr(x).astype(np.float64)))
    np.testing.assert_allclose(arr(x.grad), (p - np.eye(5)[LABELS]) / 6, rtol=1e-5, atol=1e-7)


def test_cross_entropy_spatial_targets():
    x = rand(2, 4, 3, 3, seed=3).astype(np.float64)
    y = np.random.default_rng(0).integers(0, 4, (2, 3, 3))
    logp = _log_softmax(x)
    want = -np.take_along_axis(logp, y[:, None], 1).mean()
    np.testing.assert_allclose(arr(F.cross_entropy(graphc.tensor(x), graphc.tensor(y))), want, rtol=1e-10)
    assert gradcheck(lambda t: F.cross_entropy(t, graphc.tensor(y)), (leaf(x, np.float64),))


def test_cross_entropy_probability_targets_and_label_smoothing():
    x = rand(4, 3, seed=4).astype(np.float64)
    probs = np.random.default_rng(1).dirichlet(np.ones(3), 4)
    logp = _log_softmax(x)
    np.testing.assert_allclose(arr(F.cross_entropy(graphc.tensor(x), graphc.tensor(probs))),
                               -(logp * probs).sum(1).mean(), rtol=1e-10)
    y = np.array([0, 2, 1, 2])
    eps = 0.1
    smoothed = np.eye(3)[y] * (1 - eps) + eps / 3
    np.testing.assert_allclose(arr(F.cross_entropy(graphc.tensor(x), graphc.tensor(y), label_smoothing=eps)),
                               -(logp * smoothed).sum(1).mean(), rtol=1e-10)
    assert gradcheck(lambda t: F.cross_entropy(t, graphc.tensor(probs)), (leaf(x, np.float64),))


def test_unbatched_cross_entropy():
    x = rand(5, seed=5).astype(np.float64)
    want = -_log_softmax(x[None])[0, 3]
    np.testing.assert_allclose(arr(F.cross_entropy(graphc.tensor(x), graphc.tensor(3))), want, rtol=1e-10)


REGRESSION = [
    ("mse_loss", F.mse_loss, lambda a, b: (a - b) ** 2),
    ("l1_loss", F.l1_loss, lambda a, b: np.abs(a - b)),
    ("smooth_l1_loss", F.smooth_l1_loss, lambda a, b: np.where(np.abs(a - b) < 1, 0.5 * (a - b) ** 2,
                                                                np.abs(a - b) - 0.5)),
    ("huber_loss", lambda a, b, reduction="mean": F.huber_loss(a, b, reduction, delta=0.5),
     lambda a, b: np.where(np.abs(a - b) < 0.5, 0.5 * (a - b) ** 2, 0.5 * (np.abs(a - b) - 0.25))),
]


@pytest.mark.parametrize("name,fn,ref", REGRESSION, ids=[r[0] for r in REGRESSION])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(name, fn, ref, reduction):
    a, b = rand(3, 4, seed=6).astype(np.float64), rand(3, 4, seed=7).astype(np.float64)
    per = ref(a, b)
    want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
    np.testing.assert_allclose(arr(fn(graphc.tensor(a), graphc.tensor(b), reduction=reduction)), want, rtol=1e-10)
    assert gradcheck(lambda t: fn(t, graphc.tensor(b), reduction=reduction), (leaf(a, np.float64),))


def test_binary_cross_entropy_losses():
    x = rand(3, 4, seed=8).astype(np.float64)
    y = (rand(3, 4, seed=9) > 0).astype(np.float64)
    p = 1 / (1 + np.exp(-x))
    want = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    np.testing.assert_allclose(arr(F.binary_cross_entropy(graphc.tensor(p), graphc.tensor(y))), want, rtol=1e-10)
    np.testing.assert_allclose(arr(F.binary_cross_entropy_with_logits(graphc.tensor(x), graphc.tensor(y))), want,
                               rtol=1e-10)
    assert gradcheck(lambda t: F.binary_cross_entropy_with_logits(t, graphc.tensor(y)), (leaf(x, np.float64),))
    assert gradcheck(lambda t: F.binary_cross_entropy(t, graphc.tensor(y)), (leaf(p, np.float64),))
    # large logits do not overflow, and the gradient at 0 is exactly sigmoid(0) - y
    big = F.binary_cross_entropy_with_logits(graphc.tensor([1000., -1000.]), graphc.tensor([0., 1.]),
                                             reduction="none")
    np.testing.assert_allclose(arr(big), [1000., 1000.])
    z = leaf([0.0])
    F.binary_cross_entropy_with_logits(z, graphc.tensor([1.0])).backward()
    np.testing.assert_allclose(arr(z.grad), [-0.5])


# --- errors ------------------------------------------------------------------------------------

def test_float_class_labels_are_a_dtype_error():
    with pytest.raises(DTypeError) as e:
        F.cross_entropy(graphc.zeros(64, 10), graphc.zeros(64))
    msg = str(e.value)
    assert msg.startswith("cross_entropy: expected class-index targets of an integer dtype (int64), got float32 "
                          "targets of shape (64,) for input float32(64, 10)")
    assert "help: class-index targets must be integers: convert them with target.long()" in msg
    with pytest.raises(DTypeError, match="nll_loss: expected class-index targets"):
        F.nll_loss(graphc.zeros(4, 3), graphc.zeros(4))


def test_batch_size_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError) as e:
        F.cross_entropy(graphc.zeros(64, 10), graphc.zeros(32, dtype=graphc.int64))
    assert str(e.value).startswith("cross_entropy: Expected input batch_size (64) to match target batch_size (32): "
                                   "input (64, 10), target (32,)")
    with pytest.raises(ShapeError, match=r"nll_loss: expected a target of shape \(4,\) for an input of shape "
                                         r"\(4, 3\), got \(4, 1\)"):
        F.nll_loss(graphc.zeros(4, 3), graphc.zeros(4, 1, dtype=graphc.int64))


def test_other_loss_errors():
    x, y = graphc.zeros(4, 3), graphc.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
        F.cross_entropy(x, y, reduction="bad")
    with pytest.raises(ShapeError, match="weight tensor should be defined either for all 3 classes"):
        F.cross_entropy(x, y, weight=graphc.ones(4))
    with pytest.raises(ShapeError, match="class index 7 is out of range for 3 classes"):
        F.cross_entropy(x, graphc.tensor([0, 1, 7, 0]))
    with pytest.warns(UserWarning, match="Using a target size"):
        F.mse_loss(graphc.zeros(4, 1), graphc.zeros(4))


# --- modules -----------------------------------------------------------------------------------

def test_loss_modules():
    x, y = graphc.tensor(rand(6, 5, seed=1)), graphc.tensor(LABELS)
    np.testing.assert_allclose(arr(nn.CrossEntropyLoss()(x, y)), arr(F.cross_entropy(x, y)))
    np.testing.assert_allclose(arr(nn.NLLLoss(reduction="sum")(x, y)), arr(F.nll_loss(x, y, reduction="sum")))
    np.testing.assert_allclose(arr(nn.MSELoss()(x, x * 2.0)), arr(F.mse_loss(x, x * 2.0)))
    with pytest.warns(UserWarning, match="please use reduction='sum' instead"):
        assert nn.NLLLoss(size_average=False).reduction == "sum"
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    weighted = nn.CrossEntropyLoss(weight=graphc.ones(5))
    assert list(weighted.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []


# --- torch parity ------------------------------------------------------------------------------

def _torch_cases(torch):
    TF = torch.nn.functional
    w = rand(5, seed=20) ** 2 + 0.1
    y = LABELS.copy()
    y_ign = LABELS.copy()
    y_ign[2] = -100
    cases = []
    for reduction in ("mean", "sum", "none"):
        cases += [
            (f"ce_{reduction}", lambda x, r=reduction: F.cross_entropy(x, graphc.tensor(y), reduction=r),
             lambda x, r=reduction: TF.cross_entropy(x, torch.tensor(y), reduction=r), (6, 5)),
            (f"ce_weight_ignore_smooth_{reduction}",
             lambda x, r=reduction: F.cross_entropy(x, graphc.tensor(y_ign), graphc.tensor(w), reduction=r,
                                                    label_smoothing=0.2),
             lambda x, r=reduction: TF.cross_entropy(x, torch.tensor(y_ign), torch.tensor(w), reduction=r,
                                                     label_smoothing=0.2), (6, 5)),
            (f"nll_weight_ignore_{reduction}",
             lambda x, r=reduction: F.nll_loss(x, graphc.tensor(y_ign), graphc.tensor(w), reduction=r),
             lambda x, r=reduction: TF.nll_loss(x, torch.tensor(y_ign), torch.tensor(w), reduction=r), (6, 5)),
        ]
    probs = np.random.default_rng(2).dirichlet(np.ones(5), 6).astype(np.float32)
    ys = np.random.default_rng(3).integers(0, 5, (2, 3, 4))
    cases += [
        ("ce_probs_weight_smooth", lambda x: F.cross_entropy(x, graphc.tensor(probs), graphc.tensor(w),
                                                             label_smoothing=0.1),
         lambda x: TF.cross_entropy(x, torch.tensor(probs), torch.tensor(w), label_smoothing=0.1), (6, 5)),
        ("ce_spatial_weight", lambda x: F.cross_entropy(x, graphc.tensor(ys), graphc.tensor(w)),
         lambda x: TF.cross_entropy(x, torch.tensor(ys), torch.tensor(w)), (2, 5, 3, 4)),
        ("mse", lambda x: F.mse_loss(x, graphc.tensor(probs)), lambda x: TF.mse_loss(x, torch.tensor(probs)), (6, 5)),
        ("l1", lambda x: F.l1_loss(x, graphc.tensor(probs)), lambda x: TF.l1_loss(x, torch.tensor(probs)), (6, 5)),
        ("smooth_l1", lambda x: F.smooth_l1_loss(x, graphc.tensor(probs), beta=0.5),
         lambda x: TF.smooth_l1_loss(x, torch.tensor(probs), beta=0.5), (6, 5)),
        ("huber", lambda x: F.huber_loss(x, graphc.tensor(probs), delta=0.5),
         lambda x: TF.huber_loss(x, torch.tensor(probs), delta=0.5), (6, 5)),
        ("bce_logits_posw", lambda x: F.binary_cross_entropy_with_logits(x, graphc.tensor(probs),
                                                                          pos_weight=graphc.tensor(w)),
         lambda x: TF.binary_cross_entropy_with_logits(x, torch.tensor(probs), pos_weight=torch.tensor(w)), (6, 5)),
        ("bce", lambda x: F.binary_cross_entropy(F.sigmoid(x), graphc.tensor(probs)),
         lambda x: TF.binary_cross_entropy(torch.sigmoid(x), torch.tensor(probs)), (6, 5)),
    ]
    return cases


@pytest.mark.parametrize("index", range(17))
def test_torch_parity(index):
    torch = pytest.importorskip("torch")
    name, fn, tfn, shape = _torch_cases(torch)[index]
    x = rand(*shape, seed=30 + index)
    g, t = leaf(x), torch.tensor(x, requires_grad=True)
    out, tout = fn(g), tfn(t)
    np.testing.assert_allclose(arr(out), tout.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(arr(g.grad), t.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.filterwarnings("ignore:size_average and reduce args will be deprecated")
def test_torch_parity_modules_and_legacy_flags():
    torch = pytest.importorskip("torch")
    x, y = rand(6, 5, seed=40), LABELS
    for kwargs in ({}, {"reduction": "sum"}, {"size_average": False}, {"reduce": False}, {"ignore_index": 4}):
        got = nn.CrossEntropyLoss(**kwargs)(graphc.tensor(x), graphc.tensor(y))
        want = torch.nn.CrossEntropyLoss(**kwargs)(torch.tensor(x), torch.tensor(y))
        np.testing.assert_allclose(arr(got), want.numpy(), rtol=1e-5, err_msg=str(kwargs))
