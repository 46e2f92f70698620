"""Per-op overhead of eager mode: µs per op (add, matmul, relu; forward and backward) beside torch's.

    python benchmarks/bench_ops.py [--size 64] [--profile]

Small operands on purpose (default 64x64 float32): the time is then mostly dispatch, Tensor
creation and the autograd tape, not arithmetic.  --profile prints a cProfile of the graphc loop.
"""
import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import graphc  # noqa: E402
from graphc.cpu import cpu_description  # noqa: E402


def _us_per_call(fn, reps):
    fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best * 1e6


def cases(lib, a_np, b_np):
    """{name: callable} of forward and forward+backward ops in library `lib` (graphc or torch)."""
    a = lib.tensor(a_np.copy(), requires_grad=True)
    b = lib.tensor(b_np.copy(), requires_grad=True)
    a0, b0 = lib.tensor(a_np.copy()), lib.tensor(b_np.copy())

    def backward(make):
        def run():
            a.grad = None
            b.grad = None
            make().sum().backward()
        return run

    return {
        "add forward": lambda: a0 + b0,
        "matmul forward": lambda: a0 @ b0,
        "relu forward": lambda: lib.relu(a0),
        "add fwd+bwd": backward(lambda: a + b),
        "matmul fwd+bwd": backward(lambda: a @ b),
        "relu fwd+bwd": backward(lambda: lib.relu(a)),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--profile", action="store_true", help="cProfile graphc's loops (dispatch, Tensor, tape)")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((args.size, args.size)).astype(np.float32)
    b_np = rng.standard_normal((args.size, args.size)).astype(np.float32)
    libs = {"graphc": graphc}
    try:
        import torch
        torch.set_num_threads(graphc.get_num_threads())
        libs["torch"] = torch
    except ImportError:
        pass
    print(cpu_description(), f"| threads {graphc.get_num_threads()} | operands {args.size}x{args.size} float32")
    results = {name: {k: _us_per_call(fn, args.reps) for k, fn in cases(lib, a_np, b_np).items()}
               for name, lib in libs.items()}
    print(f"{'op':18} " + " ".join(f"{n + ' us':>10}" for n in libs) + ("   graphc/torch" if "torch" in libs else ""))
    for op in results["graphc"]:
        line = f"{op:18} " + " ".join(f"{results[n][op]:10.2f}" for n in libs)
        if "torch" in libs:
            line += f"   {results['graphc'][op] / results['torch'][op]:10.2f}x"
        print(line)
    if args.profile:
        runs = cases(graphc, a_np, b_np)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.reps):
            runs["add fwd+bwd"]()
            runs["matmul fwd+bwd"]()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
