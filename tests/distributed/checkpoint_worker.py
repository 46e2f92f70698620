"""Run under `mpiexec -n 2 python -m mpi4py`: checkpoint every 5 steps on rank 0; rank 1 is killed at step 12.

    python -m mpi4py checkpoint_worker.py PATH   -> the job dies; PATH holds step 10's state, whole
"""
import os
import signal
import sys

import graphc
import graphc.distributed as dist
from graphc import nn


def main(path):
    dist.init_process_group("mpi")
    graphc.manual_seed(dist.get_rank())
    net = nn.Linear(4, 2)
    model = nn.parallel.DistributedDataParallel(net)
    opt = graphc.optim.SGD(model.parameters(), lr=0.1)
    for step in range(1, 100):
        if step == 12 and dist.get_rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)        # a rank dies mid-epoch, without a word
        opt.zero_grad()
        model(graphc.randn(3, 4)).pow(2).mean().backward()
        opt.step()
        if step % 5 == 0:
            if dist.get_rank() == 0:                    # torch's pattern: one writer, the others wait
                graphc.save({"step": step, "model": net.state_dict()}, path)
            dist.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
