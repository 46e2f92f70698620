"""Dynamic shapes: a symbolic batch size B, so one compile serves every batch size.

    graphc.compile(step, dynamic=True)    -> 1 compile for sizes 8, 4, 6, 3; IR says f32[B,784]
    graphc.compile(step)                  -> automatic: static for the first size, symbolic from the first change
    graphc.compile(step, dynamic=False)   -> one compile per size, as before
"""
import re
import textwrap

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.cli import models
from graphc.config import override
from graphc.errors import GraphcError
from graphc.ir.symbolic import SizeTemplate, size_parameter


def seed_step(model, optimizer, dropout=True):
    """The seed model's training step with SGD(momentum=0.9) or Adam, from a fixed seed."""
    graphc.manual_seed(0)
    np.random.seed(0)
    net, criterion, opt, _ = models.build(model, graphc, lr=0.01, momentum=0.9, dropout=dropout)
    if optimizer == "adam":
        opt = graphc.optim.Adam(net.parameters(), lr=1e-3)
    return models.make_step(net, criterion, opt)


def batches(sizes, seed=1):
    rng = np.random.default_rng(seed)
    for b in sizes:
        yield (graphc.tensor(rng.random((b, 1, 28, 28), dtype=np.float32)),
               graphc.tensor(rng.integers(0, 10, b)))


def losses_eager_and_compiled(model, optimizer, sizes, backend="numba_cpu", **compile_args):
    step = seed_step(model, optimizer)
    eager = [float(step(x, y).item()) for x, y in batches(sizes)]
    compiled = graphc.compile(seed_step(model, optimizer), backend=backend, **compile_args)
    got = [float(compiled(x, y).item()) for x, y in batches(sizes)]
    return eager, got, compiled


# --- the issue's figure: one compile with dynamic=True, at most two by default, losses as eager --------
@pytest.mark.parametrize("model,optimizer", [("mlp", "sgd"), ("mlp", "adam"), ("cnn", "sgd"), ("cnn", "adam")])
def test_one_compile_serves_every_batch_size(model, optimizer):
    sizes = (8, 4, 6, 3, 4) if model == "mlp" else (4, 2, 3, 2)
    eager, got, compiled = losses_eager_and_compiled(model, optimizer, sizes, dynamic=True)
    assert compiled.stats()["compiles"] == 1
    assert sorted(set(compiled.stats()["dynamic_sizes"])) == sorted(set(sizes))
    np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model,optimizer", [("mlp", "sgd"), ("mlp", "adam")])
def test_automatic_dynamic_compiles_at_most_twice(model, optimizer):
    eager, got, compiled = losses_eager_and_compiled(model, optimizer, (8, 4, 6, 3, 8))
    assert compiled.stats()["compiles"] == 2
    np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-5)


def test_the_issues_batch_sizes_on_the_mlp():
    sizes = (64, 32, 48, 17)
    for dynamic, most in ((True, 1), (None, 2)):
        eager, got, compiled = losses_eager_and_compiled("mlp", "sgd", sizes, dynamic=dynamic)
        assert compiled.stats()["compiles"] == most
        np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-5)


def test_dynamic_false_compiles_once_per_size():
    _, _, compiled = losses_eager_and_compiled("mlp", "sgd", (8, 4, 6), backend="interpreter", dynamic=False)
    assert compiled.stats()["compiles"] == 3
    assert compiled.stats()["dynamic_sizes"] == []


def test_the_interpreter_serves_every_size_from_one_compile():
    eager, got, compiled = losses_eager_and_compiled("cnn", "sgd", (3, 2, 4), backend="interpreter", dynamic=True)
    assert compiled.stats()["compiles"] == 1
    np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-5)


def test_recompile_log_names_the_dim_that_became_dynamic(capsys):
    step = graphc.compile(lambda x: (x * 2).sum(), backend="interpreter")
    with override(log={"recompiles"}):
        for b in (4, 5, 6):
            step(graphc.ones(b, 3))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "recompil" in ln]
    assert len(lines) == 1 and "dim 0 of %x became dynamic (4 -> 5)" in lines[0], err
    assert step.stats()["compiles"] == 2


# --- what the symbolic code looks like ---------------------------------------------------------------
def small_net_step(dynamic=True, backend="interpreter"):
    graphc.manual_seed(0)
    lin = nn.Linear(3, 2)

    def f(x):
        return (lin(x).relu().mean(0)).sum()

    return graphc.compile(f, backend=backend, dynamic=dynamic)


def without_locations(text):
    """The text without comments: comment lines go, trailing ones (the user's source line) too."""
    return re.sub(r" *#[^\n]*", "", re.sub(r"(?m)^ *#.*\n", "", text))


def test_golden_ir_of_a_symbolic_graph():
    step = small_net_step()
    step(graphc.ones(4, 3))
    assert without_locations(step.ir("trace")) == textwrap.dedent("""\
        graph f(%x: f32[B,3] data, %weight: f32[2,3] param, %bias: f32[2] param) {
          %0: f32[3,2] = permute %weight {perm=(1, 0)}
          %1: f32[B,2] = matmul %x, %0
          %2: f32[B,2] = add %1, %bias
          %3: f32[B,2] = relu %2
          %4: f32[2] = sum %3 {axes=(0,), keepdim=False}
          %5: f32[] = const {value=array(B, f32)}
          %6: f32[2] = div %4, %5
          %7: f32[] = sum %6 {axes=(0,), keepdim=False}
          return %7
        }""")


def test_mean_over_the_batch_divides_by_the_size_of_each_call():
    step = small_net_step(backend="numba_cpu")
    for b in (4, 7, 2, 9):
        x = graphc.tensor(np.arange(b * 3, dtype=np.float32).reshape(b, 3) / 10)
        graphc.manual_seed(0)
        lin = nn.Linear(3, 2)
        want = float((lin(x).relu().mean(0)).sum().item())
        assert float(step(x).item()) == pytest.approx(want, rel=1e-5)
    assert step.stats()["compiles"] == 1


def test_generated_kernels_read_B_from_the_driver():
    step = small_net_step(backend="numba_cpu")
    step(graphc.ones(4, 3))
    step(graphc.ones(6, 3))
    source = step.source()
    assert re.search(r"^def driver\(B, x, ", source, re.M)
    assert "range(B)" in source
    assert not re.search(r"range\((4|6|5)\)", source)   # no batch size baked in (5 was the probe)
    assert "f32[B,2]" in step.ir()
    assert step.stats()["compiles"] == 1


def test_view_by_size_and_flatten_follow_B():
    graphc.manual_seed(0)
    lin = nn.Linear(12, 2)
    flat = nn.Flatten()

    def f(x):
        return (lin(x.view(x.size(0), -1)) + lin(flat(x))).mean()

    step = graphc.compile(f, backend="numba_cpu", dynamic=True)
    for b in (3, 5, 4):
        x = graphc.tensor(np.random.default_rng(b).random((b, 3, 4), dtype=np.float32))
        assert float(step(x).item()) == pytest.approx(float(f(x).item()), rel=1e-5)
    assert step.stats()["compiles"] == 1


def test_batchnorm_batch_statistics_follow_B():
    graphc.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    graphc.manual_seed(0)
    twin = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    step = graphc.compile(lambda x: net(x).sum(), backend="numba_cpu", dynamic=True)
    for b in (5, 3, 8):
        x = graphc.tensor(np.random.default_rng(b).random((b, 4), dtype=np.float32))
        assert float(step(x).item()) == pytest.approx(float(twin(x).sum().item()), rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(net[1].running_var.numpy(), twin[1].running_var.numpy(), rtol=1e-5)
    assert step.stats()["compiles"] == 1


def test_a_branch_on_the_size_falls_back_to_a_static_compile(capsys):
    def f(x):
        return x.sum() * 2 if x.size(0) > 5 else x.sum()

    step = graphc.compile(f, backend="interpreter", dynamic=True)
    with override(log={"recompiles"}):
        for b in (3, 4, 8, 3):
            assert float(step(graphc.ones(b, 2)).item()) == float(f(graphc.ones(b, 2)).item())
    assert "static compile for batch size 8" in capsys.readouterr().err
    assert step.stats()["static_sizes"][0][0] == 8


def test_repeated_sizes_allocate_nothing_new():
    step = small_net_step(backend="numba_cpu")
    pools = {}
    for b in (4, 6, 4, 6, 4):
        step(graphc.ones(b, 3))
        ids = [id(p) for p in step.last.run_graph.pools]
        assert pools.setdefault(b, ids) == ids
    assert pools[4] != pools[6]
    assert step.stats()["compiles"] == 1


def test_the_guard_checks_that_inputs_share_B_not_its_value():
    step = graphc.compile(lambda x, y: (x + y).sum(), backend="interpreter", dynamic=True)
    step(graphc.ones(4, 2), graphc.ones(4, 2))
    step(graphc.ones(7, 2), graphc.ones(7, 2))
    assert step.stats()["compiles"] == 1
    with pytest.raises(Exception):   # the sizes no longer agree: a new trace, where the add's shapes clash
        step(graphc.ones(7, 2), graphc.ones(5, 2))


def test_dynamic_must_be_a_bool_or_none():
    with pytest.raises(GraphcError, match="dynamic must be True, False or None"):
        graphc.compile(lambda x: x, dynamic="yes")


def test_compiled_modules_take_dynamic_too():
    graphc.manual_seed(0)
    net = nn.Linear(3, 2)
    compiled = graphc.compile(net, backend="interpreter", dynamic=True)
    for b in (2, 5, 3):
        np.testing.assert_allclose(compiled(graphc.ones(b, 3)).detach().numpy(),
                                   net(graphc.ones(b, 3)).detach().numpy(), rtol=1e-6)
    assert compiled.stats()["compiles"] == 1


# --- the template itself --------------------------------------------------------------------------
def test_template_fits_affine_numbers_and_refuses_the_rest():
    t = SizeTemplate.fit("f32[64,784] range(8192) v_as_64 1.0 64.0", 64, "f32[32,784] range(4096) v_as_32 1.0 32.0", 32)
    assert t.text == "f32[B,784] range(128*B) v_as_B 1.0 B"
    assert t.matches("f32[17,784] range(2176) v_as_17 1.0 17.0", 17)
    assert not t.matches("f32[17,784] range(2177) v_as_17 1.0 17.0", 17)
    assert SizeTemplate.fit("x * 0.015625", 64, "x * 0.03125", 32) is None   # 1/B baked into a float
    assert SizeTemplate.fit("if a: 64", 64, "if b: 32", 32) is None


def test_size_parameter_reaches_every_function_that_reads_B():
    src = "def k(a):\n    for i in range(B):\n        a[i] = 0\n\ndef j(a):\n    # f32[B]\n    pass\n\n" \
          "def driver(a):\n    k(a)\n    j(a)\n"
    out = size_parameter(src)
    assert "def k(B, a):" in out and "def j(a):" in out and "def driver(B, a):" in out
    assert "    k(B, a)" in out and "    j(a)" in out


def test_golden_source_of_a_symbolic_kernel():
    def f(x):
        return (x * 2.0).relu().sum(0)

    step = graphc.compile(f, backend="numba_cpu", dynamic=True)
    for b in (4, 6):
        np.testing.assert_allclose(step(graphc.ones(b, 3)).numpy(), [2.0 * b] * 3)
    source = without_locations(step.source())
    assert source[source.index("def fused_mul_relu_sum_1"):] == textwrap.dedent('''\
        def fused_mul_relu_sum_1(B, a0, o0):
            for i1 in range(3):
                acc = 0.0
                for i0 in range(B):
                    x0 = a0[i0, i1]
                    t0 = np.float32((x0 * np.float32(2.0)))
                    t1 = np.float32((t0 if not (t0 <= 0) else 0.0))
                    acc = (acc + t1)
                o0[i1] = np.float32(acc)


        @njit(cache=True, error_model="numpy", fastmath=FAST, no_cfunc_wrapper=True)
        def driver(B, x, v3):
            """Runs graph `f`: 1 kernel calls."""
            fused_mul_relu_sum_1(B, x, v3)
            return 0
        ''')
    assert "kernel fused_mul_relu_sum_1 (reduce [B, 3]) (%x, %0) -> (%3)" in step.ir()


def test_a_backend_without_symbolic_sizes_says_it_compiles_each_size(monkeypatch, capsys):
    """numba_cuda compiles static shapes only; a backend without sized_text stands in for it here."""
    from graphc.backends.interpreter import InterpreterBackend
    monkeypatch.delattr(InterpreterBackend, "sized_text")
    step = graphc.compile(lambda x: x.sum(), backend="interpreter", dynamic=True)
    with override(log={"recompiles"}):
        for b in (3, 4, 5):
            assert float(step(graphc.ones(b, 2)).item()) == 2.0 * b
    assert "compiles static shapes only" in capsys.readouterr().err
    assert step.stats()["compiles"] == 3


def test_a_batch_outside_dim_0_falls_back_to_static_compiles(capsys):
    """Only dim 0 is symbolic: labels shaped [1, B] make the trace at another size fail, so each size is static."""
    def f(x, y):
        return F.cross_entropy(x, y.reshape(-1))

    step = graphc.compile(f, backend="interpreter", dynamic=True)
    with override(log={"recompiles"}):
        for b in (4, 5):
            x, y = graphc.ones(b, 3), graphc.tensor(np.zeros((1, b), np.int64))
            assert float(step(x, y).item()) == pytest.approx(float(f(x, y).item()))
    assert "no symbolic batch size" in capsys.readouterr().err
    assert step.stats()["compiles"] == 2
