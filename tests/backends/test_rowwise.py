"""The row-wise cross-entropy prototype agrees with the op-by-op formulation (graphc eager)."""
import numpy as np
import pytest

import graphc
import graphc.nn.functional as F
from graphc.backends.codegen.loader import load_module
from graphc.backends.numba_cpu.rowwise import cross_entropy_source


def _kernels(tmp_path, rows, cols):
    return load_module(cross_entropy_source(rows, cols), str(tmp_path))


def test_forward_and_backward_match_eager(tmp_path):
    mod = _kernels(tmp_path, 8, 5)
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((8, 5)) * 30).astype(np.float32)   # large logits: the max shift matters
    labels = rng.integers(0, 5, 8)
    lse, loss, grad = np.empty(8, np.float32), np.empty((), np.float32), np.empty((8, 5), np.float32)
    mod.ce_forward(logits, labels, lse, loss)
    mod.ce_backward(logits, labels, lse, np.array(2.0, np.float32), grad)
    x = graphc.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(x, graphc.tensor(labels))
    (ref * 2.0).backward()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-5)
    np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_out_of_range_label_is_reported(tmp_path):
    mod = _kernels(tmp_path, 2, 3)
    with pytest.raises(ValueError, match="target class is out of range"):
        mod.ce_forward(np.zeros((2, 3), np.float32), np.array([0, 3]), np.empty(2, np.float32),
                       np.empty((), np.float32))
