"""Step time at 1, 2, ... all threads: graphc compiled, graphc eager and torch eager, quiet and with a busy core.

    python benchmarks/bench_scaling.py [--model cnn] [--steps 10] [--no-busy]

For each thread count every contestant gets that budget (graphc.set_num_threads, torch.set_num_threads)
and the steps run interleaved; then the same again with a busy-loop process on one core.  Prints
median and p90 ms per step, and p90/median (how badly contention hurts).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc  # noqa: E402
from graphc.cli.bench import _graphc_contestants, _import_torch, _torch_runner, make_batch  # noqa: E402
from graphc.cli.common import quiet_numba_warnings, time_interleaved  # noqa: E402
from graphc.cli.models import DEFAULTS  # noqa: E402
from graphc.cpu import BusyCore, cpu_description, usable_cores  # noqa: E402


def _stats(samples):
    s = sorted(samples)
    return s[len(s) // 2] * 1e3, s[int(0.9 * (len(s) - 1))] * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("mlp", "cnn"), default="cnn")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--no-busy", action="store_true", help="skip the runs with a busy core")
    args = p.parse_args()
    quiet_numba_warnings()
    print(cpu_description())
    batch = DEFAULTS[args.model]["batch_size"]
    x_np, y_np = make_batch(batch)
    x, y = graphc.tensor(x_np), graphc.tensor(y_np)
    net_e, step_e, _, compiled = _graphc_contestants(args.model, batch, "numba_cpu")
    compiled(x, y).item()   # compile outside the timing
    runners = {"graphc compiled": lambda: compiled(x, y).item(), "graphc eager": lambda: step_e(x, y).item()}
    torch = _import_torch()
    if torch is not None:
        runners["torch eager"] = _torch_runner(torch, args.model, net_e, x_np, y_np)
    print(f"{args.model}, batch {batch}, median / p90 ms per step over {args.steps} interleaved rounds")
    print(f"{'threads':>7} {'busy':>5}  " + "  ".join(f"{name:>26}" for name in runners))
    for busy in (False,) if args.no_busy else (False, True):
        for n in range(1, usable_cores() + 1):
            graphc.set_num_threads(n)
            if torch is not None:
                torch.set_num_threads(n)
            with BusyCore(enabled=busy):
                times = time_interleaved(runners, args.steps, warmup=2)
            cells = []
            for name in runners:
                med, p90 = _stats(times[name])
                cells.append(f"{med:8.2f} / {p90:8.2f} ({p90 / med:4.2f})")
            print(f"{n:>7} {'yes' if busy else 'no':>5}  " + "  ".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
