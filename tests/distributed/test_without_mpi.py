"""Without mpi4py (or without an MPI library) graphc still imports, and a group of one process works."""
import sys

import numpy as np
import pytest

import graphc
import graphc.distributed as dist
from graphc import nn


@pytest.fixture
def no_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)          # `from mpi4py import MPI` -> ImportError
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    yield
    dist.destroy_process_group()


def test_a_group_of_one_without_mpi4py(no_mpi4py):
    assert not dist.is_available()
    dist.init_process_group(backend="mpi")
    assert (dist.get_rank(), dist.get_world_size()) == (0, 1)
    t = graphc.tensor([1., 2.])
    dist.all_reduce(t, op=dist.ReduceOp.AVG)
    dist.broadcast(t, src=0)
    parts = [graphc.zeros(2)]
    dist.all_gather(parts, t)
    assert np.array_equal(t.numpy(), [1., 2.]) and np.array_equal(parts[0].numpy(), [1., 2.])
    net = nn.Linear(2, 1)
    model = nn.parallel.DistributedDataParallel(net)
    model(graphc.tensor([[1., 3.]])).sum().backward()
    assert np.array_equal(net.weight.grad.numpy(), [[1., 3.]])


def test_a_launch_without_mpi_is_a_clear_error(no_mpi4py, monkeypatch):
    monkeypatch.setenv("PMI_RANK", "0")
    with pytest.raises(graphc.GraphcError, match=r"(?s)mpi4py cannot load an MPI library.*graphc\[distributed\]"):
        dist.init_process_group(backend="mpi")


def test_collectives_before_init_say_how_to_fix_it():
    with pytest.raises(graphc.GraphcError, match="(?s)not initialized.*init_process_group"):
        dist.all_reduce(graphc.tensor([1.]))
    with pytest.raises(graphc.GraphcError, match="not initialized"):
        nn.parallel.DistributedDataParallel(nn.Linear(1, 1))


def test_no_sync_inside_a_compiled_step_is_a_clear_error(no_mpi4py):
    dist.init_process_group()
    net = nn.Linear(2, 1)
    model = nn.parallel.DistributedDataParallel(net)

    @graphc.compile(backend="interpreter")
    def accumulate(x):
        with model.no_sync():
            model(x).sum().backward()

    with pytest.raises(graphc.GraphcError, match="(?s)no_sync.. inside a compiled step"):
        accumulate(graphc.ones(3, 2))
    assert net.weight.grad is None                 # the failed trace left nothing behind
