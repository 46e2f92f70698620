"""Data parallel on one host: 1 process x 2 threads against 2 MPI ranks x 1 thread, same global batch.

    PYTHONPATH=. python benchmarks/bench_ddp.py [--steps 200] [--batch 128] [--mode eager|interpreter|numba_cpu]

Trains the seed MLP on random MNIST-shaped data. The single process takes the whole global batch;
each rank takes half, through DistributedDataParallel. It prints samples/s (global: every rank's
samples over the slowest rank's time) and the time of one allreduce of the model's gradients
(all of them, one bucket, median of the timed steps). Noisy on a shared machine: compare runs
taken back to back.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    """One process of a configuration: prints a JSON line of facts from rank 0."""
    import numpy as np

    import graphc
    import graphc.distributed as dist
    from graphc.cli.models import build, make_step
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    graphc.set_num_threads(args.threads)
    graphc.manual_seed(0)
    net, criterion, opt, step = build("mlp", graphc, lr=0.01, momentum=0.9)
    model = graphc.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    train_step = make_step(model, criterion, opt)
    run = train_step if args.mode == "eager" else graphc.compile(train_step, backend=args.mode)
    local = args.batch // world
    rng = np.random.default_rng(rank)
    x = graphc.tensor(rng.random((local, 1, 28, 28), dtype=np.float32))
    y = graphc.tensor(rng.integers(0, 10, local))
    for _ in range(5):                       # warm up (and compile)
        run(x, y).item()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        run(x, y).item()
    seconds = time.perf_counter() - t0
    everyone = [None] * world
    dist.all_gather_object(everyone, seconds)
    slowest = max(everyone)
    grads = graphc.zeros(sum(p.numel() for p in net.parameters()))
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        dist.all_reduce(grads, op=dist.ReduceOp.AVG)
        times.append(time.perf_counter() - t)
    if rank == 0:
        print(json.dumps({"world": world, "threads": args.threads, "samples_per_s": args.steps * args.batch / slowest,
                          "step_ms": 1e3 * slowest / args.steps, "allreduce_ms": 1e3 * float(np.median(times)),
                          "grad_bytes": int(grads._value.nbytes)}), flush=True)
    dist.destroy_process_group()


def launch(args, ranks, threads):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads), "--steps",
           str(args.steps), "--batch", str(args.batch), "--mode", args.mode]
    if ranks > 1:
        cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py"] + cmd[1:]
    env = dict(os.environ, PYTHONPATH=ROOT, GRAPHC_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=128, help="global batch (each of 2 ranks takes half)")
    p.add_argument("--mode", default="eager", choices=["eager", "interpreter", "numba_cpu"])
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    rows = [("1 process x 2 threads", launch(args, 1, 2)), ("2 ranks x 1 thread", launch(args, 2, 1))]
    print(f"seed MLP, {args.mode}, global batch {args.batch}, {args.steps} timed steps (noisy on a shared machine)")
    print(f"{'configuration':<24}{'samples/s':>12}{'step ms':>10}{'allreduce ms/step':>20}")
    for name, r in rows:
        allreduce = f"{r['allreduce_ms']:.3f}" if r["world"] > 1 else "-"
        print(f"{name:<24}{r['samples_per_s']:>12,.0f}{r['step_ms']:>10.2f}{allreduce:>20}")
    print(f"(allreduce: all {rows[1][1]['grad_bytes'] / 1e6:.2f} MB of gradients, one bucket, median)")


if __name__ == "__main__":
    main()
