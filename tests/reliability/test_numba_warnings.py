"""Generated numba code compiles without a warning: numba's warnings are raw numba output a user would see.

    GRAPHC_NUMBA_BLAS=scipy python -W error::numba.NumbaWarning -c "...batched matmul on numba_cpu..."

A batched matmul hands BLAS strided slices (a[i0], out[i0]); where numba's own np.dot does the product
(GRAPHC_NUMBA_BLAS=scipy, or a numpy without an OpenBLAS graphc can call) those once printed
"NumbaPerformanceWarning: np.vdot() is faster on contiguous arrays". The fuzz test also turns every
numba warning into a failure (see test_fuzz.py), so a program whose kernels warn is a finding.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Strided operands on both sides: a broadcast batch (x[i0] @ w[0]), a transposed weight, a sliced input.
BATCHED_MATMULS = """
import numpy as np
import graphc
rng = np.random.default_rng(0)
w = graphc.nn.Parameter(graphc.tensor(rng.standard_normal((1, 4, 5)).astype(np.float32)))
v = graphc.nn.Parameter(graphc.tensor(rng.standard_normal((4, 5)).astype(np.float32)))

def step(x):
    h = (x[1:] @ w) @ v.t()
    loss = (h * h).mean()
    loss.backward()
    return loss, w.grad, v.grad

x = graphc.tensor(rng.standard_normal((4, 3, 4)).astype(np.float32))
report = graphc.verify(step, x, backend="numba_cpu")
assert report.ok, report
print("ok")
"""


@pytest.mark.parametrize("blas", ["numpy", "scipy"])
def test_batched_matmul_compiles_without_numba_warnings(blas, tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path), GRAPHC_NUMBA_BLAS=blas)
    proc = subprocess.run([sys.executable, "-W", "error::numba.core.errors.NumbaWarning", "-c", BATCHED_MATMULS],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]
    assert "Numba" not in proc.stderr, proc.stderr[-3000:]
