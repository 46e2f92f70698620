"""Turning a list of samples into a batch, with torch.utils.data.default_collate's rules.

    default_collate([(tensor([1., 2.]), 3), (tensor([4., 5.]), 6)]) -> [tensor([[1., 2.], [4., 5.]]), tensor([3, 6])]

Tensors and numpy arrays are stacked (with numpy: collation is data plumbing, not part of any
graph), Python ints become int64, bools bool and floats float64 tensors (as in PyTorch), strings
stay lists, and tuples, lists, namedtuples and dicts are collated field by field.
"""
from __future__ import annotations

import collections.abc

import numpy as np

from ...tensor import Tensor


class CollatedBatch(collections.abc.Sequence):
    """The samples of one batch, fetched already collated by a dataset's vectorised `__getitems__`.

    `default_collate` returns `.collated` as it is. Anything else that asks for the samples (a
    user's collate_fn: the DataLoader hands it `list(batch)`) gets them one by one from `sample(i)`,
    which must equal what the dataset's `__getitem__` returns for the i-th index.
    """

    __slots__ = ("collated", "_sample", "_n")

    def __init__(self, collated, sample, n):
        self.collated = collated
        self._sample = sample
        self._n = int(n)

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._sample(j) for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"batch index {i} out of range for a batch of {self._n}")
        return self._sample(i % self._n)

    def __repr__(self):
        return f"CollatedBatch(n={self._n})"


_BAD_TYPE = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _wrap(array):
    return Tensor._wrap(array)


def _is_numpy_text(array):
    return array.dtype.kind in "SUOa"


def default_collate(batch):
    """Stack a list of samples into a batch (see the module docstring for the rules)."""
    if isinstance(batch, CollatedBatch):
        return batch.collated
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)):
        batch = list(batch)
    if len(batch) == 0:
        raise IndexError("default_collate: cannot collate an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if type(elem).__module__ == "numpy" and not isinstance(elem, (np.str_, np.bytes_)):
        if isinstance(elem, np.ndarray):
            if _is_numpy_text(elem):
                raise TypeError(_BAD_TYPE.format(elem.dtype))
            return _stack_arrays([np.asarray(b) for b in batch])
        if isinstance(elem, np.generic):   # numpy scalar: keep its dtype
            return _wrap(np.array(batch, dtype=elem.dtype))
    if isinstance(elem, bool):
        return _wrap(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return _wrap(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return _wrap(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        out = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(out)
        except TypeError:
            return out
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):   # namedtuple
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(b) != size for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        columns = [default_collate(list(samples)) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return columns   # a list, as PyTorch returns for tuples
        try:
            return type(elem)(columns)
        except TypeError:
            return columns
    raise TypeError(_BAD_TYPE.format(type(elem)))


def _stack_arrays(arrays):
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        bad = next(i for i, a in enumerate(arrays) if a.shape != first)
        raise RuntimeError(f"stack expects each tensor to be equal size, but got {list(first)} at entry 0 and "
                           f"{list(arrays[bad].shape)} at entry {bad}")
    return _wrap(np.stack(arrays))


def _stack_tensors(batch):
    if any(t.requires_grad for t in batch):   # keep the tape (rare in data pipelines)
        from ...functional import stack
        return stack(batch)
    return _stack_arrays([t._value for t in batch])


def default_convert(data):
    """What DataLoader(batch_size=None) applies to each sample: numpy arrays and scalars become Tensors."""
    if isinstance(data, Tensor):
        return data
    if type(data).__module__ == "numpy":
        if isinstance(data, np.ndarray):
            return data if _is_numpy_text(data) else _wrap(data)
        if isinstance(data, np.generic) and not isinstance(data, (np.str_, np.bytes_)):
            return _wrap(np.asarray(data))
        return data
    if isinstance(data, collections.abc.Mapping):
        out = {key: default_convert(value) for key, value in data.items()}
        try:
            return type(data)(out)
        except TypeError:
            return out
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data
