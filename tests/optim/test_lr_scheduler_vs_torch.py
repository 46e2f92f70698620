"""Every lr scheduler's sequence over 30 steps equals torch's; stepping one never recompiles a compiled step."""
import numpy as np
import pytest

import graphc
import graphc.nn as nn

torch = pytest.importorskip("torch")

STEPS = 30


def _make(lib, name, opt):
    S = lib.optim.lr_scheduler
    if name == "MultiStepLR":
        return S.MultiStepLR(opt, milestones=[5, 12, 20], gamma=0.5)
    if name == "ExponentialLR":
        return S.ExponentialLR(opt, gamma=0.9)
    if name == "CosineAnnealingLR":
        return S.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    if name == "OneCycleLR":
        return S.OneCycleLR(opt, max_lr=0.5, total_steps=STEPS + 1)
    if name == "OneCycleLR3":
        return S.OneCycleLR(opt, max_lr=[0.5, 0.2], total_steps=STEPS + 1, three_phase=True,
                            anneal_strategy="linear")
    if name == "LambdaLR":
        return S.LambdaLR(opt, lambda e: 1.0 / (1 + e))
    if name == "LinearLR":
        return S.LinearLR(opt, start_factor=0.1, total_iters=8)
    if name == "SequentialLR":
        warm = S.LinearLR(opt, start_factor=0.1, total_iters=5)
        cos = S.CosineAnnealingLR(opt, T_max=20)
        return S.SequentialLR(opt, [warm, cos], milestones=[5])
    raise AssertionError(name)


def _sequence(lib, name, momentum_key):
    ps = [lib.nn.Parameter(lib.ones(2)), lib.nn.Parameter(lib.ones(2))]
    opt = lib.optim.SGD([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}], lr=0.1, momentum=0.9)
    sched = _make(lib, name, opt)
    lrs, moms = [], []
    for _ in range(STEPS):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append([g["momentum"] for g in opt.param_groups])
    return np.array(lrs), np.array(moms), sched.get_last_lr()


NAMES = ["MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR", "OneCycleLR3", "LambdaLR", "LinearLR",
         "SequentialLR"]


@pytest.mark.parametrize("name", NAMES)
def test_scheduler_matches_torch(name):
    lrs, moms, last = _sequence(graphc, name, "momentum")
    tlrs, tmoms, tlast = _sequence(torch, name, "momentum")
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(moms, tmoms, rtol=1e-6)
    np.testing.assert_allclose(last, tlast, rtol=1e-6)


def test_one_cycle_cycles_adam_beta1_like_torch():
    seqs = []
    for lib in (graphc, torch):
        p = lib.nn.Parameter(lib.ones(2))
        opt = lib.optim.Adam([p], lr=0.1)
        sched = lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
        seq = []
        for _ in range(9):
            opt.step()
            sched.step()
            g = opt.param_groups[0]
            seq.append((g["lr"], g["betas"][0] if lib is torch else g["beta1"]))
        seqs.append(np.array(seq))
    np.testing.assert_allclose(seqs[0], seqs[1], rtol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", threshold_mode="abs", threshold=0.1, cooldown=2),
                                dict(patience=2, factor=0.5, min_lr=0.01)])
def test_reduce_lr_on_plateau_matches_torch(kw):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9] * 2
    seqs = []
    for lib in (graphc, torch):
        p = lib.nn.Parameter(lib.ones(2))
        opt = lib.optim.SGD([p], lr=0.1)
        sched = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **{"patience": 3, **kw})
        seq = []
        for m in metrics:
            sched.step(m)
            seq.append(opt.param_groups[0]["lr"])
        seqs.append(seq)
    np.testing.assert_allclose(seqs[0], seqs[1], rtol=1e-7)
    assert len(set(seqs[0])) > 1, "the metric sequence must trigger at least one reduction"


@pytest.mark.parametrize("name", NAMES)
def test_scheduler_never_recompiles_a_compiled_step(name):
    w = nn.Parameter(graphc.ones(3))
    opt = graphc.optim.SGD([w], lr=0.1, momentum=0.9)
    sched = _make(graphc, name, opt) if name != "OneCycleLR3" else None
    if sched is None:
        opt = graphc.optim.SGD([{"params": [w]}, {"params": [nn.Parameter(graphc.ones(1))]}], lr=0.1, momentum=0.9)
        sched = _make(graphc, name, opt)

    @graphc.compile(backend="interpreter")
    def step():
        opt.zero_grad()
        (w * w).sum().backward()
        opt.step()

    for _ in range(12):
        step()
        sched.step()
    assert step.stats()["compiles"] == 1, step.stats()["recompiles"]
