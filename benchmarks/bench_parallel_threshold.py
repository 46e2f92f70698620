"""Where a prange loop starts to beat a serial one on this machine: the size threshold for parallel kernels.

    python benchmarks/bench_parallel_threshold.py [--busy]

Times a fused elementwise kernel (y = relu(x * a + b)) and a row reduction, serial vs prange, at
sizes 2^10 .. 2^22 float32 elements, with graphc's threading settings (passive OpenMP wait).
Prints the median µs of each and the smallest size from which prange wins at every larger size:
the value mode="max-autotune" uses (graphc.frontend.compile: parallel_min_elements 2**17).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc  # noqa: E402,F401  (threading layer and wait policy, before numba loads)
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from graphc.cpu import BusyCore, cpu_description  # noqa: E402


# Each kernel's source, with LOOP standing for range (serial) or prange (parallel).
ELEMENTWISE = """
def kernel(x, y):
    for i in LOOP(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[i, j] * np.float32(1.5) + np.float32(0.25)
            y[i, j] = v if v > 0 else np.float32(0)
"""

ROWSUM = """
def kernel(x, y):
    for i in LOOP(x.shape[0]):
        acc = np.float32(0)
        for j in range(x.shape[1]):
            acc += x[i, j]
        y[i] = acc
"""


def _pair(source):
    """(serial, parallel) njit kernels from one source."""
    made = []
    for loop, parallel in (("range", False), ("prange", True)):
        scope = {"np": np, "prange": prange}
        exec(source.replace("LOOP", loop), scope)   # noqa: S102  (our own source text above)
        made.append(njit(fastmath=True, parallel=parallel)(scope["kernel"]))
    return made


KERNELS = {"elementwise": (*_pair(ELEMENTWISE), 2), "row sum": (*_pair(ROWSUM), 1)}


def _time(fn, args, reps):
    fn(*args)
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def measure(busy=False, reps=200):
    """{kernel: [(size, serial µs, parallel µs)]} and {kernel: threshold}."""
    results, thresholds = {}, {}
    with BusyCore(enabled=busy):
        for name, (serial, parallel, out_rank) in KERNELS.items():
            rows = []
            for log2 in range(10, 23):
                n = 1 << log2
                x = np.random.default_rng(0).random((max(1, n // 256), 256), dtype=np.float32)
                y = np.empty_like(x) if out_rank == 2 else np.empty(x.shape[0], np.float32)
                r = max(5, reps >> max(0, log2 - 14))
                rows.append((n, _time(serial, (x, y), r), _time(parallel, (x, y), r)))
            results[name] = rows
            wins = [n for n, s, p in rows if p < s]
            above = [n for n in wins if all(p < s for m, s, p in rows if m >= n)]
            thresholds[name] = min(above) if above else None
    return results, thresholds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", action="store_true", help="with a busy-loop process on one core")
    args = p.parse_args()
    print(cpu_description(), f"| numba threads {graphc.get_num_threads()}", "| busy core" if args.busy else "")
    results, thresholds = measure(args.busy)
    for name, rows in results.items():
        print(f"\n{name}: elements, serial µs, prange µs, prange speed-up")
        for n, s, par in rows:
            print(f"  {n:>9,}  {s:10.1f}  {par:10.1f}  {s / par:5.2f}x")
        t = thresholds[name]
        print(f"  prange wins from {t:,} elements on" if t else "  prange never wins at every larger size")


if __name__ == "__main__":
    main()
