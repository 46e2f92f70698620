"""numba_cpu regressions: programs that once crashed its first compile or read stale values, now compiled == eager.

    every optimizer over 1-50 parameter tensors  -> numba "Calling a closure with *args" (Adam: a kernel of >30 arguments)
    a kernel reading 200 arrays                  -> the same, far past CPython's 30-argument call limit
    a reshape of a transposed value              -> a view the runner filled once, stale on every later call

The programs the fuzzer found are in tests/reliability/test_fuzz_regressions.py.
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


# Every optimizer graphc.optim has, with the flags that add state or branches to its update.
OPTIMIZERS = {
    "SGD": dict(lr=0.05),
    "SGD(momentum, nesterov)": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "Adam": dict(lr=0.01),
    "Adam(amsgrad)": dict(lr=0.01, amsgrad=True, weight_decay=0.01),
    "AdamW": dict(lr=0.01),
    "RMSprop(momentum, centered)": dict(lr=0.01, momentum=0.9, centered=True),
    "Adagrad": dict(lr=0.1, lr_decay=0.01),
    "Adadelta": dict(lr=1.0),
}


@pytest.mark.parametrize("n_params", [1, 4, 12, 50])
@pytest.mark.parametrize("label", list(OPTIMIZERS))
def test_every_optimizer_over_many_parameter_tensors(label, n_params):
    """Every optimizer over 1, 4, 12 and 50 parameter tensors of mixed shapes: compiled == eager within
    1e-5 over 3 steps (Adam/AdamW once crashed numba from 8 tensors on; 50 once took 88 s to compile)."""
    name, kwargs = label.split("(")[0], OPTIMIZERS[label]
    shapes = [(3, 2) if i % 3 == 0 else ((2,) if i % 3 == 1 else (1, 1)) for i in range(n_params)]
    x = graphc.tensor(np.random.default_rng(3).standard_normal((4, 2)).astype(np.float32))

    def results(backend):
        params = _params(*shapes, seed=4)
        opt = getattr(graphc.optim, name)(params, **kwargs)

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
