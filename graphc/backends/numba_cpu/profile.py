"""A profile driver: run a compiled step's kernels one at a time from Python, timing each.

    times = profile_kernels(runner, inputs, rounds=5)   # [(kernel name, fused kernel, median seconds)]

The generated driver calls its kernels in one @njit function (or @njit segments between host
kernels), which no Python timer can look inside.  This module replays the driver's call list
(ModuleEmitter.steps) instead: each call line is evaluated with the driver's parameters bound to
the Runner's arrays, so the kernels see exactly the buffers the driver gives them.  Kernels that
are inlined into the driver get compiled on their own the first time (not timed: one warm-up
round runs first).  The results of a profiled round are the step's results; the order is the driver's.
"""
from __future__ import annotations

import statistics
import time


def driver_namespace(runner, inputs):
    """{driver parameter name: array}, as the Runner passes them to `driver`."""
    emitter = runner.emitter
    names = list(emitter.input_names) + [f"const{j}" for j in range(len(emitter.consts))] \
        + list(emitter.params) + [name for name, _ in emitter.externs]
    args = list(runner._args)
    for pos, getter in runner._dynamic:
        args[pos] = getter(inputs)
    return dict(zip(names, list(inputs) + args))


def profile_kernels(runner, inputs, rounds=5):
    """[(kernel name, fused kernel or None, median seconds over `rounds`)] in the driver's order."""
    kernels = {k.name: k for k in runner.fused.kernels}
    namespace = driver_namespace(runner, inputs)
    glb = vars(runner.module)
    calls = [(name, compile(line, f"<graphc profile: {name}>", "eval"))
             for name, (_, line) in zip(runner.emitter.step_kernels, runner.emitter.steps)]
    samples = [[] for _ in calls]   # per call: kernels with the same code share one name (sharing.py)
    for r in range(rounds + 1):
        for i, (_, code) in enumerate(calls):
            t = time.perf_counter()
            eval(code, glb, namespace)   # noqa: S307  (our own generated call lines)
            if r:
                samples[i].append(time.perf_counter() - t)
    return [(name, kernels.get(name), statistics.median(times)) for (name, _), times in zip(calls, samples)]
