"""graphc.verify: eager vs compiled from the same state, and the first diverging IR node when they differ.

The localisation tests break one piece of the compiler on purpose (a numba scalar template, the
interpreter's impl of one op, a pass, the memory plan) and check that verify names exactly it.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F

HERE = "test_verify.py"


def line_of(marker):
    with open(__file__) as fh:
        for i, line in enumerate(fh, 1):
            if line.rstrip().endswith(f"# {marker}"):
                return i
    raise AssertionError(marker)


def make_step(optimizer="sgd"):
    graphc.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Dropout(0.2), nn.Linear(5, 3))
    opt = graphc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd" \
        else graphc.optim.Adam(net.parameters(), lr=0.01)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    return net, opt, step


X, Y = graphc.randn(4, 6), graphc.tensor([0, 1, 2, 1])


def state_of(net, opt):
    return ({k: v.detach().numpy().copy() for k, v in net.state_dict().items()},
            {id(p): sorted(s) for p, s in opt.state.items()},
            int(graphc.default_generator.offset_tensor.item()),
            [p.grad is None for p in net.parameters()])


@pytest.mark.parametrize("backend, optimizer", [("interpreter", "adam"), ("numba_cpu", "sgd")])
def test_matching_step_reports_ok_and_leaves_state_alone(backend, optimizer):
    net, opt, step = make_step(optimizer)
    before = state_of(net, opt)
    report = graphc.verify(step, X, Y, backend=backend)
    assert report.ok and bool(report)
    assert report.divergence is None and report.node is None
    text = str(report)
    assert re.match(rf"graphc.verify\(step\) on {backend}: OK, compiled matches eager: \d+ values", text)
    assert "max abs error" in text and "max rel error" in text
    names = {c.name for c in report.checks}
    assert {"result", "0.weight", "0.weight.grad", "3.bias"} <= names
    assert ("0.weight.momentum_buffer" in names) == (optimizer == "sgd")
    assert ("0.weight.exp_avg" in names) == (optimizer == "adam")
    assert report.max_abs < 1e-5
    after = state_of(net, opt)
    assert after[1:] == before[1:]
    for k in before[0]:
        np.testing.assert_array_equal(after[0][k], before[0][k])


def test_verify_after_some_training_uses_the_current_state():
    net, opt, step = make_step("sgd")
    for _ in range(2):
        step(X, Y)                      # momentum buffers now exist and are non-zero
    report = graphc.verify(step, X, Y, backend="interpreter")
    assert report.ok, report


def tanh_model():
    graphc.manual_seed(1)
    w1 = nn.Parameter(graphc.randn(6, 5))
    w2 = nn.Parameter(graphc.randn(5, 3))

    def f(x):
        h = x @ w1
        t = graphc.tanh(h)  # the-tanh
        out = t @ w2
        return (out * out).mean()

    return f


def test_broken_numba_template_is_named_exactly(monkeypatch):
    from graphc.backends.codegen import scalar
    monkeypatch.setitem(scalar.CPU_OVERRIDES, "tanh", "(math.tanh({0}) * 1.01)")
    report = graphc.verify(tanh_model(), X, backend="numba_cpu")
    assert not report.ok
    d = report.divergence
    assert d.where == "backend" and report.node.op == "tanh"
    assert re.search(r"%\d+: f32\[4,5\] = tanh %\d+", report.ir_line)
    assert report.source_line == f"{HERE}:{line_of('the-tanh')}   t = graphc.tanh(h)  # the-tanh"
    assert d.local is not None and not d.local[2]          # wrong on its own inputs: the node's code
    assert 0.005 < report.divergence.max_rel < 0.02
    text = str(report)
    assert "first diverging IR node (numba_cpu vs the op table's numpy impls, node by node)" in text
    assert "this node's code is wrong" in text and "kernel: tanh_" in text


def test_broken_interpreter_impl_for_one_op_is_named(monkeypatch):
    from graphc.backends import interpreter
    from graphc.ops import OPS
    broken = dict(OPS)
    broken["tanh"] = dataclasses.replace(OPS["tanh"], impl=lambda x: np.tanh(x) + 0.5)
    monkeypatch.setattr(interpreter, "OPS", broken)
    report = graphc.verify(tanh_model(), X, backend="interpreter")
    assert not report.ok and report.node.op == "tanh"
    assert f"at {HERE}:{line_of('the-tanh')}" in str(report)


def test_a_pass_that_changes_the_result_is_named(monkeypatch):
    from graphc.passes import pipeline
    original = pipeline.default_passes

    def evil(graph):
        """Turns every tanh into a sigmoid: a wrong rewrite."""
        for node in graph.nodes:
            if node.op == "tanh":
                node.op = "sigmoid"
        return graph

    def passes():
        out = original()
        return out[:3] + [("evil", evil)] + out[3:]

    monkeypatch.setattr(pipeline, "default_passes", passes)
    report = graphc.verify(tanh_model(), X, backend="interpreter")
    assert not report.ok
    assert report.divergence.where == "graph"
    assert "pass 'evil' changed the result" in str(report)


def test_a_memory_plan_that_aliases_live_values_is_blamed(monkeypatch):
    import graphc.backends.numba_cpu as numba_cpu
    from graphc.passes import memplan
    real_plan = memplan.plan_memory

    def aliasing_plan(fused, inline_ok):
        plan = real_plan(fused, inline_ok)
        a, b = [k.nodes[-1].out for k in fused.kernels if k.kind == "matmul"][:2]
        plan.home[id(b)] = plan.home[id(a)]           # b overwrites a while a is still needed
        return plan

    monkeypatch.setattr(numba_cpu, "plan_memory", aliasing_plan)
    monkeypatch.setattr(memplan, "plan_memory", aliasing_plan)   # the planning pass
    graphc.manual_seed(2)
    w1, w2 = nn.Parameter(graphc.randn(6, 3)), nn.Parameter(graphc.randn(6, 3))

    def f(x):
        a = x @ w1
        b = x @ w2
        return (a * b).sum()

    report = graphc.verify(f, X, backend="numba_cpu")
    assert not report.ok
    assert report.divergence.where == "memory plan"
    assert "two values share storage while both are live" in str(report)


def test_verify_accepts_a_compiled_function_and_kwargs():
    w = nn.Parameter(graphc.randn(3))

    @graphc.compile(backend="interpreter")
    def f(x, scale=1.0):
        return (x * w * scale).sum()

    report = graphc.verify(f, graphc.randn(3), backend="interpreter", scale=2.0)
    assert report.ok
    assert report.checks[0].name == "result"


def test_steps_catches_a_stale_graph_the_guards_missed(monkeypatch):
    """With the guard on .grad switched off, call 2 reuses call 1's graph (traced while w.grad was None)."""
    import importlib
    compile_module = importlib.import_module("graphc.frontend.compile")   # (graphc.frontend.compile: the function)
    monkeypatch.setattr(compile_module, "_state_signature", lambda record: ())
    monkeypatch.setattr(compile_module, "_entry_signature", lambda record: ())
    w = nn.Parameter(graphc.tensor([1.0, 2.0, 3.0]))

    def accumulate(x):
        (w * x).sum().backward()          # adds into w.grad: the first call's graph assumes there is none
        return w.grad * 1.0

    assert graphc.verify(accumulate, graphc.ones(3), backend="interpreter").ok
    report = graphc.verify(accumulate, graphc.ones(3), backend="interpreter", steps=2)
    assert not report.ok and report.step == 1
    text = str(report)
    assert "MISMATCH after call 2 of 2" in text
    assert report.divergence.where == "stale graph"
    assert "call 2 reused the graph traced at call 1, but a fresh trace from eager mode's state before it is a " \
           "different graph, which matches eager mode: the guards missed a change" in text
    assert w.grad is None


def test_steps_ok_reports_every_call():
    net, opt, step = make_step("sgd")
    report = graphc.verify(step, X, Y, backend="interpreter", steps=3)
    assert report.ok and report.steps == 3
    assert "OK, compiled matches eager in each of 3 calls" in str(report)


def test_sgd_with_dampening_compiled_matches_eager_over_several_steps():
    graphc.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = graphc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, dampening=0.5)

    def step(x):
        opt.zero_grad()
        (net(x) ** 2).sum().backward()
        opt.step()
        return net.weight.sum()

    report = graphc.verify(step, graphc.randn(4, 3), backend="interpreter", steps=3)
    assert report.ok, report


def test_rounding_noise_is_told_apart_from_a_bug():
    """A bias that feeds BatchNorm has a gradient of ~0 (pure rounding noise), which Adam scales up to a full
    step: compiled and eager then differ, and verify says the value is rounding-sensitive, not wrong."""
    graphc.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = graphc.optim.AdamW(net.parameters(), lr=0.01)
    x, target = graphc.randn(8, 4), graphc.randn(8, 3)

    def step(x, target):
        opt.zero_grad()
        loss = ((net(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    report = graphc.verify(step, x, target, backend="interpreter")
    if report.ok:      # the noise happened to round the same way in both runs
        return
    assert {c.name for c in report.mismatches} <= {"0.bias", "0.bias.exp_avg", "0.bias.exp_avg_sq", "0.bias.grad"}
    assert report.divergence.where == "rounding"
    assert "sensitive to rounding" in str(report)
