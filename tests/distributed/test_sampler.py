"""DistributedSampler against torch's index lists: padding, striding, drop_last, epochs, seeds."""
import numpy as np
import pytest

from graphc.utils.data import DistributedSampler

torch = pytest.importorskip("torch")
from torch.utils.data.distributed import DistributedSampler as TorchSampler  # noqa: E402

CASES = [(n, replicas, drop_last) for n in (1, 2, 5, 10, 11, 17) for replicas in (1, 2, 3, 4, 7)
         for drop_last in (False, True) if not (drop_last and n < replicas)]


@pytest.mark.parametrize("n,replicas,drop_last", CASES)
def test_unshuffled_lists_equal_torch(n, replicas, drop_last):
    for rank in range(replicas):
        ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (11, 4, True), (5, 7, False), (17, 2, False)])
def test_shuffled_lists_equal_torch_given_the_same_permutation(n, replicas, drop_last, monkeypatch):
    """Only the permutation's generator differs (numpy vs torch.randperm): hand torch ours, and the lists match."""
    import torch.utils.data.distributed as torch_dist
    for epoch in (0, 3):
        perm = np.random.default_rng(5 + epoch).permutation(n)
        monkeypatch.setattr(torch_dist.torch, "randperm", lambda k, generator=None: torch.tensor(perm))
        for rank in range(replicas):
            ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, seed=5, drop_last=drop_last)
            theirs = TorchSampler(range(n), num_replicas=replicas, rank=rank, seed=5, drop_last=drop_last)
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == list(theirs)


def test_ranks_partition_the_epoch_and_epochs_differ():
    samplers = [DistributedSampler(range(12), num_replicas=3, rank=r, seed=1) for r in range(3)]
    first = [list(s) for s in samplers]
    assert sorted(sum(first, [])) == list(range(12))
    for s in samplers:
        s.set_epoch(1)
    second = [list(s) for s in samplers]
    assert sorted(sum(second, [])) == list(range(12)) and second != first
    again = DistributedSampler(range(12), num_replicas=3, rank=0, seed=1)
    assert list(again) == first[0]                     # same seed and epoch: the same order on every run
    assert list(DistributedSampler(range(12), num_replicas=3, rank=0, seed=2)) != first[0]


def test_bad_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in the interval \[0, 2\]"):
        DistributedSampler(range(4), num_replicas=3, rank=3)


def test_defaults_come_from_the_process_group():
    s = DistributedSampler(range(4))          # no group: a single process is rank 0 of 1
    assert (s.num_replicas, s.rank, len(s)) == (1, 0, 4)
