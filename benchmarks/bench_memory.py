"""Steady-state memory of a compiled training step: 1000 steps, memory sampled every 100.

    python benchmarks/bench_memory.py [--model mlp|cnn] [--steps 1000]

Prints the process RSS and the bytes Python and numpy allocated and did not free (tracemalloc) after each
block of steps, and the ratio last/first: a compiled step that reuses its planned buffers keeps
both flat; a step that allocated its activations would grow tracemalloc's count per step.
"""
import argparse
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import graphc  # noqa: E402
from seed_models import build  # noqa: E402


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    batch = 64 if args.model == "mlp" else 100
    graphc.manual_seed(0)
    net, criterion, optimizer, step = build(args.model, graphc, momentum=0.9)
    compiled = graphc.compile(step)
    x, y = graphc.randn(batch, 1, 28, 28), graphc.randint(0, 10, (batch,))
    for _ in range(3):                       # compile and settle
        compiled(x, y).item()
    tracemalloc.start()
    base_traced, base_rss = tracemalloc.get_traced_memory()[0], rss_mib()
    print(f"{'steps':>6} {'rss MiB':>9} {'numpy bytes held':>17} {'allocations/step':>17}")
    block = max(1, args.steps // 10)
    for done in range(block, args.steps + 1, block):
        snap0 = tracemalloc.take_snapshot()
        for _ in range(block):
            compiled(x, y).item()
        snap1 = tracemalloc.take_snapshot()
        grown = sum(s.count_diff for s in snap1.compare_to(snap0, "filename") if s.count_diff > 0)
        traced = tracemalloc.get_traced_memory()[0] - base_traced
        print(f"{done:>6} {rss_mib():>9.1f} {traced:>17,d} {grown / block:>17.2f}")
    print(f"rss ratio last/first: {rss_mib() / base_rss:.3f}   compiles: {compiled.stats()['compiles']}")


if __name__ == "__main__":
    main()
