"""Ops the numba_cpu backend has no kernel for run their op-table impl on the host (extern kernels).

    %3 = cumsum_test %2          -> def extern_cumsum_test_3(x0, out, impl): out[...] = impl(x0)

and a failure anywhere in the backend is a BackendError naming the kernel and the fallback.
"""
import numpy as np
import pytest

import graphc
from graphc.errors import BackendError
from graphc.ops import OPAQUE, OPS
from graphc.ops.registry import defop


@pytest.fixture
def cumsum_op():
    """A throwaway op with only an impl and a vjp: what a newly added op looks like to the backend."""
    def infer(x, axis):
        return x.shape, x.dtype

    @defop("cumsum_test", kind=OPAQUE, infer=infer, nondiff=True, attrs=("axis",))
    class CumsumTest:
        """Running sum along an axis.   cumsum_test([1, 2, 3], axis=0) -> [1, 3, 6]"""
        impl = staticmethod(lambda x, axis: np.cumsum(x, axis=axis))
    yield "cumsum_test"
    del OPS["cumsum_test"]


def test_an_op_without_a_kernel_runs_its_impl_on_the_host(cumsum_op):
    x = graphc.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))

    def f(x):
        y = graphc.functional.apply_op(cumsum_op, x * 2.0, axis=1)
        return graphc.relu(y - 5.0)

    compiled = graphc.compile(f, backend="numba_cpu")
    got = compiled(x).numpy()
    np.testing.assert_allclose(got, np.maximum(np.cumsum(x.numpy() * 2, axis=1) - 5, 0))
    src = compiled.source()
    assert "def extern_cumsum_test_" in src
    assert "has no kernel for `cumsum_test`" in src
    np.testing.assert_allclose(compiled(x * 0.0 + 1.0).numpy(), np.maximum(np.cumsum(np.full((3, 4), 2.0), 1) - 5, 0))


def test_a_numba_failure_is_a_backend_error_naming_the_kernel(monkeypatch):
    """A kernel numba refuses surfaces as a BackendError with the kernel, its IR line and the fallback."""
    from graphc.backends.codegen import scalar
    monkeypatch.setitem(scalar.CPU_OVERRIDES, "exp", "math.exp({0}, undefined_name_in_kernel)")
    x = graphc.tensor(np.ones((2, 3), np.float32) * 0.25)

    def f(x):
        return (x * 3.0).exp()

    with pytest.raises(BackendError) as info:
        graphc.compile(f, backend="numba_cpu")(x)
    text = str(info.value)
    assert "fused_mul_exp" in text and "= exp %" in text, text
    assert 'backend="interpreter"' in text and "test_extern.py" in text, text
