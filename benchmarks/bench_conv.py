"""Conv formulations of the seed CNN's layers, measured: which is fastest for each shape, and its share of peak.

    python benchmarks/bench_conv.py [--threads N]

Candidates (forward, float32, NCHW):
  host      graphc's eager kernel: numba im2col per chunk + numpy's matmul from Python (today's compiled path)
  njit      the same loop inside one @njit function, the GEMM through numpy's OpenBLAS (blas.gemm)
  split     the batch split across threads, one half per thread, each GEMM on one BLAS thread
  direct    a direct loop nest (for C_in = 1, where im2col's K = 9 GEMM is skinny)
Prints ms (median), GFLOP/s, and the share of the sgemm peak measured at the same thread count.
"""
import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import graphc  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from graphc.backends.numba_cpu.blas import gemm  # noqa: E402
from graphc.cli.profile import _sgemm_gflops  # noqa: E402
from graphc.cpu import cpu_description  # noqa: E402
from graphc.eager_kernels import conv as eager_conv  # noqa: E402
from graphc.eager_kernels.conv import _im2col_nb  # noqa: E402
from graphc.threads import _threads_local  # noqa: E402

SHAPES = {"conv1 (1->32, 28x28)": ((100, 1, 28, 28), (32, 1, 3, 3)),
          "conv2 (32->64, 26x26)": ((100, 32, 26, 26), (64, 32, 3, 3))}


@njit(nogil=True, cache=True)
def conv_njit(x, w2, y3, cols, o, nb, oh, ow):
    """Valid 3x3 stride-1 conv of x[n0:n0+N] in chunks of nb images: im2col + one GEMM per chunk."""
    n, p = x.shape[0], oh * ow
    for n0 in range(0, n, nb):
        _im2col_nb(x, n0, nb, 3, 3, 1, 1, 0, 0, oh, ow, cols)
        gemm(w2, cols, o)
        for b in range(nb):
            for oc in range(o.shape[0]):
                for q in range(p):
                    y3[n0 + b, oc, q] = o[oc, b * p + q]


@njit(nogil=True, cache=True, fastmath=True)
def conv_direct_c1(x, w, y):
    """Direct 3x3 valid conv for one input channel: y[n, o] = sum of 9 shifted, scaled input planes."""
    n_img, n_out, oh_n, ow_n = y.shape
    for n in range(n_img):
        for o in range(n_out):
            for oh in range(oh_n):
                for ow in range(ow_n):
                    y[n, o, oh, ow] = 0
            for i in range(3):
                for j in range(3):
                    wij = w[o, 0, i, j]
                    for oh in range(oh_n):
                        for ow in range(ow_n):
                            y[n, o, oh, ow] += wij * x[n, 0, oh + i, ow + j]


def _median_ms(fn, reps=7):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def candidates(x, w, threads):
    n, c, h, wd = x.shape
    o = w.shape[0]
    oh, ow = h - 2, wd - 2
    p, k = oh * ow, c * 9
    nb = max(d for d in range(1, n + 1) if n % d == 0 and d * (k + o) * p * 4 <= (4 << 20)) if k * p * 4 <= (4 << 20) else 1
    w2 = w.reshape(o, k)
    y = np.empty((n, o, p), np.float32)

    def njit_run():
        conv_njit(x, w2, y, np.empty((k, nb * p), np.float32), np.empty((o, nb * p), np.float32), nb, oh, ow)

    halves = [(slice(i * n // threads, (i + 1) * n // threads)) for i in range(threads)]
    scratch = [(np.empty((k, nb * p), np.float32), np.empty((o, nb * p), np.float32)) for _ in halves]
    setter = _threads_local()

    def split_run():
        def part(i):
            before = setter(1) if setter else None
            conv_njit(x[halves[i]], w2, y[halves[i]], scratch[i][0], scratch[i][1], nb, oh, ow)
            if setter:
                setter(before)
        ts = [threading.Thread(target=part, args=(i,)) for i in range(len(halves))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    out = {"host": lambda: eager_conv.conv2d(x, w, (1, 1), (0, 0)), "njit": njit_run}
    out["host"].result = out["njit"].result = split_run.result = lambda: y.reshape(n, o, oh, ow)
    if threads > 1 and n % threads == 0 and n // threads % nb == 0:
        out["split"] = split_run
    if c == 1:
        y4 = np.empty((n, o, oh, ow), np.float32)
        out["direct"] = lambda: conv_direct_c1(x, w, y4)
        out["direct"].result = lambda: y4
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=graphc.get_num_threads())
    args = p.parse_args()
    graphc.set_num_threads(args.threads)
    peak = _sgemm_gflops()
    print(cpu_description(), f"| threads {args.threads} | sgemm peak {peak:.0f} GFLOP/s (2048^2, measured now)")
    rng = np.random.default_rng(0)
    for name, (xs, ws) in SHAPES.items():
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        ref = eager_conv.conv2d(x, w, (1, 1), (0, 0))
        flops = 2 * ref.size * ws[1] * ws[2] * ws[3]
        print(f"\n{name}: {flops / 1e9:.2f} GFLOP per forward")
        for cand, fn in candidates(x, w, args.threads).items():
            ms = _median_ms(fn)
            if cand != "host":   # every candidate checked against the eager kernel
                np.testing.assert_allclose(fn.result(), ref, rtol=1e-4, atol=1e-4)
            print(f"  {cand:8s} {ms:8.2f} ms  {flops / ms / 1e6:7.1f} GFLOP/s  {100 * flops / ms / 1e6 / peak:5.1f}% of peak")


if __name__ == "__main__":
    main()
