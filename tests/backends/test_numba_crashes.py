"""Programs that once crashed the numba_cpu backend's first compile, now compiled == eager.

    broadcasting matmul under where   -> "no storage planned for %23" (the collapse viewed a value the plan had inlined)
    AdamW(amsgrad) over [1,1] params  -> numba "Calling a closure with *args" (a fused kernel with ~25 arguments)
"""
import numpy as np
import pytest

import graphc


def _params(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [graphc.nn.Parameter(graphc.tensor(rng.standard_normal(s).astype(np.float32))) for s in shapes]


def _run(step, params, data, backend, calls=2):
    start = [p.detach().numpy().copy() for p in params]
    fn = step if backend is None else graphc.compile(step, backend=backend)
    outs = []
    for _ in range(calls):
        for p in params:
            p.grad = None
        outs.append([None if t is None else np.array(t.detach().numpy()) for t in fn(*data)])
    outs.append([p.detach().numpy().copy() for p in params])
    for p, s in zip(params, start):   # the next run starts from the same values
        p.detach().numpy()[...] = s
    return outs


def _assert_same(want, got, tol=1e-5):
    for w_call, g_call in zip(want, got):
        for w, g in zip(w_call, g_call):
            assert (w is None) == (g is None)
            if w is not None:
                np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def test_found_broadcasting_matmul_under_where():
    """p0, p1: [1, 1] parameters; d0: a [4, 1, 1] input. Crashed with "no storage planned for %23": the
    elementwise collapse asked for storage of an output the plan had inlined as a literal."""
    p0, p1 = _params((1, 1), (1, 1))
    d0 = graphc.tensor(np.random.default_rng(1).standard_normal((4, 1, 1)).astype(np.float32))

    def program(d0):
        v0 = d0 + p0
        v1 = v0 @ p1
        v2 = graphc.where(v1 > v0, v1, v0 * 0.5)
        v3 = v2 * v0
        loss = v3.mean()
        loss = loss + 0.001 * ((p0 * p0).sum() + (p1 * p1).sum())
        loss.backward()
        return loss, v3, p0.grad, p1.grad

    _assert_same(_run(program, [p0, p1], [d0], None), _run(program, [p0, p1], [d0], "numba_cpu"))


def test_found_adamw_amsgrad_over_unit_params():
    """AdamW(params, lr=0.05, amsgrad=True) over three [1, 1] parameters: its fused update kernel was
    called with more than 30 arguments, which numba's inliner refused."""
    d0 = graphc.tensor(np.random.default_rng(2).standard_normal((3, 1)).astype(np.float32))

    def results(backend):
        params = _params((1, 1), (1, 1), (1, 1))
        opt = graphc.optim.AdamW(params, lr=0.05, amsgrad=True)

        def program(d0):
            opt.zero_grad()
            loss = ((d0 @ params[0] + params[1]) * params[2]).tanh().mean()
            loss.backward()
            opt.step()
            return (loss,)

        return _run(program, params, [d0], backend)

    _assert_same(results(None), results("numba_cpu"))


@pytest.mark.parametrize("n_params", [12, 50])
@pytest.mark.parametrize("opt_name", ["Adam", "AdamW"])
def test_adam_over_many_parameter_tensors(opt_name, n_params):
    """Adam/AdamW over 12 and 50 parameter tensors: compiled == eager within 1e-5 over 3 steps."""
    shapes = [(3, 2) if i % 3 == 0 else ((2,) if i % 3 == 1 else (1, 1)) for i in range(n_params)]
    x = graphc.tensor(np.random.default_rng(3).standard_normal((4, 2)).astype(np.float32))

    def results(backend):
        params = _params(*shapes, seed=4)
        opt = getattr(graphc.optim, opt_name)(params, lr=0.01)

        def step(x):
            opt.zero_grad()
            loss = 0.0
            for p in params:
                loss = loss + (x[:, :1] * p.sum()).tanh().mean()
            loss.backward()
            opt.step()
            return (loss,)

        return _run(step, params, [x], backend, calls=3)

    _assert_same(results(None), results("numba_cpu"))


def test_a_kernel_with_200_arguments_compiles():
    """One fused elementwise kernel reading 200 parameter arrays: past CPython's 30-argument call limit."""
    rng = np.random.default_rng(5)
    params = [graphc.nn.Parameter(graphc.tensor(rng.standard_normal(3).astype(np.float32))) for _ in range(200)]
    x = graphc.tensor(rng.standard_normal(3).astype(np.float32))

    def f(x):
        out = x
        for p in params:
            out = out + p
        return out

    compiled = graphc.compile(f, backend="numba_cpu")
    got = compiled(x).detach().numpy()
    np.testing.assert_allclose(got, f(x).detach().numpy(), rtol=1e-5)
    kernel = [line for line in compiled.source().splitlines() if line.startswith("def fused_")]
    assert len(kernel) == 1 and kernel[0].count(",") >= 200, kernel


def test_reshape_of_a_transposed_value_is_computed_each_call():
    """A reshape of a permuted layout needs a copy; planned as a view, the runner filled it once, before
    the driver ran, and every call returned that stale (uninitialised) copy: DDP's flattened weight
    gradient (matmul -> permute -> reshape -> concat) diverged to 1e37."""
    step = graphc.compile(lambda a: a.broadcast_to((2, 4, 3)).permute(1, 0, 2).reshape(4, 6) * 1.0,
                          backend="numba_cpu")
    for seed in (0, 1):
        a = _params((2, 1, 3), seed=seed)[0].detach()
        want = a.broadcast_to((2, 4, 3)).permute(1, 0, 2).reshape(4, 6).numpy()
        np.testing.assert_array_equal(step(a).numpy(), want)
