"""Run under `mpiexec -n 2 python -m mpi4py`: every collective of graphc.distributed, checked on each rank.

    python -m mpi4py collectives_worker.py ok          -> each rank prints "rank R ok"
    python -m mpi4py collectives_worker.py raise       -> rank 1 raises; every rank must end, non-zero
"""
import sys

import numpy as np

import graphc
import graphc.distributed as dist
from graphc.distributed import ReduceOp


def check(name, got, want):
    if not np.array_equal(np.asarray(got), np.asarray(want)):
        raise AssertionError(f"rank {dist.get_rank()}: {name}: got {got}, want {want}")


def check_no_sync(r):
    """Under no_sync() gradients stay local; the next synced backward averages the accumulated sums."""
    from graphc import nn
    net = nn.Linear(2, 1, bias=False)
    model = nn.parallel.DistributedDataParallel(net)
    xs = [np.array([[1., 2.]], np.float32), np.array([[3., 5.]], np.float32)]   # rank r's input
    with model.no_sync():
        model(graphc.tensor(xs[r])).sum().backward()
    check("no_sync grad", net.weight.grad.numpy(), xs[r])          # d(w.x)/dw = x, not averaged
    model(graphc.tensor(xs[r])).sum().backward()
    check("synced grad", net.weight.grad.numpy(), (2 * xs[0] + 2 * xs[1]) / 2)
    assert list(model.state_dict()) == ["module.weight"]          # torch's keys


def main(mode):
    dist.init_process_group(backend="mpi")
    r, w = dist.get_rank(), dist.get_world_size()
    assert dist.is_initialized() and dist.is_available() and w == 2
    if mode == "raise" and r == 1:
        raise ValueError("rank 1 fails on purpose")
    values = [np.array([1., 2., 3.], np.float32), np.array([4., -1., 0.5], np.float32)]
    want = {ReduceOp.SUM: values[0] + values[1], ReduceOp.AVG: (values[0] + values[1]) / 2,
            ReduceOp.MAX: np.maximum(*values), ReduceOp.MIN: np.minimum(*values), ReduceOp.PRODUCT: values[0] * values[1]}
    for op, expected in want.items():
        t = graphc.tensor(values[r])
        before = t._value
        dist.all_reduce(t, op=op)
        check(f"all_reduce {op}", t.numpy(), expected)
        assert t._value is before, "all_reduce must work in place"
    t = graphc.tensor(values[r])
    dist.broadcast(t, src=1)
    check("broadcast", t.numpy(), values[1])
    parts = [graphc.zeros(3) for _ in range(w)]
    dist.all_gather(parts, graphc.tensor(values[r]))
    check("all_gather", np.stack([p.numpy() for p in parts]), np.stack(values))
    t = graphc.tensor(values[r])
    dist.reduce(t, dst=0, op=ReduceOp.SUM)
    check("reduce", t.numpy(), values[0] + values[1] if r == 0 else values[r])
    check_no_sync(r)
    dist.barrier()
    dist.destroy_process_group()
    assert not dist.is_initialized()
    if mode == "raise":
        dist.init_process_group()   # rank 0 would wait here forever if the abort did not end it
        dist.barrier()
    print(f"rank {r} ok", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
