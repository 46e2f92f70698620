"""rand/randn draw from the counter-based stream: fresh on every compiled call, and equal to eager."""
import numpy as np
import pytest

import graphc


def noisy_step(x):
    return x + graphc.randn_like(x) * 0.1 + graphc.rand(*x.shape) * 0.01


def test_randn_is_standard_normal():
    graphc.manual_seed(0)
    z = graphc.randn(200_000).numpy().astype(np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert np.isfinite(z).all()


@pytest.mark.parametrize("backend", ["interpreter", "numba_cpu"])
def test_noise_inside_a_compiled_step_is_fresh_and_equals_eager(backend):
    x = graphc.ones(3, 4)
    graphc.manual_seed(1)
    eager = [noisy_step(x).numpy() for _ in range(3)]
    step = graphc.compile(noisy_step, backend=backend)
    graphc.manual_seed(1)
    compiled = [step(x).numpy() for _ in range(3)]
    for e, c in zip(eager, compiled):
        np.testing.assert_allclose(c, e, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(compiled[0], compiled[1]), "a compiled step must not freeze its noise"


def test_parameter_init_stays_on_the_numpy_stream():
    graphc.manual_seed(3)
    a = graphc.empty(5).normal_().numpy().copy()
    graphc.manual_seed(3)
    b = graphc.empty(5).normal_().numpy()
    np.testing.assert_array_equal(a, b)
