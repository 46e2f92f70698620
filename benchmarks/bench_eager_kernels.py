"""Time graphc.eager_kernels on the MNIST CNN's shapes, next to torch.

Shapes are those of PyTorch's MNIST example at batch 100:
conv1 1->32 3x3 on [100,1,28,28], conv2 32->64 3x3 on [100,32,26,26],
max_pool2d(2) on [100,64,24,24].

    PYTHONPATH=. python benchmarks/bench_eager_kernels.py [--repeat 30]
        [--dtype float32|float64] [--numpy] [--no-torch]

Each function runs as a block of back-to-back calls (ours, then torch's).
On a shared 2-core machine other processes easily double a median; the
mins, and their ratio in brackets, are the steadier numbers.
"""

import argparse
import os
import time

import numpy as np

import graphc.eager_kernels as ek


def first_calls(x1, w1, gy1, x2, w2, gy2, xp):
    """Seconds of each function's first call in this process (numba JIT
    compile, or its cache load, plus one run), float32 or float64 alike."""
    s, p, k = (1, 1), (0, 0), (2, 2)
    out = {}

    def timed(name, fn):
        start = time.perf_counter()
        result = fn()
        out[name] = time.perf_counter() - start
        return result

    timed("conv2d", lambda: ek.conv2d(x2, w2, s, p))
    timed("conv2d_grad_input", lambda: ek.conv2d_grad_input(gy2, w2, (26, 26), s, p))
    timed("conv2d_grad_weight", lambda: ek.conv2d_grad_weight(gy2, x2, (3, 3), s, p))
    idx = timed("maxpool2d_argmax", lambda: ek.maxpool2d_argmax(xp, k, k, p))
    gyp = timed("maxpool2d_gather", lambda: ek.maxpool2d_gather(xp, idx))
    timed("maxpool2d_scatter", lambda: ek.maxpool2d_scatter(gyp, idx, (24, 24)))
    return out


def time_block(fn, repeat, warmup=2):
    """Seconds of `repeat` back-to-back calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def time_pairs(pairs, repeat):
    """{name: (our times, torch times)} in seconds.

    Each side runs in its own block of calls: alternating single calls made
    both sides slower, as torch's OpenMP threads and OpenBLAS's threads
    spin after each call and then fight over the cores.
    """
    times = {}
    for name, ours, theirs in pairs:
        times[name] = (time_block(ours, repeat),
                       time_block(theirs, repeat) if theirs else [])
    return times


def make_cases(dtype, seed=0):
    r = np.random.default_rng(seed)
    x1 = r.standard_normal((100, 1, 28, 28)).astype(dtype)
    w1 = (r.standard_normal((32, 1, 3, 3)) / 3).astype(dtype)
    x2 = r.standard_normal((100, 32, 26, 26)).astype(dtype)
    w2 = (r.standard_normal((64, 32, 3, 3)) / 17).astype(dtype)
    gy1 = r.standard_normal((100, 32, 26, 26)).astype(dtype)
    gy2 = r.standard_normal((100, 64, 24, 24)).astype(dtype)
    xp = r.standard_normal((100, 64, 24, 24)).astype(dtype)
    return x1, w1, gy1, x2, w2, gy2, xp


def our_calls(x1, w1, gy1, x2, w2, gy2, xp):
    s, p, k = (1, 1), (0, 0), (2, 2)
    idx = ek.maxpool2d_argmax(xp, k, k, p)
    gyp = ek.maxpool2d_gather(xp, idx)
    return {
        "conv1 forward": lambda: ek.conv2d(x1, w1, s, p),
        "conv1 grad_input": lambda: ek.conv2d_grad_input(gy1, w1, (28, 28), s, p),
        "conv1 grad_weight": lambda: ek.conv2d_grad_weight(gy1, x1, (3, 3), s, p),
        "conv2 forward": lambda: ek.conv2d(x2, w2, s, p),
        "conv2 grad_input": lambda: ek.conv2d_grad_input(gy2, w2, (26, 26), s, p),
        "conv2 grad_weight": lambda: ek.conv2d_grad_weight(gy2, x2, (3, 3), s, p),
        "pool argmax": lambda: ek.maxpool2d_argmax(xp, k, k, p),
        "pool gather": lambda: ek.maxpool2d_gather(xp, idx),
        "pool scatter": lambda: ek.maxpool2d_scatter(gyp, idx, (24, 24)),
    }


def torch_calls(x1, w1, gy1, x2, w2, gy2, xp):
    try:
        import torch
    except ImportError:
        return {}
    F = torch.nn.functional
    bw = torch.ops.aten.convolution_backward
    t = {k: torch.from_numpy(v) for k, v in dict(
        x1=x1, w1=w1, gy1=gy1, x2=x2, w2=w2, gy2=gy2, xp=xp).items()}

    def conv_bw(gy, x, w, mask):
        return lambda: bw(gy, x, w, None, [1, 1], [0, 0], [1, 1], False,
                          [0, 0], 1, mask)

    y, idx = F.max_pool2d_with_indices(t["xp"], 2)
    gy = torch.ones_like(y)
    return {
        "conv1 forward": lambda: F.conv2d(t["x1"], t["w1"]),
        "conv1 grad_input": conv_bw(t["gy1"], t["x1"], t["w1"], [True, False, False]),
        "conv1 grad_weight": conv_bw(t["gy1"], t["x1"], t["w1"], [False, True, False]),
        "conv2 forward": lambda: F.conv2d(t["x2"], t["w2"]),
        "conv2 grad_input": conv_bw(t["gy2"], t["x2"], t["w2"], [True, False, False]),
        "conv2 grad_weight": conv_bw(t["gy2"], t["x2"], t["w2"], [False, True, False]),
        # torch's forward computes values and indices in one call
        "pool argmax": lambda: F.max_pool2d_with_indices(t["xp"], 2),
        "pool gather": lambda: t["xp"].flatten(2).gather(2, idx.flatten(2)),
        "pool scatter": lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            gy, t["xp"], [2, 2], [2, 2], [0, 0], [1, 1], False, idx),
    }


# What one eager training step of the MNIST CNN calls (conv1's grad_input
# is not needed: the images need no gradient).
STEP = ["conv1 forward", "conv1 grad_weight", "conv2 forward",
        "conv2 grad_input", "conv2 grad_weight", "pool argmax",
        "pool gather", "pool scatter"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--numpy", action="store_true", help="force the numpy fallback")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    if args.numpy:
        ek.jit.USE_NUMBA = False
    print(f"numba: {'used' if ek.jit.USE_NUMBA else 'not used'} "
          f"(installed: {ek.HAVE_NUMBA}), cpus: {os.cpu_count()}, "
          f"dtype: {args.dtype}")

    arrays = make_cases(np.dtype(args.dtype))
    # First: the first numba call in a process also pays numba's one-time
    # set-up. For cold compile times point NUMBA_CACHE_DIR at an empty dir.
    print("\nfirst call (JIT compile or numba cache load, plus one run):")
    for name, sec in first_calls(*arrays).items():
        print(f"  {name:18s} {sec * 1e3:8.1f} ms")

    ours = our_calls(*arrays)
    theirs = {} if args.no_torch else torch_calls(*arrays)
    if theirs:
        import torch
        print(f"\ntorch {torch.__version__}, threads: {torch.get_num_threads()}")

    pairs = [(name, fn, theirs.get(name)) for name, fn in ours.items()]
    times = time_pairs(pairs, args.repeat)

    print(f"\nms per call, median (min) of {args.repeat}; ratio = graphc / torch"
          " of the medians (of the mins):")
    print(f"  {'':18s} {'graphc':>16s} {'torch':>16s} {'ratio':>13s}")
    step = np.zeros((2, 2))  # [graphc, torch] x [median, min]
    for name, (mine, other) in times.items():
        m = np.array([np.median(mine), min(mine)]) * 1e3
        line = f"  {name:18s} {m[0]:8.2f} ({m[1]:5.2f})"
        if other:
            o = np.array([np.median(other), min(other)]) * 1e3
            line += f" {o[0]:8.2f} ({o[1]:5.2f}) {m[0] / o[0]:6.2f} ({m[1] / o[1]:4.2f})"
        if name in STEP:
            step[0] += m
            step[1] += o if other else 0
        print(line)
    line = f"  {'training step sum':18s} {step[0, 0]:8.2f} ({step[0, 1]:5.2f})"
    if theirs:
        line += (f" {step[1, 0]:8.2f} ({step[1, 1]:5.2f}) "
                 f"{step[0, 0] / step[1, 0]:6.2f} ({step[0, 1] / step[1, 1]:4.2f})")
    print(line)


if __name__ == "__main__":
    main()
