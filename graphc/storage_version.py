"""Version counters of array storage, for PyTorch's rule on in-place writes under autograd.

    y = x.exp(); x.add_(1) (in place) bumps x's storage; y.backward() then raises instead of
    using the new x: "one of the variables needed for gradient computation has been modified by
    an inplace operation".

A counter belongs to the storage (the base ndarray), so a write through any view of it counts.
"""
from __future__ import annotations

import weakref

import numpy as np

_versions: dict[int, int] = {}


def storage(arr):
    """The ndarray that owns arr's memory (arr itself when it owns it)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def version(arr):
    """How many in-place writes arr's storage has seen.   version(np.zeros(2)) -> 0"""
    return _versions.get(id(storage(arr)), 0) if isinstance(arr, np.ndarray) else 0


def bump(arr):
    """Record one in-place write into arr's storage."""
    if not isinstance(arr, np.ndarray):
        return
    root = storage(arr)
    key = id(root)
    if key not in _versions:
        weakref.finalize(root, _versions.pop, key, None)   # the id may be reused once the array is gone
    _versions[key] = _versions.get(key, 0) + 1
