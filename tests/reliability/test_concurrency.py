"""Concurrency: one compiled function called from several threads, and several processes sharing a cache.

A compiled function serialises its calls (a per-function RLock around lookup, compile and run): its
graph runs in buffers it owns and writes state back, so concurrent calls take turns and each gets
its own, correct result. Processes compiling the same graph into one cache directory write the
generated module atomically, so both succeed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
THREADS, CALLS = 4, 25


def _in_threads(work):
    """Run work(i) in THREADS threads started together; re-raise the first failure."""
    barrier = threading.Barrier(THREADS)
    errors = []

    def body(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:   # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("backend", ["numba_cpu", "interpreter"])
def test_one_compiled_function_from_four_threads(backend):
    graphc.manual_seed(0)
    w = nn.Parameter(graphc.randn(8, 5))

    def f(x):
        h = graphc.tanh(x @ w)
        return F.log_softmax(h, dim=1), h.sum()

    xs = [graphc.randn(6, 8) for _ in range(THREADS)]
    want = [tuple(t.detach().numpy().copy() for t in f(x)) for x in xs]
    step = graphc.compile(f, backend=backend)   # the first calls race to compile it
    results = [[] for _ in range(THREADS)]

    def work(i):
        for _ in range(CALLS):
            a, b = step(xs[i])
            results[i].append((a.numpy().copy(), b.numpy().copy()))

    _in_threads(work)
    assert step.stats()["compiles"] == 1
    for i in range(THREADS):
        for a, b in results[i]:
            np.testing.assert_allclose(a, want[i][0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b, want[i][1], rtol=1e-5, atol=1e-5)


def test_state_updates_from_four_threads_are_not_lost():
    """An in-place state update per call: after THREADS x CALLS calls, every increment is there."""
    counter = graphc.zeros(3)
    total = graphc.zeros(())

    def bump(x):
        with graphc.no_grad():
            counter.add_(x)
            total.add_(x.sum())
        return counter * 1.0

    step = graphc.compile(bump, backend="numba_cpu")
    ones = graphc.ones(3)

    def work(i):
        for _ in range(CALLS):
            step(ones)

    _in_threads(work)
    np.testing.assert_array_equal(counter.numpy(), np.full(3, THREADS * CALLS, np.float32))
    assert float(total.item()) == 3 * THREADS * CALLS


def test_training_step_from_four_threads_equals_sequential_steps():
    """SGD without momentum on one fixed batch: any order of the serialised steps gives the same weights."""
    def build():
        graphc.manual_seed(1)
        net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
        opt = graphc.optim.SGD(net.parameters(), lr=0.05)

        def train_step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss

        return net, train_step

    x, y = graphc.randn(5, 6), graphc.tensor([0, 1, 2, 0, 1])
    ref_net, ref_step = build()
    for _ in range(THREADS * 5):
        ref_step(x, y)
    net, train_step = build()
    step = graphc.compile(train_step, backend="interpreter")

    def work(i):
        for _ in range(5):
            step(x, y)

    _in_threads(work)
    for (name, p), q in zip(net.named_parameters(), ref_net.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


COMPILE_STEP = textwrap.dedent("""
    import json, sys
    import numpy as np
    import graphc, graphc.nn as nn, graphc.nn.functional as F
    graphc.manual_seed(0)
    net = nn.Linear(12, 3)
    opt = graphc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        loss = F.mse_loss(graphc.tanh(net(x)), y)
        loss.backward()
        opt.step()
        return loss

    x, y = graphc.randn(4, 12), graphc.randn(4, 3)
    compiled = graphc.compile(step, backend="numba_cpu")
    losses = [float(compiled(x, y).item()) for _ in range(3)]
    print(json.dumps({"losses": losses, "cache": compiled.stats().get("cache")}))
""")


def test_two_processes_compile_the_same_step_into_one_cache(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("GRAPHC_LOG", None)
    procs = [subprocess.Popen([sys.executable, "-c", COMPILE_STEP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=str(ROOT)) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0]["losses"] == outs[1]["losses"]
    generated = [f for f in os.listdir(tmp_path / "cache") if f.startswith("graphc_") and f.endswith(".py")]
    assert len(generated) == 1
    leftovers = [f for f in os.listdir(tmp_path / "cache") if f.endswith(".tmp")]
    assert not leftovers
    # A third process finds everything cached.
    third = subprocess.run([sys.executable, "-c", COMPILE_STEP], capture_output=True, text=True, env=env,
                           cwd=str(ROOT), timeout=600)
    assert third.returncode == 0, third.stderr
    result = json.loads(third.stdout.strip().splitlines()[-1])
    assert result["losses"] == outs[0]["losses"] and result["cache"] == "hit"
