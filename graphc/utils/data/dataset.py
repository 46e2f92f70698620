"""Datasets: the map-style and iterable protocols, and the small wrappers torch.utils.data has.

    ds = TensorDataset(x, y); ds[0] -> (x[0], y[0]); train, val = random_split(ds, [0.9, 0.1])

A map-style dataset may add `__getitems__(indices) -> samples` (PyTorch 2.x's batched fetch);
the DataLoader calls it once per batch. TensorDataset and Subset implement it, returning a
`CollatedBatch` when they can gather the whole batch with one numpy fancy index.
"""
from __future__ import annotations

import bisect
import math
import warnings

import numpy as np

from ...tensor import Tensor
from .collate import CollatedBatch
from .sampler import numpy_rng


class Dataset:
    """A map-style dataset: `__getitem__(index)` and, usually, `__len__`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset that is a stream: implement `__iter__` (DataLoader batches what it yields)."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other):
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the rows of tensors sharing their first dimension.   TensorDataset(x, y)[i] -> (x[i], y[i])"""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"Size mismatch between tensors: first dimensions "
                             f"{[int(t.shape[0]) for t in tensors]} differ")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices):
        if any(not isinstance(t, Tensor) or t.requires_grad or t._is_traced() for t in self.tensors):
            return [self[i] for i in indices]
        idx = _index_array(indices)
        columns = [Tensor._wrap(t._value[idx]) for t in self.tensors]
        return CollatedBatch(columns, lambda i: self[int(idx[i])], len(idx))

    def __len__(self):
        return int(self.tensors[0].shape[0])


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order.   Subset(ds, [3, 1])[0] -> ds[3]"""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices):
        inner = [self.indices[i] for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after another.   len(ConcatDataset([a, b])) == len(a) + len(b)"""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx = len(self) + idx
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        start = 0 if which == 0 else self.cumulative_sizes[which - 1]
        return self.datasets[which][idx - start]


class ChainDataset(IterableDataset):
    """Several iterable datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self):
        return sum(len(d) for d in self.datasets)


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping random Subsets of the given lengths (or fractions summing to 1).

    random_split(range(10), [7, 3], generator=graphc.Generator().manual_seed(0)) -> [Subset(7), Subset(3)]
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1 and n != 1:
        counts = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(counts)):   # hand out the remainder round-robin, as PyTorch does
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.")
        lengths = counts
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    perm = numpy_rng(generator).permutation(n).tolist()
    out, offset = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[offset:offset + length]))
        offset += length
    return out


def _index_array(indices):
    """A batch of indices (list of ints, ndarray, 1-D Tensor) as an intp array."""
    if isinstance(indices, Tensor):
        indices = indices.numpy()
    return np.asarray(indices, dtype=np.intp)
