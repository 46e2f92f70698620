"""The numba_cuda backend on a real GPU: parity checks on the device, then seed-model step timings.

    python benchmarks/gpu_check.py              # about 3 minutes on an H100/H200; exits 2 at once without a GPU
    python benchmarks/gpu_check.py --parity     # parity only
    python benchmarks/gpu_check.py --timing     # timings only

1. Parity on the device: every kernel kind on tiny shapes against the interpreter; the seed MLP and
   CNN (batch 64, with dropout) compiled training steps against eager graphc (losses, parameters and
   grads within 1e-5 relative).
2. Timings of one training step at batch 64 (data copied in from the host every step, the loss
   copied out, as a training loop does): graphc numba_cuda with sync="step" and sync="lazy",
   graphc numba_cpu, and torch eager on CUDA when torch with CUDA is importable; with ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BUDGET_S = 280          # stop starting new timings past this, to stay under 5 minutes


def require_gpu():
    """Exit 2 with one clear line when no GPU can run the check (the simulator does not count)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0"):
        print("gpu_check: NUMBA_ENABLE_CUDASIM is set; this check is for a real GPU (unset it). "
              "The simulator checks are: python benchmarks/cuda_selftest.py kinds")
        sys.exit(2)
    from graphc.errors import BackendError
    from graphc.backends.numba_cuda.device import require_cuda
    try:
        cuda, _ = require_cuda()
    except BackendError as exc:
        print(f"gpu_check: no GPU to check on: {exc.message}")
        sys.exit(2)
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
    print(f"device: {name}, sm_{dev.compute_capability[0]}{dev.compute_capability[1]}")
    return cuda


def parity():
    import cuda_selftest as selftest   # beside this script
    failed = 0
    for argv in (["kinds"], ["mlp", "--batch", "64", "--steps", "3"],
                 ["cnn", "--batch", "64", "--steps", "2", "--dropout"]):
        t = time.perf_counter()
        print(f"--- selftest {' '.join(argv)}")
        failed += selftest.main(argv) != 0
        print(f"    ({time.perf_counter() - t:.1f}s)")
    return failed


def _batch(n, seed=0):
    rng = np.random.default_rng(seed)
    x = ((rng.random((n, 1, 28, 28)) - 0.1307) / 0.3081).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return x, y


def _time(step, warmup=3, min_s=1.0, max_steps=300):
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while n < max_steps and (time.perf_counter() - t0 < min_s or n < 5):
        step()
        n += 1
    return (time.perf_counter() - t0) / n


def time_graphc(model, batch, backend, options=None):
    import graphc
    from benchmarks.seed_models import build
    graphc.manual_seed(0)
    _, _, _, step = build(model, graphc)
    compiled = graphc.compile(step, backend=backend, options=options)
    xs, ys = _batch(batch)
    x, y = graphc.tensor(xs), graphc.tensor(ys)
    t = time.perf_counter()
    float(compiled(x, y))
    first = time.perf_counter() - t
    per_step = _time(lambda: float(compiled(x, y)))
    stats = compiled.stats()
    return per_step, first, stats


def time_torch(model, batch):
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, "torch has no CUDA"
    from benchmarks.seed_models import build
    torch.manual_seed(0)
    net, _, _, step = build(model, torch)
    net.cuda()
    # the optimizer was built before .cuda(): SGD holds the same Parameter objects, so it follows them
    xs, ys = _batch(batch)
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    per_step = _time(lambda: step(x.cuda(non_blocking=False), y.cuda()).item())
    return per_step, None


def timings(start):
    rows = []
    for model in ("mlp", "cnn"):
        batch = 64
        results = {}
        for label, backend, options in (("numba_cuda sync=step", "numba_cuda", None),
                                        ("numba_cuda sync=lazy", "numba_cuda", {"sync": "lazy"}),
                                        ("numba_cpu", "numba_cpu", None)):
            if time.perf_counter() - start > BUDGET_S:
                print(f"  (skipping {model} {label}: time budget spent)")
                continue
            per_step, first, stats = time_graphc(model, batch, backend, options)
            results[label] = per_step
            extra = ""
            if backend == "numba_cuda":
                extra = (f"  launches/step {stats.get('launches_per_step')}, copies/step "
                         f"{stats.get('h2d_per_step')} in + {stats.get('d2h_per_step')} out")
            print(f"  {model} b{batch} {label:22s} {per_step * 1e3:9.3f} ms/step  (first call {first:.1f}s){extra}")
        if time.perf_counter() - start <= BUDGET_S:
            per_step, why = time_torch(model, batch)
            if per_step is None:
                print(f"  {model} b{batch} torch eager cuda       skipped: {why}")
            else:
                results["torch eager cuda"] = per_step
                print(f"  {model} b{batch} {'torch eager cuda':22s} {per_step * 1e3:9.3f} ms/step")
        rows.append((model, results))
    print("\nratios (time of the other / time of numba_cuda sync=step; > 1 means numba_cuda is faster):")
    for model, results in rows:
        base = results.get("numba_cuda sync=step")
        if not base:
            continue
        for other in ("numba_cuda sync=lazy", "numba_cpu", "torch eager cuda"):
            if other in results:
                print(f"  {model}: {other:22s} {results[other] / base:6.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parity", action="store_true", help="only the parity checks")
    parser.add_argument("--timing", action="store_true", help="only the timings")
    args = parser.parse_args()
    start = time.perf_counter()
    require_gpu()
    failed = 0
    if not args.timing:
        failed = parity()
    if not args.parity:
        print("--- timings (batch 64, one training step)")
        timings(start)
    print(f"\ngpu_check: {'FAILED' if failed else 'ok'} in {time.perf_counter() - start:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
