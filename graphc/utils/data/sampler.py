"""Samplers: the order in which a DataLoader visits a map-style dataset, and how it groups a batch.

    graphc.manual_seed(0); list(RandomSampler(range(4))) -> the same permutation on every run

Random samplers draw from `graphc.random.default_generator` (so `graphc.manual_seed` fixes the
order of every epoch) or from the `graphc.Generator` they are given. Our samplers can hand
BatchSampler a whole epoch's order as one numpy array (`_epoch_indices`), so batching an epoch
costs one slice per batch instead of one Python step per sample.
"""
from __future__ import annotations

import numpy as np


def numpy_rng(generator=None):
    """The numpy Generator behind a graphc.Generator (or the default one); a numpy Generator passes through."""
    if generator is None:
        from ...random import default_generator
        return default_generator.np
    if isinstance(generator, np.random.Generator):
        return generator
    if hasattr(generator, "np"):
        return generator.np
    raise TypeError(f"generator must be a graphc.Generator, got {type(generator).__name__}")


class Sampler:
    """Yields dataset indices (or, for a batch sampler, lists of them)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError

    def _epoch_indices(self):
        """One epoch's indices as an int64 array, or None when only iteration can tell."""
        return None


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _epoch_indices(self):
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random permutation every epoch (or draws with replacement).   RandomSampler(ds, generator=g)"""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def _epoch_indices(self):
        n, rng = len(self.data_source), numpy_rng(self.generator)
        if self.replacement:
            return rng.integers(0, n, size=self.num_samples, dtype=np.int64)
        full, rest = divmod(self.num_samples, n)
        parts = [rng.permutation(n) for _ in range(full)]
        if rest:
            parts.append(rng.permutation(n)[:rest])
        return np.concatenate(parts).astype(np.int64, copy=False)

    def __iter__(self):
        return iter(self._epoch_indices().tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order each epoch."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def _epoch_indices(self):
        return np.asarray(self.indices, dtype=np.int64)[numpy_rng(self.generator).permutation(len(self.indices))]

    def __iter__(self):
        return iter(self._epoch_indices().tolist())

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """Indices 0..len(weights)-1 drawn with probability proportional to `weights`."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        self.weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def _epoch_indices(self):
        p = self.weights / self.weights.sum()
        return numpy_rng(self.generator).choice(len(p), size=self.num_samples, replace=self.replacement,
                                                p=p).astype(np.int64)

    def __iter__(self):
        return iter(self._epoch_indices().tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of batch_size.

    list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)) -> [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        bs = self.batch_size
        # Only our own samplers' orders are known as arrays; a subclass that overrides __iter__ is iterated.
        if getattr(type(self.sampler), "__iter__", None) in _ARRAY_ITERS:
            order = self.sampler._epoch_indices()
            stop = len(order) - len(order) % bs if self.drop_last else len(order)
            for start in range(0, stop, bs):
                yield order[start:start + bs].tolist()
            return
        batch = []
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == bs:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else (n + self.batch_size - 1) // self.batch_size


_ARRAY_ITERS = {SequentialSampler.__iter__, RandomSampler.__iter__, SubsetRandomSampler.__iter__,
                WeightedRandomSampler.__iter__}
