"""A backend that fails to compile or to run a step the first time: a graphc BackendError, or a fallback.

The backend is broken on purpose (its emitter raises, or its first run scribbles on the parameters and
then raises an error that names a generated line, as numba's errors do). The step must then raise a
BackendError naming the kernel, its IR lines, the user's line and the `backend="interpreter"` way out,
leave parameters and optimizer state as they were, and under GRAPHC_FALLBACK=interpreter run on the
interpreter after one warning, with eager's results.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import graphc
from graphc import config
from graphc.backends import numba_cpu
from graphc.backends.numba_cpu import emit
from graphc.errors import BackendError


def make_step(seed=0):
    """A small training step (linear + tanh + Adam) and its parameters and optimizer."""
    rng = np.random.default_rng(seed)
    w = graphc.nn.Parameter(graphc.tensor(rng.standard_normal((4, 3)).astype(np.float32)))
    b = graphc.nn.Parameter(graphc.tensor(rng.standard_normal((3,)).astype(np.float32)))
    opt = graphc.optim.Adam([w, b], lr=0.05)

    def step(x):
        opt.zero_grad()
        h = graphc.tanh(x @ w + b)   # the user's line a kernel failure points at
        loss = (h * h).mean()
        loss.backward()
        opt.step()
        return loss

    return step, (w, b), opt


def batch(n=5, seed=1):
    return graphc.tensor(np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32))


def eager_losses(batches):
    step, params, _ = make_step()
    losses = [float(step(x).item()) for x in batches]
    return losses, [p.detach().numpy().copy() for p in params]


def break_emitter(monkeypatch):
    def emit_fails(self):
        raise RuntimeError("emitter exploded on purpose")
    monkeypatch.setattr(emit.ModuleEmitter, "emit", emit_fails)


class ScribblingRunner:
    """Wraps a compiled runner: its first real run overwrites every input in place, then fails like numba does,
    naming a line inside the first kernel of the generated module."""

    def __init__(self, runner):
        self.runner = runner
        self.stats = runner.stats
        path = runner.module.__file__
        with open(path) as f:
            lines = f.read().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("def ") and line != "def driver(")
        self.kernel = lines[start][4:lines[start].index("(")]
        self.where = f'File "{path}", line {start + 3}:'

    def __call__(self, inputs):
        for a in inputs:
            a[...] = np.nan
        raise RuntimeError(f"Failed in nopython mode pipeline (step: nopython frontend)\n{self.where}\n"
                           "<source elided>\nInternal error at <numba.core.typeinfer.CallConstraint>")


def break_first_run(monkeypatch):
    real_compile = numba_cpu.NumbaCPUBackend.compile
    made = []

    def compile_then_scribble(self, graph, **options):
        made.append(ScribblingRunner(real_compile(self, graph, **options)))
        return made[-1]
    monkeypatch.setattr(numba_cpu.NumbaCPUBackend, "compile", compile_then_scribble)
    return made


def test_emitter_failure_is_a_backend_error_with_the_way_out(monkeypatch):
    break_emitter(monkeypatch)
    step, params, opt = make_step()
    before = [p.detach().numpy().copy() for p in params]
    with pytest.raises(BackendError) as info:
        graphc.compile(step, backend="numba_cpu")(batch())
    text = str(info.value)
    assert text.startswith("numba_cpu: failed while compiling graph 'step': RuntimeError: emitter exploded on purpose")
    assert 'backend="interpreter"' in text and "GRAPHC_FALLBACK=interpreter" in text
    assert "test_backend_failure.py" in text   # the user's call site
    assert "Traceback" not in text
    assert info.value.__suppress_context__   # the raw backend traceback is not printed under ours
    for p, want in zip(params, before):
        np.testing.assert_array_equal(p.detach().numpy(), want)


def test_first_run_failure_names_kernel_ir_and_user_line_and_restores_parameters(monkeypatch):
    made = break_first_run(monkeypatch)
    step, params, opt = make_step()
    before = [p.detach().numpy().copy() for p in params]
    with pytest.raises(BackendError) as info:
        graphc.compile(step, backend="numba_cpu")(batch())
    text = str(info.value)
    assert "failed while the first run of graph 'step'" in text
    assert f"kernel {made[0].kernel}, IR lines: %" in text
    assert "h = graphc.tanh(x @ w + b)" in text or "loss = (h * h).mean()" in text or "opt.step()" in text
    assert 'help: compile with backend="interpreter"' in text
    assert info.value.kernel == made[0].kernel
    # The runner wrote NaN over parameters and optimizer state before failing: all of it is undone.
    for p, want in zip(params, before):
        np.testing.assert_array_equal(p.detach().numpy(), want)
    for state in opt.state.values():
        for value in state.values():
            assert np.isfinite(value.detach().numpy()).all()


@pytest.mark.parametrize("breaker", [break_emitter, break_first_run])
def test_fallback_to_interpreter_warns_once_and_matches_eager(monkeypatch, breaker):
    breaker(monkeypatch)
    batches = [batch(5, 1), batch(5, 2), batch(3, 3)]   # a new batch size recompiles: no second warning
    want_losses, want_params = eager_losses(batches)
    step, params, _ = make_step()
    compiled = graphc.compile(step, backend="numba_cpu")
    with config.override(fallback="interpreter"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = [float(compiled(x).item()) for x in batches]
    ours = [w for w in caught if "GRAPHC_FALLBACK=interpreter" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "numba_cpu: failed while" in str(ours[0].message)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5)
    for p, want in zip(params, want_params):
        np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    assert compiled.backend_name == "interpreter"
    assert compiled.stats()["fallback"]["from"] == "numba_cpu"


def test_fallback_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("GRAPHC_FALLBACK", "interpreter")
    try:
        config.settings.reload()
        assert config.settings.fallback == "interpreter"
    finally:
        monkeypatch.delenv("GRAPHC_FALLBACK")
        config.settings.reload()
    assert config.settings.fallback is None


def test_user_errors_are_not_backend_errors():
    """A graphc error about the user's input (a label out of range) still reaches the user as it was."""
    w = graphc.nn.Parameter(graphc.tensor(np.ones((4, 3), np.float32)))

    @graphc.compile(backend="numba_cpu")
    def loss_of(x, y):
        return graphc.nn.functional.cross_entropy(x @ w, y)

    with pytest.raises(graphc.errors.GraphcError) as info:
        loss_of(batch(), graphc.tensor(np.array([0, 1, 2, 7, 0], np.int64)))
    assert not isinstance(info.value, BackendError)
    np.testing.assert_array_equal(w.detach().numpy(), np.ones((4, 3), np.float32))
