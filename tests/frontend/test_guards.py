"""Guards and recompilation: what makes @graphc.compile trace again, what does not, and what it says.

    step(x[8]) ; step(x[8])          -> 1 compile, 1 cache hit
    step(x[4])                       -> a 2nd compile; GRAPHC_LOG=recompiles says the argument's shape changed
    opt.param_groups[0]["lr"] = 0.1  -> no recompile: lr is a runtime input of the graph
    net.eval() / net.train()         -> two cache entries, each compiled once
"""
import warnings

import numpy as np
import pytest

import graphc
import graphc.nn as nn
from graphc.config import override
from graphc.utils.data import DataLoader, TensorDataset

BACKEND = "interpreter"   # guards live in the frontend; the interpreter keeps these tests fast


class Small(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.drop(graphc.relu(self.fc1(x))))


def setup(dropout=0.0, lr=0.1, momentum=0.9, seed=0):
    """Two identical (net, optimizer, step) triples: one to run eagerly, one to compile."""
    made = []
    for _ in range(2):
        graphc.manual_seed(seed)
        net = Small(dropout)
        opt = graphc.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        crit = nn.CrossEntropyLoss()

        def step(x, y, net=net, opt=opt, crit=crit):
            opt.zero_grad()
            loss = crit(net(x), y)
            loss.backward()
            opt.step()
            return loss
        made.append((net, opt, step))
    return made


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return graphc.tensor(rng.standard_normal((n, 6)).astype(np.float32)), graphc.tensor(rng.integers(0, 3, n))


def assert_params_equal(a, b, rtol=1e-6):
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=rtol, atol=1e-7, err_msg=name)


# --- shapes ------------------------------------------------------------------------------------------

def test_same_shapes_hit_the_cache():
    (_, _, _), (_, _, step) = setup()
    compiled = graphc.compile(step, backend=BACKEND)
    x, y = data(8)
    for _ in range(4):
        compiled(x, y)
    stats = compiled.stats()
    assert stats["compiles"] == 1
    assert stats["cache_hits"] == 3
    assert stats["recompiles"] == []


def test_new_batch_size_recompiles_once_and_says_why(capfd):
    (_, _, _), (_, _, step) = setup()
    compiled = graphc.compile(step, backend=BACKEND)
    with override(log="recompiles"):
        compiled(*data(8))
        first = capfd.readouterr().err
        compiled(*data(4))
        compiled(*data(4, seed=1))
        log = capfd.readouterr().err
        compiled(*data(8))   # the first entry is still cached: no compile, nothing logged
        later = capfd.readouterr().err
    assert "recompil" not in first, "the first compile is not a recompile"
    assert compiled.stats()["compiles"] == 2
    lines = [ln for ln in log.splitlines() if "recompiles" in ln]
    assert len(lines) == 1, log
    line = lines[0]
    assert "step" in line                                        # which function
    assert "[8, 6]" in line and "[4, 6]" in line, line           # the shape change, old -> new
    assert "changed" in line
    assert later == ""
    assert len(compiled.stats()["recompiles"]) == 1


def test_recompile_reason_for_a_non_tensor_argument(capfd):
    def scale(x, k):
        return x * k
    compiled = graphc.compile(scale, backend=BACKEND)
    x = graphc.ones(3)
    with override(log="recompiles"):
        np.testing.assert_array_equal(compiled(x, 2.0).numpy(), [2, 2, 2])
        np.testing.assert_array_equal(compiled(x, 3.0).numpy(), [3, 3, 3])
    err = capfd.readouterr().err
    assert compiled.stats()["compiles"] == 2
    assert "2.0" in err and "3.0" in err, err


def test_grad_mode_is_part_of_the_key(capfd):
    net = Small()
    compiled = graphc.compile(lambda x: net(x), backend=BACKEND)
    x = graphc.ones(2, 6)
    with override(log="recompiles"):
        a = compiled(x)
        with graphc.no_grad():
            b = compiled(x)
    assert compiled.stats()["compiles"] == 2
    assert "grad mode" in capfd.readouterr().err
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# --- learning rate: a runtime input -------------------------------------------------------------------

def test_changing_lr_does_not_recompile_and_takes_effect():
    (enet, eopt, estep), (cnet, copt, cstep) = setup()
    compiled = graphc.compile(cstep, backend=BACKEND)
    x, y = data(8)
    for lr in (0.1, 0.1, 0.5, 0.02):
        eopt.param_groups[0]["lr"] = lr
        copt.param_groups[0]["lr"] = lr
        estep(x, y)
        compiled(x, y)
        assert_params_equal(cnet, enet)
    assert compiled.stats()["compiles"] == 1
    # A tiny lr barely moves the parameters: the value is read at every call, not baked in.
    copt.param_groups[0]["lr"] = 1e-9
    before = [p.detach().numpy().copy() for p in cnet.parameters()]
    compiled(x, y)
    for p, b in zip(cnet.parameters(), before):
        np.testing.assert_allclose(p.detach().numpy(), b, rtol=0, atol=1e-7)
    assert compiled.stats()["compiles"] == 1


def test_step_lr_scheduler_does_not_recompile():
    (enet, eopt, estep), (cnet, copt, cstep) = setup()
    esched = graphc.optim.lr_scheduler.StepLR(eopt, step_size=1, gamma=0.5)
    csched = graphc.optim.lr_scheduler.StepLR(copt, step_size=1, gamma=0.5)
    compiled = graphc.compile(cstep, backend=BACKEND)
    x, y = data(8)
    for epoch in range(4):
        estep(x, y)
        compiled(x, y)
        esched.step()
        csched.step()
    assert copt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 4)
    assert compiled.stats()["compiles"] == 1
    assert_params_equal(cnet, enet)


def test_warmup_from_lr_zero_does_not_recompile():
    (enet, eopt, estep), (cnet, copt, cstep) = setup()
    compiled = graphc.compile(cstep, backend=BACKEND)
    x, y = data(8)
    for lr in (0.0, 0.05, 0.1):
        eopt.param_groups[0]["lr"] = lr
        copt.param_groups[0]["lr"] = lr
        estep(x, y)
        compiled(x, y)
    assert_params_equal(cnet, enet)
    assert compiled.stats()["compiles"] == 1


def test_momentum_value_change_does_not_recompile_but_switching_it_off_does():
    (enet, eopt, estep), (cnet, copt, cstep) = setup(momentum=0.9)
    compiled = graphc.compile(cstep, backend=BACKEND)
    x, y = data(8)
    for m in (0.9, 0.5):
        eopt.param_groups[0]["momentum"] = m
        copt.param_groups[0]["momentum"] = m
        estep(x, y)
        compiled(x, y)
    assert compiled.stats()["compiles"] == 1
    assert_params_equal(cnet, enet)
    eopt.param_groups[0]["momentum"] = 0.0
    copt.param_groups[0]["momentum"] = 0.0
    estep(x, y)
    compiled(x, y)
    assert compiled.stats()["compiles"] == 2, "momentum 0 takes another code path: a new graph"
    assert_params_equal(cnet, enet)


# --- train / eval ----------------------------------------------------------------------------------

def test_train_and_eval_are_separate_cache_entries(capfd):
    (enet, _, _), (cnet, _, _) = setup(dropout=0.5)
    compiled = graphc.compile(cnet, backend=BACKEND)
    x = graphc.ones(4, 6)
    with override(log="recompiles"):
        for _ in range(3):
            cnet.eval()
            enet.eval()
            np.testing.assert_allclose(compiled(x).detach().numpy(), enet(x).detach().numpy(), rtol=1e-6)
            cnet.train()
            out = compiled(x).detach().numpy()
            assert (out != compiled(x).detach().numpy()).any(), "training mode draws a new dropout mask each call"
    assert compiled.stats()["compiles"] == 2
    log = capfd.readouterr().err
    assert "train" in log and "eval" in log, log


def test_compiled_training_step_respects_eval_mode_of_a_submodule():
    """Switching only the dropout submodule to eval is a guard change too."""
    (_, _, _), (cnet, _, _) = setup(dropout=0.5)
    compiled = graphc.compile(lambda x: cnet(x), backend=BACKEND)
    x = graphc.ones(4, 6)
    cnet.drop.eval()
    a = compiled(x).detach().numpy()
    np.testing.assert_array_equal(a, compiled(x).detach().numpy())
    cnet.drop.train()
    compiled(x)
    assert compiled.stats()["compiles"] == 2


# --- the last partial batch ----------------------------------------------------------------------------

def test_last_partial_batch_of_an_epoch():
    (enet, _, estep), (cnet, _, cstep) = setup()
    x, y = data(10, seed=3)
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=False)
    compiled = graphc.compile(cstep, backend=BACKEND)
    sizes = []
    for epoch in range(2):
        for xb, yb in loader:
            sizes.append(len(xb))
            le = estep(xb, yb)
            lc = compiled(xb, yb)
            assert lc.item() == pytest.approx(le.item(), rel=1e-6)
    assert sizes == [4, 4, 2] * 2
    stats = compiled.stats()
    assert stats["compiles"] == 2, "one graph for the full batches, one for the last"
    assert stats["cache_hits"] == 4
    assert_params_equal(cnet, enet)


# --- recompile limit -----------------------------------------------------------------------------------

def test_recompile_limit_falls_back_to_eager_with_one_warning():
    def f(x):
        return (x * 2).sum()
    compiled = graphc.compile(f, backend=BACKEND)
    with override(recompile_limit=2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [compiled(graphc.ones(n)) for n in (1, 2, 3, 4, 5, 2)]
    ours = [w for w in caught if "recompiled" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "eager" in message and "2" in message
    assert ours[0].filename == __file__, "the warning points at the caller's line"
    assert [r.item() for r in results] == [2.0, 4.0, 6.0, 8.0, 10.0, 4.0]
    assert compiled.stats()["compiles"] == 2


# --- stats -------------------------------------------------------------------------------------------

def test_stats_has_compiles_cache_hits_and_seconds_per_phase():
    (_, _, _), (_, _, step) = setup()
    compiled = graphc.compile(step, backend=BACKEND)
    x, y = data(8)
    compiled(x, y)
    compiled(x, y)
    stats = compiled.stats()
    assert stats["compiles"] == 1 and stats["cache_hits"] == 1
    phases = stats["phases"]
    for phase in ("trace", "passes", "backend"):
        assert phase in phases, phases
    assert all(isinstance(v, float) and 0.0 <= v < 60.0 for v in phases.values()), phases
    assert phases["trace"] > 0 and phases["passes"] > 0
    # stats() is a snapshot: mutating it does not touch the function's counters.
    stats["phases"]["trace"] = -1.0
    stats["compiles"] = 99
    assert compiled.stats()["compiles"] == 1 and compiled.stats()["phases"]["trace"] > 0
