"""DataLoader, samplers, collation and the small datasets, against torch.utils.data's behaviour."""
import collections

import numpy as np
import pytest

import graphc
import graphc as torch   # the user's spelling: torch.utils.data must resolve lazily
from graphc.utils.data import (BatchSampler, CollatedBatch, ConcatDataset, DataLoader, Dataset, IterableDataset,
                               RandomSampler, SequentialSampler, Subset, TensorDataset, default_collate,
                               default_convert, random_split)


class Squares(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return i * i


def _values(batches):
    return [b.tolist() for b in batches]


def test_utils_data_resolves_after_import_graphc():
    assert torch.utils.data.DataLoader is DataLoader
    assert torch.utils.data.TensorDataset is TensorDataset


def test_sequential_batches_and_len():
    loader = DataLoader(Squares(), batch_size=4)
    assert len(loader) == 3
    assert _values(loader) == [[0, 1, 4, 9], [16, 25, 36, 49], [64, 81]]
    assert loader.batch_size == 4 and isinstance(loader.dataset, Squares)
    batch = next(iter(loader))
    assert batch.dtype == np.int64


def test_drop_last():
    loader = DataLoader(Squares(), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert _values(loader) == [[0, 1, 4, 9], [16, 25, 36, 49]]


def test_batch_size_none_yields_samples():
    assert list(DataLoader(Squares(), batch_size=None))[:3] == [0, 1, 4]
    out = list(DataLoader([np.array([1.0, 2.0])], batch_size=None))
    assert isinstance(out[0], graphc.Tensor) and out[0].tolist() == [1.0, 2.0]


def test_shuffle_is_a_permutation_and_reproducible_with_manual_seed():
    loader = DataLoader(Squares(), batch_size=3, shuffle=True)
    graphc.manual_seed(0)
    first = sum(_values(loader), [])
    second = sum(_values(loader), [])
    graphc.manual_seed(0)
    again = sum(_values(loader), [])
    assert sorted(first) == [i * i for i in range(10)]
    assert first == again
    assert first != second   # a new order each epoch


def test_shuffle_with_explicit_generator():
    orders = []
    for _ in range(2):
        g = graphc.Generator().manual_seed(123)
        orders.append(sum(_values(DataLoader(Squares(), batch_size=4, shuffle=True, generator=g)), []))
    assert orders[0] == orders[1]
    assert list(RandomSampler(range(5), generator=graphc.Generator().manual_seed(1))) == \
        list(RandomSampler(range(5), generator=graphc.Generator().manual_seed(1)))


def test_samplers():
    assert list(SequentialSampler(range(3))) == [0, 1, 2]
    assert list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, drop_last=True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, drop_last=False)) == 3
    graphc.manual_seed(0)
    drawn = list(RandomSampler(range(4), replacement=True, num_samples=7))
    assert len(drawn) == 7 and all(0 <= i < 4 for i in drawn)
    more = list(RandomSampler(range(3), num_samples=5))   # one whole permutation, then part of another
    assert len(more) == 5 and sorted(more[:3]) == [0, 1, 2]


def test_custom_sampler_subclass_is_iterated():
    class Reversed(SequentialSampler):
        def __iter__(self):
            return iter(range(len(self.data_source) - 1, -1, -1))
    loader = DataLoader(Squares(), batch_size=5, sampler=Reversed(Squares()))
    assert _values(loader)[0] == [81, 64, 49, 36, 25]


def test_batch_sampler_argument():
    loader = DataLoader(Squares(), batch_sampler=[[0, 2], [4]])
    assert _values(loader) == [[0, 4], [16]]
    assert len(loader) == 2 and loader.batch_size is None


def test_argument_conflicts():
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(Squares(), sampler=SequentialSampler(Squares()), shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(Squares(), batch_sampler=[[0]], batch_size=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        DataLoader(Squares(), bogus=1)


def test_worker_arguments_are_accepted_and_run_in_process():
    loader = DataLoader(Squares(), batch_size=5, num_workers=4, pin_memory=True, persistent_workers=True,
                        prefetch_factor=2, worker_init_fn=lambda i: None)
    assert _values(loader) == [[0, 1, 4, 9, 16], [25, 36, 49, 64, 81]]
    assert torch.utils.data.get_worker_info() is None


def test_default_collate_numbers_follow_torch():
    assert default_collate([1, 2]).dtype == np.int64
    assert default_collate([1.0, 2.0]).dtype == np.float64   # torch: Python floats collate to float64
    assert default_collate([True, False]).dtype == np.bool_
    assert default_collate([np.float32(1), np.float32(2)]).dtype == np.float32
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_default_collate_tuples_dicts_and_tensors():
    samples = [(graphc.tensor([1.0, 2.0]), 3), (graphc.tensor([4.0, 5.0]), 6)]
    xs, ys = default_collate(samples)
    assert isinstance(default_collate(samples), list)   # tuples collate to a list, as in torch
    assert xs.shape == (2, 2) and xs.dtype == np.float32 and xs.tolist() == [[1.0, 2.0], [4.0, 5.0]]
    assert ys.tolist() == [3, 6]
    out = default_collate([{"a": 1, "b": [1.0, np.zeros(2)]}, {"a": 2, "b": [2.0, np.ones(2)]}])
    assert out["a"].tolist() == [1, 2]
    assert out["b"][0].dtype == np.float64 and out["b"][1].shape == (2, 2)
    Point = collections.namedtuple("Point", "x y")
    p = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(p, Point) and p.x.tolist() == [1, 3]


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got \[2\] at entry 0 "
                                           r"and \[3\] at entry 1"):
        default_collate([graphc.zeros(2), graphc.zeros(3)])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="batch must contain tensors, numpy arrays, numbers, dicts or lists"):
        default_collate([None, None])


def test_default_convert():
    assert isinstance(default_convert(np.zeros(2)), graphc.Tensor)
    assert default_convert((np.int64(1), "s"))[1] == "s"


def test_tensor_dataset_batched_path_equals_per_sample_path():
    x = graphc.arange(20, dtype=graphc.float32).reshape(10, 2)
    y = graphc.arange(10)
    ds = TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    assert xi.tolist() == [6.0, 7.0] and yi.item() == 3
    batch = ds.__getitems__([3, 1, 7])
    assert isinstance(batch, CollatedBatch) and len(batch) == 3
    fast = default_collate(batch)
    slow = default_collate([ds[i] for i in [3, 1, 7]])
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype and a.tolist() == b.tolist()
    assert batch[1][0].tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(graphc.zeros(3), graphc.zeros(4))


def test_tensor_dataset_loader():
    x = graphc.arange(20, dtype=graphc.float32).reshape(10, 2)
    y = graphc.arange(10)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [tuple(b[0].shape) for b in batches] == [(4, 2), (4, 2), (2, 2)]
    assert batches[2][1].tolist() == [8, 9]


def test_user_collate_fn_gets_samples_even_from_a_batched_dataset():
    x, y = graphc.arange(6, dtype=graphc.float32), graphc.arange(6)
    seen = []

    def collate(samples):
        seen.append(samples)
        return len(samples)

    assert list(DataLoader(TensorDataset(x, y), batch_size=4, collate_fn=collate)) == [4, 2]
    assert isinstance(seen[0], list) and seen[0][1][1].item() == 1


def test_random_split():
    parts = random_split(range(10), [7, 3], generator=graphc.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [7, 3]
    assert sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    again = random_split(range(10), [7, 3], generator=graphc.Generator().manual_seed(0))
    assert list(parts[0]) == list(again[0])
    frac = random_split(range(10), [0.5, 0.3, 0.2])
    assert [len(p) for p in frac] == [5, 3, 2]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(range(10), [5, 4])


def test_subset_forwards_batched_fetch():
    x, y = graphc.arange(10, dtype=graphc.float32), graphc.arange(10)
    sub = Subset(TensorDataset(x, y), [9, 8, 7])
    assert sub[0][1].item() == 9 and len(sub) == 3
    xb, yb = next(iter(DataLoader(sub, batch_size=3)))
    assert yb.tolist() == [9, 8, 7]


def test_concat_dataset():
    ds = ConcatDataset([Squares(), Squares()])
    assert len(ds) == 20 and ds[12] == 4 and ds[-1] == 81
    assert len(Squares() + Squares()) == 20


def test_iterable_dataset():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(7))

    loader = DataLoader(Stream(), batch_size=3)
    assert _values(loader) == [[0, 1, 2], [3, 4, 5], [6]]
    assert _values(DataLoader(Stream(), batch_size=3, drop_last=True)) == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        DataLoader(Stream(), shuffle=True)
    with pytest.raises(TypeError):
        len(loader)


def test_iterator_protocol():
    it = iter(DataLoader(Squares(), batch_size=4))
    assert len(it) == 3
    assert next(it).tolist() == [0, 1, 4, 9]


def test_worker_keywords_are_checked_as_torch_checks_them():

    data = list(range(10))
    with pytest.raises(ValueError, match="prefetch_factor option could only be specified in multiprocessing"):
        DataLoader(data, prefetch_factor=2)
    with pytest.raises(ValueError, match="persistent_workers option needs num_workers > 0"):
        DataLoader(data, persistent_workers=True)


def test_workers_and_shuffle_through_kwargs_give_torch_batches_in_torch_order():
    """num_workers/pin_memory do not change the batches: with the same generator, the same order as torch."""
    import torch
    kwargs = {"num_workers": 2, "pin_memory": True, "shuffle": True, "persistent_workers": True,
              "prefetch_factor": 2, "drop_last": True}
    data = list(range(23))
    ours = [b.tolist() for b in DataLoader(data, batch_size=5, generator=graphc.Generator().manual_seed(3), **kwargs)]
    again = [b.tolist() for b in DataLoader(data, batch_size=5, generator=graphc.Generator().manual_seed(3),
                                            num_workers=0, shuffle=True, drop_last=True)]
    assert ours == again and len(ours) == 4 and sorted(sum(ours, [])) != data[:20]
    theirs = torch.utils.data.DataLoader(data, batch_size=5, num_workers=0, shuffle=False, drop_last=True)
    ours_seq = DataLoader(data, batch_size=5, num_workers=2, persistent_workers=True, drop_last=True)
    assert [b.tolist() for b in ours_seq] == [b.tolist() for b in theirs]


def test_samplers_have_torch_names_and_paths():
    import graphc.utils.data.sampler as sampler_module
    from graphc.utils.data import BatchSampler, Sampler, SequentialSampler, SubsetRandomSampler
    assert sampler_module.Sampler is Sampler
    assert list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)) == [[0, 1], [2, 3], [4]]
    assert sorted(SubsetRandomSampler([3, 1, 4], generator=graphc.Generator().manual_seed(0))) == [1, 3, 4]


def test_accelerator_is_absent_as_on_a_cpu_only_torch():
    assert graphc.accelerator.is_available() is False
    assert graphc.accelerator.current_accelerator() is None
    assert graphc.xpu.is_available() is False
    x = graphc.ones(2).to(graphc.device("cpu"))
    assert str(x.device) == "cpu"
