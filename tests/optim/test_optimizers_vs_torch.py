"""RMSprop, Adagrad and parameter groups vs torch.optim; compiled steps == eager; lr changes never recompile.

    same weights, same grads -> graphc.optim.X and torch.optim.X produce the same weights after 5 steps
"""
import numpy as np
import pytest

import graphc
import graphc.nn as nn

torch = pytest.importorskip("torch")

CONFIGS = [
    ("RMSprop", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.2)),
]


def _weights():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]


def _run_graphc(kind, kw, groups=False, steps=5, backend=None):
    ws = [nn.Parameter(graphc.tensor(w)) for w in _weights()]
    params = [{"params": [ws[0]]}, {"params": [ws[1]], "lr": kw["lr"] * 3}] if groups else ws
    opt = getattr(graphc.optim, kind)(params, **kw)
    x = graphc.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))

    def step():
        opt.zero_grad()
        loss = ((ws[0] * x).sum(0) * ws[1]).sum() ** 2
        loss.backward()
        opt.step()
        return loss

    fn = graphc.compile(step, backend=backend) if backend else step
    losses = [fn().item() for _ in range(steps)]
    return losses, [w.detach().numpy().copy() for w in ws], fn


def _run_torch(kind, kw, groups=False, steps=5):
    ws = [torch.tensor(w, requires_grad=True) for w in _weights()]
    params = [{"params": [ws[0]]}, {"params": [ws[1]], "lr": kw["lr"] * 3}] if groups else ws
    opt = getattr(torch.optim, kind)(params, **kw)
    x = torch.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((ws[0] * x).sum(0) * ws[1]).sum() ** 2
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [w.detach().numpy() for w in ws]


@pytest.mark.parametrize("groups", [False, True])
@pytest.mark.parametrize("kind,kw", CONFIGS)
def test_optimizer_matches_torch(kind, kw, groups):
    losses, ws, _ = _run_graphc(kind, kw, groups)
    tlosses, tws = _run_torch(kind, kw, groups)
    np.testing.assert_allclose(losses, tlosses, rtol=1e-4)
    for a, b in zip(ws, tws):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind,kw", CONFIGS + [("Adam", dict(lr=1e-2)), ("SGD", dict(lr=1e-2, momentum=0.9))])
def test_compiled_step_equals_eager_with_param_groups(kind, kw):
    eager = _run_graphc(kind, kw, groups=True)
    compiled = _run_graphc(kind, kw, groups=True, backend="interpreter")
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5)
    for a, b in zip(compiled[1], eager[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_add_param_group_and_per_group_lr_changes_do_not_recompile():
    a, b = nn.Parameter(graphc.ones(3)), nn.Parameter(graphc.ones(2))
    opt = graphc.optim.RMSprop([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 0.01, "alpha": 0.9})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[1]["alpha"] == 0.9 and opt.param_groups[0]["alpha"] == 0.99

    @graphc.compile(backend="interpreter")
    def step():
        opt.zero_grad()
        ((a * a).sum() + (b * b).sum()).backward()
        opt.step()

    before = []
    for lr in (0.1, 0.05, 0.0, 0.2):
        opt.param_groups[0]["lr"] = lr
        opt.param_groups[1]["lr"] = lr / 10
        before.append((a.detach().numpy().copy(), b.detach().numpy().copy()))
        step()
    assert step.stats()["compiles"] == 1
    assert not np.allclose(before[1][0], before[2][0]) and np.allclose(before[2][0], before[3][0]), \
        "lr=0 must leave the first group unchanged, other lrs must move it"
