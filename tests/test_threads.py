"""graphc's thread budget: all cores by default, one knob for every BLAS pool and numba."""
import os
import subprocess
import sys

import pytest

import graphc
from graphc import threads
from graphc.cpu import cpu_description, usable_cores


def test_default_is_all_usable_cores_shared_among_local_ranks(monkeypatch):
    monkeypatch.delenv("GRAPHC_NUM_THREADS", raising=False)
    assert threads.default_num_threads() == usable_cores()
    assert threads.default_num_threads(local_ranks=usable_cores() + 5) == 1
    assert threads.default_num_threads(local_ranks=2) == max(1, usable_cores() // 2)


def test_environment_overrides_the_default(monkeypatch):
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "3")
    assert threads.default_num_threads() == 3
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="GRAPHC_NUM_THREADS='many'.*\n.*help:"):
        threads.default_num_threads()


def test_set_num_threads_sets_numba_and_the_budget_and_blas_to_one_thread_a_call():
    import numba
    import numpy as np  # noqa: F401  (numpy's OpenBLAS is loaded)
    before = graphc.get_num_threads()
    try:
        changed = graphc.set_num_threads(1)
        assert any("openblas" in c for c in changed)
        assert graphc.get_num_threads() == 1
        assert all(n == 1 for _, api, n in threads.blas_pools() if api in ("openblas", "mkl", "blis"))
        assert numba.get_num_threads() == 1
        graphc.set_num_threads(2)   # the budget is graphc's threads; BLAS still runs each call on one
        assert graphc.get_num_threads() == 2
        assert all(n == 1 for _, api, n in threads.blas_pools() if api in ("openblas", "mkl", "blis"))
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:
        graphc.set_num_threads(before)
    with pytest.raises(ValueError, match="at least 1 thread"):
        graphc.set_num_threads(0)


def test_import_chooses_passive_openmp_and_a_safe_threading_layer():
    code = ("import os, graphc, numba; print(os.environ['OMP_WAIT_POLICY'], "
            "' '.join(numba.config.THREADING_LAYER_PRIORITY), graphc.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GRAPHC_NUM_THREADS",
                                                             "NUMBA_THREADING_LAYER_PRIORITY", "GRAPHC_THREADING")}
    env["GRAPHC_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE", "omp", "workqueue", "tbb", "1"]


def test_cpu_description_names_model_and_simd():
    text = cpu_description()
    assert text.startswith("CPU: ") and "usable cores" in text and "SIMD:" in text
