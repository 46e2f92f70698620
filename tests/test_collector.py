"""The cyclic garbage collector is held off while numba compiles, and always turned back on."""
import gc

import numpy as np
import pytest

import graphc
from graphc.collector import collector_paused


def test_collector_is_off_inside_and_back_on_after_an_exception():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("a failed compile")
    assert gc.isenabled()


def test_a_collector_the_user_turned_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_numba_compile_runs_with_the_collector_off(monkeypatch, tmp_path):
    """The generated driver's first call (numba's compile) sees the collector off; afterwards it is on."""
    from graphc.backends.numba_cpu import Runner
    seen = []
    real_call = Runner.__call__

    def spy(self, inputs):
        seen.append(gc.isenabled())
        return real_call(self, inputs)

    monkeypatch.setattr(Runner, "__call__", spy)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    step = graphc.compile(lambda x: (x * 2.0).sum(), backend="numba_cpu")
    assert float(step(graphc.tensor(np.ones((3, 2), np.float32))).item()) == 12.0
    assert seen[0] is False and seen[-1] is True   # warm-up compile, then the user's call
    assert gc.isenabled()
