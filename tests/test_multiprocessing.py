"""graphc.multiprocessing: shared-memory parameters trained by two processes at once (Hogwild)."""
import pickle

import numpy as np
import pytest

import graphc
import graphc.multiprocessing as mp
from graphc import nn

STEPS = 15


def hogwild_worker(rank, model, steps_done, x, y):
    """Train the shared model on this rank's half of the data; count steps in a shared tensor."""
    graphc.manual_seed(rank)
    opt = graphc.optim.SGD(model.parameters(), lr=0.05)
    xs, ys = x[rank::2], y[rank::2]
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((model(xs) - ys) ** 2).mean()
        loss.backward()
        assert not model.weight.grad.is_shared()   # gradients stay in this process
        opt.step()
        with graphc.no_grad():
            steps_done[rank] += 1


def test_two_processes_train_one_shared_model():
    graphc.manual_seed(0)
    model = nn.Linear(4, 1).share_memory()
    steps_done = graphc.zeros(2).share_memory_()
    x = graphc.randn(64, 4)
    y = x @ graphc.tensor([[1.0], [-2.0], [3.0], [0.5]])
    before = ((model(x) - y) ** 2).mean().item()
    w0 = model.weight.detach().numpy().copy()
    mp.spawn(hogwild_worker, args=(model, steps_done, x, y), nprocs=2)
    after = ((model(x) - y) ** 2).mean().item()
    assert steps_done.tolist() == [STEPS, STEPS]          # both processes' writes reached the parent
    assert not np.allclose(model.weight.detach().numpy(), w0)
    assert after < before / 10, (before, after)


def failing_worker(rank):
    if rank == 1:
        raise ValueError("boom in rank 1")


def test_spawn_reraises_a_child_error():
    with pytest.raises(mp.ProcessRaisedException, match="boom in rank 1"):
        mp.spawn(failing_worker, nprocs=2)


def test_share_memory_keeps_values_and_pickles_by_name():
    t = graphc.arange(6.0).reshape(2, 3).requires_grad_()
    assert not t.is_shared()
    assert t.share_memory_() is t and t.is_shared()
    np.testing.assert_array_equal(t.detach().numpy(), np.arange(6.0).reshape(2, 3))
    t.grad = graphc.ones(2, 3)
    copy = pickle.loads(pickle.dumps(t))   # what a spawned child receives
    assert copy.is_shared() and copy.requires_grad and copy.grad is None
    with graphc.no_grad():
        copy[0, 0] = 42.0
    assert t[0, 0].item() == 42.0


def test_deepcopy_of_a_shared_tensor_is_a_private_copy():
    import copy
    m = nn.Linear(2, 2).share_memory()
    twin = copy.deepcopy(m)
    assert not twin.weight.is_shared() and type(twin.weight) is type(m.weight)
    with graphc.no_grad():
        twin.weight.fill_(3.0)
    assert not np.allclose(m.weight.detach().numpy(), 3.0)
    plain = copy.deepcopy(graphc.ones(2, requires_grad=True))
    assert plain.requires_grad and plain.tolist() == [1.0, 1.0]


def test_module_share_memory_covers_parameters_and_buffers():
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).share_memory()
    assert all(p.is_shared() for p in m.parameters())
    assert all(b.is_shared() for b in m.buffers())


def test_torch_names_are_there():
    for name in ("Process", "Queue", "get_context", "set_start_method", "spawn", "SimpleQueue", "Pool"):
        assert hasattr(mp, name), name


def test_setitem_writes_only_its_region(monkeypatch):
    """t[0] = v writes element 0 only (as torch): another process writing t[1] meanwhile keeps its value.
    The write used to copy the whole new tensor back, putting a stale t[1] over the other process's."""
    import graphc.functional as F
    t = graphc.zeros(2).share_memory_()
    original = F.setitem

    def setitem_then_another_process_writes(x, index, value):
        out = original(x, index, value)
        t.numpy()[1] = 7.0          # the other process's write, between our read and our write
        return out

    monkeypatch.setattr(F, "setitem", setitem_then_another_process_writes)
    with graphc.no_grad():
        t[0] += 1
    assert t.tolist() == [1.0, 7.0]
