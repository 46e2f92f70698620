"""Parallel numba loops alternating with BLAS GEMMs, under each threading layer and wait policy.

    python benchmarks/bench_wait_policy.py [--busy]     # --busy: a busy-loop process holds one core

Each configuration runs in a fresh process (the layer and the policies are read when they load).
One round = a prange kernel over 1M float32 + a 6400x288 @ 288x64 sgemm through numpy's OpenBLAS
called from @njit, the pattern of a compiled step.  Prints median and p90 of the round, in ms.
"""
import argparse
import json
import os
import subprocess
import sys

CONFIGS = {
    "omp, active wait (OpenMP default)": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "ACTIVE"},
    "omp, passive wait": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "PASSIVE"},
    "omp, GOMP_SPINCOUNT=10000": {"NUMBA_THREADING_LAYER": "omp", "GOMP_SPINCOUNT": "10000"},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
}

CHILD = r"""
import json, time, numpy as np
from numba import njit, prange
from graphc.backends.numba_cpu.blas import gemm
import numba
@njit(parallel=True, fastmath=True, cache=False)
def scale(x, o):
    for i in prange(x.shape[0]):
        o[i] = x[i] * 2.0 + 1.0
x = np.ones(1 << 20, np.float32); o = np.empty_like(x)
a = np.random.rand(6400, 288).astype(np.float32); b = np.random.rand(288, 64).astype(np.float32)
c = np.empty((6400, 64), np.float32)
def one():
    scale(x, o); gemm(a, b, c); scale(x, o)
for _ in range(5): one()
ts = []
for _ in range(ROUNDS):
    t = time.perf_counter(); one(); ts.append(time.perf_counter() - t)
ts.sort()
print(json.dumps({"median": ts[len(ts) // 2] * 1e3, "p90": ts[int(len(ts) * 0.9)] * 1e3,
                  "layer": numba.threading_layer()}))
"""


def run(config, rounds):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(config)
    env["GRAPHC_THREADING"] = "as-is"   # graphc must not override the configuration under test
    out = subprocess.run([sys.executable, "-c", CHILD.replace("ROUNDS", str(rounds))], env=env,
                         capture_output=True, text=True, timeout=600)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": out.stderr.strip().splitlines()[-1:]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", action="store_true", help="run a busy-loop process on one core meanwhile")
    p.add_argument("--rounds", type=int, default=60)
    args = p.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from graphc.cpu import BusyCore, cpu_description
    print(cpu_description())
    with BusyCore(enabled=args.busy):
        for name, config in CONFIGS.items():
            r = run(config, args.rounds)
            if "error" in r:
                print(f"{name:40s} failed: {r['error']}")
            else:
                print(f"{name:40s} median {r['median']:7.2f} ms   p90 {r['p90']:7.2f} ms   ({r['layer']})")


if __name__ == "__main__":
    main()
