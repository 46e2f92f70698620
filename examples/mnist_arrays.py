"""MNIST as numpy arrays for the side-by-side examples: the same batches feed graphc and PyTorch.

    x, y = load("train", limit=6000)     # x: f32 [6000, 1, 28, 28] in [0, 1], y: i64 [6000]
    for xb, yb in batches(x, y, 64, seed=0): ...

The examples read the IDX files with numpy rather than through a dataset class, so that the same text
runs under PyTorch without torchvision installed.
"""
import gzip
import os

import numpy as np

RAW = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "MNIST", "raw")


def _idx(name):
    with gzip.open(os.path.join(RAW, name + ".gz"), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split, limit=None):
    """(images f32 [N, 1, 28, 28] scaled to [0, 1], labels i64 [N]) of the first `limit` samples of a split."""
    prefix = "train" if split == "train" else "t10k"
    images = _idx(f"{prefix}-images-idx3-ubyte")[:limit]
    labels = _idx(f"{prefix}-labels-idx1-ubyte")[:limit]
    return (images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)


def batches(x, y, batch_size, seed=None, drop_last=False):
    """(x, y) batches in a shuffled order (seed given) or in order (seed=None)."""
    order = np.arange(len(x)) if seed is None else np.random.default_rng(seed).permutation(len(x))
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        yield np.ascontiguousarray(x[idx]), y[idx]
