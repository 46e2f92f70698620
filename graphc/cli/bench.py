"""Time one training step of a seed model: graphc eager, graphc compiled, and torch eager, side by side.

A step is what the seed programs do per batch: zero_grad, forward, loss, backward, SGD step,
loss.item(). Every contestant gets its own copy of the same initial weights and the same batch:
random tensors of MNIST's shape (uniform [0, 1) images like ToTensor's, labels 0-9), so no data
loading is timed. The steps run interleaved, one of each contestant per round, so that machine
noise (other processes, CPU clocks) falls on all of them alike; the table gives the median and
the minimum over the timed rounds, after --warmup untimed ones.

Compile times: "cold" is the compiled step's first call in this process (tracing, passes, code
generation and numba; the kernel cache state is shown: `miss` is a true cold compile, `hit`
means an earlier run left machine code in the cache, see --fresh-cache); "warm" is the first
call of the same step compiled again in a fresh subprocess, which finds every kernel in the
on-disk cache (GRAPHC_CACHE_DIR).  torch eager runs when torch is importable.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from ..threads import default_num_threads
from .common import (add_backend_option, add_threads_option, call_as_user, check_backend, compile_seconds, median_ms,
                     non_negative_int, positive_int, quiet_numba_warnings, set_threads, time_interleaved)
from .models import DEFAULTS, MODELS, build

NAME = "bench"
HELP = "time a training step: graphc eager vs compiled vs torch eager"
DEFAULT_STEPS = {"mlp": 50, "cnn": 10}
PROBE_TIMEOUT_S = 600


def add_arguments(p):
    p.add_argument("--model", choices=MODELS + ("all",), default="mlp", metavar="{mlp,cnn,all}",
                   help="which seed model to time (all: both, one after the other)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="B",
                   help="batch size; default: the seed's (mlp 64, cnn 100)")
    p.add_argument("--steps", type=positive_int, default=None, metavar="N",
                   help="timed rounds (one step of each contestant per round); default: mlp 50, cnn 10")
    p.add_argument("--warmup", type=non_negative_int, default=2, metavar="N", help="untimed rounds first")
    add_backend_option(p, help_text="graphc.compile backend of the compiled contestant")
    p.add_argument("--no-torch", action="store_true", help="leave torch out even when it is installed")
    p.add_argument("--no-warm", action="store_true",
                   help="skip the warm-compile probe (a subprocess that compiles the step again from the cache)")
    p.add_argument("--fresh-cache", action="store_true",
                   help="compile into an empty temporary kernel cache, so that 'cold' is a true cold compile")
    add_threads_option(p)
    p.add_argument("--busy", action="store_true",
                   help="time with a busy-loop process on one core (contention); --model all adds such a pass itself")
    p.add_argument("--profile", action="store_true",
                   help="also list each kernel of the compiled step and each op of the eager step: time, FLOPs, "
                        "bytes, GFLOP/s, GB/s and the share of this machine's measured sgemm peak or bandwidth")
    p.add_argument("--quiet", action="store_true", help="no progress notes on stderr")
    # Internal: the subprocess behind the "warm" column.  Prints one JSON line and exits.
    p.add_argument("--_warm-probe", dest="warm_probe", action="store_true", help=argparse.SUPPRESS)


def run(args):
    check_backend(args.backend)
    quiet_numba_warnings()
    args.threads = args.threads or default_num_threads()
    set_threads(args.threads)
    models = MODELS if args.model == "all" else (args.model,)
    if args.warm_probe:
        return _warm_probe(args, models[0])
    torch = None if args.no_torch else _import_torch()
    fresh = tempfile.mkdtemp(prefix="graphc-bench-cache-") if args.fresh_cache else None
    from ..cpu import BusyCore, cpu_description
    from ..threads import blas_pools
    print(cpu_description())
    try:
        first_rows = None
        for n, (label, threads, busy) in enumerate(_passes(args)):
            set_threads(threads)
            if torch is not None:
                torch.set_num_threads(threads)   # the same thread budget for every contestant
            rows = []
            with BusyCore(enabled=busy):
                for model in models:
                    rows.extend(measure(model, args.batch_size or DEFAULTS[model]["batch_size"],
                                        args.steps or DEFAULT_STEPS[model], args.warmup, args.backend, torch,
                                        warm=not args.no_warm and n == 0, cache_dir=fresh, quiet=args.quiet))
            first_rows = first_rows or rows
            print(f"\n== {label} ==")
            print(format_table(rows, torch_note=_torch_note(torch, args.no_torch)))
            print("  thread pools: " + ", ".join(f"{lib} ({api}) {k}" for lib, api, k in blas_pools()))
    finally:
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)
    if args.profile:
        set_threads(args.threads)
        for model in models:
            print()
            print(profile_model(model, args.batch_size or DEFAULTS[model]["batch_size"], args.backend,
                                {r["runner"]: r["median_ms"] / 1e3 for r in first_rows if r["model"] == model}))
    return 0


def _passes(args):
    """(label, threads, busy core?) of each timed pass: --model all adds one thread and a busy core."""
    main = (f"{args.threads} thread{'s' if args.threads != 1 else ''}" + (", busy core" if args.busy else ""),
            args.threads, args.busy)
    passes = [main]
    if args.model == "all" and not args.busy:
        if args.threads > 1:
            passes.append(("1 thread each", 1, False))
        passes.append((f"{args.threads} threads, a busy-loop process on one core", args.threads, True))
    return passes


def profile_model(model, batch_size, backend, step_seconds):
    """The --profile tables of one model: compiled kernels, then eager ops."""
    import graphc
    from .profile import format_profile, machine_peaks, profile_compiled, profile_eager
    peaks = machine_peaks()
    x_np, y_np = make_batch(batch_size)
    x, y = graphc.tensor(x_np), graphc.tensor(y_np)
    _, step_e, _, compiled = _graphc_contestants(model, batch_size, backend)
    compiled_s = next((s for name, s in step_seconds.items() if name.startswith("graphc compiled")), None)
    parts = [format_profile(profile_compiled(compiled, x, y), peaks, f"{model}: compiled step ({backend}), per kernel",
                            compiled_s),
             format_profile(profile_eager(step_e, x, y), peaks, f"{model}: eager step, per op (forward and backward)",
                            step_seconds.get("graphc eager"))]
    return "\n\n".join(parts)


def _import_torch():
    try:
        import torch
    except Exception:   # not installed, or a broken install: either way the row is left out
        return None
    return torch


def _torch_note(torch, disabled):
    if disabled:
        return "torch eager: left out (--no-torch); threads: BLAS and numba as set by --threads"
    if torch is None:
        return "torch eager: not measured (torch is not installed); threads: BLAS and numba as set by --threads"
    return (f"torch {torch.__version__} eager; threads: torch {torch.get_num_threads()}, "
            f"BLAS and numba as set by --threads")


# --- measuring -------------------------------------------------------------------------------------

def make_batch(batch_size, seed=0):
    """The one batch every contestant trains on: uniform [0, 1) images of MNIST's shape, labels 0-9."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.random((batch_size, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=batch_size, dtype=np.int64)
    return x, y


def _graphc_contestants(model, batch_size, backend):
    import graphc
    d = DEFAULTS[model]
    graphc.manual_seed(0)
    net_e, _, _, step_e = build(model, graphc, lr=d["lr"], momentum=d["momentum"])
    net_c, _, _, step_c = build(model, graphc, lr=d["lr"], momentum=d["momentum"])
    net_c.load_state_dict(net_e.state_dict())
    return net_e, step_e, step_c, graphc.compile(step_c, backend=backend)


def measure(model, batch_size, steps, warmup, backend, torch=None, warm=True, cache_dir=None, quiet=False):
    """Rows of the table for one model: graphc eager, graphc compiled, torch eager (when given)."""
    import graphc
    from ..config import override
    x_np, y_np = make_batch(batch_size)
    x, y = graphc.tensor(x_np), graphc.tensor(y_np)
    net_e, step_e, _, compiled = _graphc_contestants(model, batch_size, backend)
    _say(quiet, f"{model}: compiling the step with {backend} (first call)...")
    with override(cache_dir=cache_dir) if cache_dir else contextlib.nullcontext():
        t = time.perf_counter()
        call_as_user(compiled, x, y).item()
        cold_s = time.perf_counter() - t
    stats = compiled.stats()
    runners = {"graphc eager": lambda: step_e(x, y).item(),
               f"graphc compiled ({backend})": lambda: compiled(x, y).item()}
    if torch is not None:
        runners["torch eager"] = _torch_runner(torch, model, net_e, x_np, y_np)
    _say(quiet, f"{model}: timing {steps} interleaved rounds of {', '.join(runners)}...")
    times = time_interleaved(runners, steps, warmup)
    warm_s = warm_cache = None
    if warm:
        _say(quiet, f"{model}: compiling again in a fresh process (warm cache)...")
        warm_s, warm_cache = _run_warm_probe(model, batch_size, backend, cache_dir)
    rows = []
    for name, samples in times.items():
        row = {"model": model, "batch": batch_size, "runner": name, "median_ms": median_ms(samples),
               "min_ms": min(samples) * 1e3, "steps": len(samples),
               "p90_ms": sorted(samples)[int(0.9 * (len(samples) - 1))] * 1e3}
        if name.startswith("graphc compiled"):
            row.update(cold_s=cold_s, cold_cache=stats.get("cache"), compile_s=compile_seconds(stats),
                       warm_s=warm_s, warm_cache=warm_cache, recompiles=len(stats.get("recompiles", [])))
        rows.append(row)
    return rows


def _torch_runner(torch, model, graphc_net, x_np, y_np):
    d = DEFAULTS[model]
    torch.manual_seed(0)
    net, _, _, step = build(model, torch, lr=d["lr"], momentum=d["momentum"])
    with torch.no_grad():   # the same initial weights as graphc's contestants
        theirs = net.state_dict()
        for name, value in graphc_net.state_dict().items():
            theirs[name].copy_(torch.from_numpy(value.numpy().copy()))
    x, y = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())
    return lambda: step(x, y).item()


def _say(quiet, text):
    if not quiet:
        print(f"graphc bench: {text}", file=sys.stderr, flush=True)


# --- the warm-compile probe ----------------------------------------------------------------------

def _run_warm_probe(model, batch_size, backend, cache_dir):
    """(seconds of the first call, cache state) of the same step compiled in a fresh process, or (None, why)."""
    env = dict(os.environ)
    if cache_dir:
        env["GRAPHC_CACHE_DIR"] = cache_dir
    else:
        from ..config import settings
        env["GRAPHC_CACHE_DIR"] = settings.cache_dir
    cmd = [sys.executable, "-m", "graphc", "bench", "--_warm-probe", "--model", model,
           "--batch-size", str(batch_size), "--backend", backend]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"probe failed: {type(exc).__name__}"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                data = json.loads(line)
                return data["first_call_s"], data.get("cache")
            except (ValueError, KeyError):
                break
    return None, f"probe failed (exit {proc.returncode})"


def _warm_probe(args, model):
    import graphc
    batch_size = args.batch_size or DEFAULTS[model]["batch_size"]
    x_np, y_np = make_batch(batch_size)
    x, y = graphc.tensor(x_np), graphc.tensor(y_np)
    _, _, _, compiled = _graphc_contestants(model, batch_size, args.backend)
    t = time.perf_counter()
    call_as_user(compiled, x, y).item()
    first = time.perf_counter() - t
    stats = compiled.stats()
    print(json.dumps({"first_call_s": first, "compile_s": compile_seconds(stats), "cache": stats.get("cache")}))
    return 0


# --- the table -------------------------------------------------------------------------------------

def _fmt_compile(seconds, cache):
    if seconds is None:
        return cache or "-"
    text = f"{seconds:.2f} s"
    return f"{text} ({cache})" if cache in ("hit", "miss") else text


def format_table(rows, torch_note=""):
    """The rows as an aligned text table, with the ratios to torch eager and to graphc eager."""
    headers = ["model", "batch", "runner", "ms/step", "min ms", "p90/median", "samples/s", "speed vs torch", "vs graphc eager",
               "compile cold", "compile warm"]
    table = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        torch_ms = next((r["median_ms"] for r in mine if r["runner"] == "torch eager"), None)
        eager_ms = next((r["median_ms"] for r in mine if r["runner"] == "graphc eager"), None)
        for r in mine:
            compiled = "cold_s" in r
            table.append([r["model"], str(r["batch"]), r["runner"], f"{r['median_ms']:.2f}", f"{r['min_ms']:.2f}",
                          f"{r['p90_ms'] / r['median_ms']:.2f}",
                          f"{r['batch'] / (r['median_ms'] / 1e3):,.0f}",
                          f"{torch_ms / r['median_ms']:.2f}x" if torch_ms else "-",
                          f"{eager_ms / r['median_ms']:.2f}x" if eager_ms else "-",
                          _fmt_compile(r.get("cold_s"), r.get("cold_cache")) if compiled else "-",
                          _fmt_compile(r.get("warm_s"), r.get("warm_cache")) if compiled else "-"])
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)]
    left = {0, 2}

    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    steps = sorted({r["steps"] for r in rows})
    out = [f"one training step = zero_grad, forward, loss, backward, SGD step, loss.item(); random inputs of "
           f"MNIST shape; median of {'/'.join(map(str, steps))} interleaved rounds",
           line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in table)
    notes = ["speed vs X = X's ms/step divided by this row's (above 1: faster than X)",
             "compile cold: first call in this process (kernel cache miss = a true cold compile); "
             "warm: first call in a fresh process with the on-disk cache"]
    if torch_note:
        notes.append(torch_note)
    out.extend("  " + n for n in notes)
    return "\n".join(out)

