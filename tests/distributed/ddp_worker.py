"""Run under `mpiexec -n 2 python -m mpi4py`: DDP on 2 ranks vs one process on the global batch.

    python -m mpi4py ddp_worker.py eager|interpreter|numba_cpu [bucket_cap_mb]  -> rank 0 prints one JSON line
"""
import json
import sys

import numpy as np

import graphc
import graphc.distributed as dist
from graphc import nn
from graphc.cli.models import make_step

STEPS, BATCH = 30, 8


def build(seed):
    graphc.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    return net


def batches(world):
    rng = np.random.default_rng(7)
    for _ in range(STEPS):
        x = rng.standard_normal((BATCH * world, 6)).astype(np.float32)
        y = rng.integers(0, 3, BATCH * world)
        yield x, y


def train(model, params, xs_ys, rank, batch, mode):
    step = make_step(model, nn.CrossEntropyLoss(), graphc.optim.SGD(params, lr=0.1, momentum=0.9))
    run = step if mode == "eager" else graphc.compile(step, backend=mode)
    for x, y in xs_ys:
        part = slice(rank * batch, (rank + 1) * batch)
        run(graphc.tensor(x[part]), graphc.tensor(y[part]))
    return run


def main(mode, bucket_cap_mb=25.0):
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    net = build(seed=100 + rank)           # every rank seeded differently: DDP must broadcast rank 0's
    before = [p.detach().numpy().copy() for p in net.parameters()]
    ddp = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=bucket_cap_mb)
    received = [p.detach().numpy().copy() for p in net.parameters()]
    rank0_init = [p.detach().numpy() for p in build(seed=100).parameters()]
    facts = {"got_rank0_init": all(np.array_equal(a, b) for a, b in zip(rank0_init, received)),
             "changed_by_broadcast": not all(np.array_equal(a, b) for a, b in zip(before, received))}
    run = train(ddp, ddp.parameters(), batches(world), rank, BATCH, mode)
    mine = np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])
    every = [None] * world
    dist.all_gather_object(every, (mine, facts))
    if rank == 0:
        ref = build(seed=100)
        train(ref, ref.parameters(), batches(world), 0, BATCH * world, "eager")   # one process, the global batch
        want = np.concatenate([p.detach().numpy().ravel() for p in ref.parameters()])
        rel = float(np.max(np.abs(mine - want)) / np.max(np.abs(want)))
        ir = run.ir() if mode != "eager" else ""
        print(json.dumps({"mode": mode, "world": world, "max_rel_diff": rel, "buckets": len(ddp._buckets),
                          "ranks_equal": all(np.array_equal(mine, e) for e, _ in every),
                          "every_rank_got_rank0_init": all(f["got_rank0_init"] for _, f in every),
                          "changed_by_broadcast": [f["changed_by_broadcast"] for _, f in every],
                          "ir_allreduce_starts": ir.count("allreduce_start"),
                          "ir_allreduce_waits": ir.count("allreduce_wait")}), flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], *map(float, sys.argv[2:]))
