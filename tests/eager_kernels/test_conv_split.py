"""conv2d and its gradients give the same results when the batch is split across threads."""
import numpy as np
import pytest

import graphc
from graphc.eager_kernels import conv


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0)), ((2, 1), (1, 2))])
def test_batch_split_matches_one_thread(monkeypatch, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    monkeypatch.setattr(conv, "_CHUNK_BYTES", 2048)   # several chunks, so there is something to split
    before = graphc.get_num_threads()
    try:
        graphc.set_num_threads(1)
        y1 = conv.conv2d(x, w, stride, padding)
        gy = rng.standard_normal(y1.shape).astype(np.float32)
        gw1 = conv.conv2d_grad_weight(gy, x, (3, 3), stride, padding)
        gx1 = conv.conv2d_grad_input(gy, w, (9, 8), stride, padding)
        graphc.set_num_threads(2)
        monkeypatch.setattr(conv, "_SPLIT_MIN_FLOPS", 0)
        assert len(conv._chunks(conv._Geometry(6, 3, (9, 8), 4, (3, 3), stride, padding), 4)[0]) > 1
        np.testing.assert_array_equal(conv.conv2d(x, w, stride, padding), y1)   # disjoint images: exact
        np.testing.assert_array_equal(conv.conv2d_grad_input(gy, w, (9, 8), stride, padding), gx1)
        np.testing.assert_allclose(conv.conv2d_grad_weight(gy, x, (3, 3), stride, padding), gw1, rtol=1e-5, atol=1e-5)
    finally:
        graphc.set_num_threads(before)
