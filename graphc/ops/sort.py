"""Sorting: the int64 permutation that sorts along one dim (torch.argsort).

    argsort([3., 1., 2.], axis=0, descending=False) -> [1, 2, 0]

A primitive because ordering is not expressible in the other primitives.  sort and topk are
composites: values = gather(x, argsort(x)), so their gradient flows through gather.  The sort is
always stable (ties keep their input order, also when descending), which is what torch's
stable=True gives and a valid answer for stable=False; NaN sorts as the largest value, as in torch.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError
from .gather import check_axis
from .registry import OPAQUE, defop


def _infer_argsort(x, axis, descending):
    if x.dtype.kind not in "biuf":
        raise DTypeError("argsort", f"cannot sort a tensor of dtype {x.dtype}")
    check_axis("argsort", axis, len(x.shape))
    return tuple(x.shape), np.dtype(np.int64)


@defop("argsort", kind=OPAQUE, infer=_infer_argsort, nondiff=True, attrs=("axis", "descending"))
class Argsort:
    """Indices that sort along axis (stable).   argsort([3., 1., 3.], axis=0, descending=True) -> [0, 2, 1]"""

    @staticmethod
    def impl(x, axis, descending):
        if x.ndim == 0:
            return np.zeros((), np.int64)
        axis %= x.ndim
        if x.dtype == np.bool_:
            x = x.astype(np.int8)
        if not descending:
            return np.argsort(x, axis=axis, kind="stable").astype(np.int64)
        # Descending and stable: sort the reversed array ascending, read the order backwards, and map
        # positions back; ties keep their input order and NaN (last ascending) comes first.
        n = x.shape[axis]
        rev = np.flip(x, axis)
        order = np.flip(np.argsort(rev, axis=axis, kind="stable"), axis)
        return (n - 1 - order).astype(np.int64)
