"""`graphc bench --profile`: where a step's time goes, kernel by kernel (compiled) and op by op (eager).

    rows = profile_compiled(compiled, x, y) + profile_eager(step, x, y)
    print(format_profile(rows, machine_peaks()))

Each row: time, FLOPs, bytes moved, GFLOP/s, GB/s, and the share of this machine's measured sgemm
peak (for GEMM-like rows) or memory bandwidth (for the rest), measured once and cached on disk.
FLOPs and bytes are estimates from shapes: a GEMM or conv counts 2·M·N·K, other ops one FLOP per
element of the larger of input and output; bytes are every input read once plus the output written.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import time

import numpy as np

GEMM_OPS = ("matmul", "conv2d", "conv2d_grad_weight", "conv2d_grad_input")
VIEW_OPS = ("reshape", "permute", "broadcast_to", "squeeze", "unsqueeze", "expand", "flatten")   # no data moved


# --- cost model -------------------------------------------------------------------------------------

def op_cost(op, in_shapes, in_itemsizes, out_shape, out_itemsize, attrs):
    """(FLOPs, bytes) of one op from its shapes.   op_cost("matmul", [(64, 784), (784, 128)], [4, 4], (64, 128), 4, {})"""
    size = lambda s: int(np.prod(s)) if s else 1   # noqa: E731
    if op in VIEW_OPS:
        return 0, 0
    out_n = size(out_shape)
    nbytes = sum(size(s) * b for s, b in zip(in_shapes, in_itemsizes)) + out_n * out_itemsize
    if op == "matmul" and in_shapes and len(in_shapes[0]) >= 1:
        return 2 * out_n * in_shapes[0][-1], nbytes
    if op == "conv2d":   # y[N,O,OH,OW] from w[O,C,KH,KW]
        return 2 * out_n * size(in_shapes[1][1:]), nbytes
    if op == "conv2d_grad_input":   # gx from gy[N,O,OH,OW] and w[O,C,KH,KW]
        return 2 * size(in_shapes[0]) * size(in_shapes[1][1:]), nbytes
    if op == "conv2d_grad_weight":   # gw[O,C,KH,KW] from gy[N,O,OH,OW]
        return 2 * size(in_shapes[0]) * size(out_shape[1:]), nbytes
    return max([out_n] + [size(s) for s in in_shapes]), nbytes


def kernel_cost(kernel):
    """(FLOPs, bytes, GEMM-like?) of one fused kernel: FLOPs of its nodes, bytes of its external operands."""
    flops = 0
    for node in kernel.nodes:
        f, _ = op_cost(node.op, [v.shape for v in node.inputs], [v.dtype.itemsize for v in node.inputs],
                       node.out.shape, node.out.dtype.itemsize, node.attrs)
        flops += f
    nbytes = sum(int(np.prod(v.shape or (1,))) * v.dtype.itemsize for v in list(kernel.inputs) + list(kernel.outputs))
    return flops, nbytes, any(n.op in GEMM_OPS for n in kernel.nodes)


# --- the machine's peaks ----------------------------------------------------------------------------

def machine_peaks(cache_dir=None, threads=None):
    """{'sgemm_gflops': ..., 'bandwidth_gbs': ..., 'threads': n}: measured once per CPU model and thread count."""
    from ..cpu import cpu_info
    from ..config import settings
    from ..threads import get_num_threads
    threads = threads or get_num_threads()
    key = f"{cpu_info()['model']}|{threads}"
    path = os.path.join(cache_dir or settings.cache_dir, "machine-peaks.json")
    try:
        with open(path) as fh:
            cached = json.load(fh)
    except (OSError, ValueError):
        cached = {}
    if key not in cached:
        from threadpoolctl import threadpool_limits
        # graphc leaves BLAS at one thread (graphc.threadpool); the machine's peak is at `threads`
        with threadpool_limits(limits=threads, user_api="blas"):
            gflops = _sgemm_gflops()
        cached[key] = dict(sgemm_gflops=gflops, bandwidth_gbs=_bandwidth_gbs(), threads=threads)
        try:
            from ..fileio import write_atomic
            write_atomic(path, json.dumps(cached, indent=1))
        except OSError:   # a read-only cache: measure again next time
            pass
    return cached[key]


def _best_seconds(fn, reps):
    fn()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _sgemm_gflops(n=2048, reps=5):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b, c = a.copy(), np.empty_like(a)
    return 2 * n ** 3 / _best_seconds(lambda: np.matmul(a, b, out=c), reps) / 1e9


def _bandwidth_gbs(n=1 << 24, reps=5):
    a = np.ones(n, np.float32)
    b = np.empty_like(a)
    return 2 * a.nbytes / _best_seconds(lambda: np.copyto(b, a), reps) / 1e9   # read a + write b


# --- profiling ---------------------------------------------------------------------------------------

def profile_compiled(compiled, *args, rounds=5):
    """Rows for each kernel of a compiled step (numba_cpu backend), after one call of compiled(*args)."""
    compiled(*args)
    entry = compiled.last
    runner = entry.run_graph
    if not hasattr(runner, "emitter"):
        return []
    captured = []
    entry.run_graph = lambda inputs: (captured.append(inputs), runner(inputs))[1]
    try:
        compiled(*args)
    finally:
        entry.run_graph = runner
    from ..backends.numba_cpu.profile import profile_kernels
    rows = []
    for name, kernel, seconds in profile_kernels(runner, captured[0], rounds):
        flops, nbytes, gemm = kernel_cost(kernel) if kernel is not None else (0, 0, False)
        rows.append(dict(part="compiled", name=name, seconds=seconds, flops=flops, bytes=nbytes, gemm=gemm))
    return rows


def profile_eager(step, *args, rounds=5):
    """Rows for each op of an eager step (forward and backward), summed per op name and shapes, median per step."""
    from ..ops import OPS
    per_round = []
    totals = {}

    def timed(op, impl):
        def run(*values, **attrs):
            t = time.perf_counter()
            out = impl(*values, **attrs)
            dt = time.perf_counter() - t
            out_arr = np.asarray(out)
            key = (op.name, tuple(tuple(np.shape(v)) for v in values))
            row = totals.setdefault(key, dict(part="eager", name=f"{op.name} {_shapes_text(values)}", seconds=0.0,
                                              calls=0, gemm=op.name in GEMM_OPS, cost=None))
            row["seconds"] += dt
            row["calls"] += 1
            if row["cost"] is None:
                row["cost"] = op_cost(op.name, [np.shape(v) for v in values],
                                      [np.asarray(v).dtype.itemsize for v in values], out_arr.shape,
                                      out_arr.dtype.itemsize, attrs)
            return out
        return run

    saved = {name: op.impl for name, op in OPS.items()}
    for name, op in OPS.items():
        op.impl = timed(op, saved[name])
    try:
        step(*args)   # warm-up (not recorded)
        totals.clear()
        for _ in range(rounds):
            before = {k: r["seconds"] for k, r in totals.items()}
            step(*args).item()
            per_round.append({k: r["seconds"] - before.get(k, 0.0) for k, r in totals.items()})
    finally:
        for name, op in OPS.items():
            op.impl = saved[name]
    rows = []
    for key, r in totals.items():
        calls = r["calls"] // rounds or 1
        flops, nbytes = r["cost"]
        rows.append(dict(part="eager", name=r["name"] + (f" x{calls}" if calls > 1 else ""),
                         seconds=statistics.median(p.get(key, 0.0) for p in per_round),
                         flops=flops * calls, bytes=nbytes * calls, gemm=r["gemm"]))
    return rows


def _shapes_text(values):
    return ",".join("x".join(map(str, np.shape(v))) or "()" for v in values)


# --- the table -----------------------------------------------------------------------------------------

def format_profile(rows, peaks, title, step_seconds=None):
    """An aligned table sorted by time, with the total and the share of the machine's peak."""
    rows = sorted(rows, key=lambda r: -r["seconds"])
    total = sum(r["seconds"] for r in rows)
    lines = [f"{title}: {len(rows)} rows, sum {total * 1e3:.2f} ms"
             + (f" (the step itself: {step_seconds * 1e3:.2f} ms)" if step_seconds else ""),
             f"  machine: sgemm peak {peaks['sgemm_gflops']:.0f} GFLOP/s, memory bandwidth "
             f"{peaks['bandwidth_gbs']:.1f} GB/s (measured at {peaks['threads']} threads)",
             f"  {'ms':>8} {'share':>6} {'GFLOP':>8} {'MB':>8} {'GFLOP/s':>8} {'GB/s':>7} {'% peak':>7}  kernel / op"]
    for r in rows:
        s = max(r["seconds"], 1e-12)
        gflops, gbs = r["flops"] / s / 1e9, r["bytes"] / s / 1e9
        peak = 100 * (gflops / peaks["sgemm_gflops"] if r["gemm"] else gbs / peaks["bandwidth_gbs"])
        lines.append(f"  {r['seconds'] * 1e3:8.3f} {100 * r['seconds'] / max(total, 1e-12):5.1f}% "
                     f"{r['flops'] / 1e9:8.3f} {r['bytes'] / 1e6:8.2f} {gflops:8.1f} {gbs:7.1f} "
                     f"{peak:6.1f}{'F' if r['gemm'] else 'B'}  {r['name']}")
    lines.append("  % peak: F = of the sgemm peak (GEMM and conv rows), B = of the memory bandwidth (the rest)")
    return "\n".join(lines)
