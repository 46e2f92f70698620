"""DistributedSampler: each rank's share of a dataset, as torch.utils.data.distributed.DistributedSampler.

    sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=False)
    list(sampler) on 5 items -> [1, 3, 0]        # padded by wrapping around to 6 = 3 per rank
    sampler.set_epoch(epoch)                      # before each epoch: a new shared permutation

Every rank draws the same permutation (seeded with seed + epoch, not from the global generator),
pads it by repeating its start until it divides evenly (or, with drop_last, cuts the tail), and
takes every num_replicas-th index from position `rank`. Only the shuffled order differs from
torch's (numpy's permutation, not torch.randperm); the padding and striding are torch's.
"""
from __future__ import annotations

import math

import numpy as np

from .sampler import Sampler


class DistributedSampler(Sampler):
    """Indices of rank `rank` out of `num_replicas` ranks (default: from graphc.distributed)."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        from ... import distributed as dist
        if num_replicas is None:
            num_replicas = dist.get_world_size()
        if rank is None:
            rank = dist.get_rank()
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas should be a positive integer, got {num_replicas!r}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            # Drop the tail so that every rank gets the same amount of data.
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def _epoch_indices(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n).astype(np.int64)
        else:
            indices = np.arange(n, dtype=np.int64)
        if not self.drop_last:
            padding = self.total_size - n
            if padding > 0:
                indices = np.concatenate([indices, np.resize(indices, padding)])   # np.resize repeats from the start
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        return indices[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return iter(self._epoch_indices().tolist())

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use `epoch` in the seed of the next permutation: call it before every epoch, on every rank."""
        self.epoch = epoch
