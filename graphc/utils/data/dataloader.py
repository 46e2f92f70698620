"""DataLoader: iterate a dataset in batches, as torch.utils.data.DataLoader does.

    loader = DataLoader(dataset, batch_size=64, shuffle=True)
    len(loader) -> batches per epoch; for x, y in loader: ...

Everything runs in the calling process. `num_workers`, `pin_memory`, `timeout`, `worker_init_fn`,
`multiprocessing_context`, `prefetch_factor`, `persistent_workers`, `pin_memory_device` and
`in_order` are accepted (and checked as PyTorch checks them) so PyTorch programs run unchanged;
the batches are the ones PyTorch's workers would deliver, in the same order (the sampler alone
decides them), because the batched fetch (`__getitems__`, see graphc.utils.data) makes a worker
pool's pickling cost more than it saves for in-memory datasets such as MNIST. No worker process
exists, so `worker_init_fn` is never called and `get_worker_info()` is always None; a dataset
whose samples depend on worker state should not rely on either.
"""
from __future__ import annotations

from .collate import CollatedBatch, default_collate, default_convert
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler

_WORKER_KWARGS = ("timeout", "worker_init_fn", "multiprocessing_context", "prefetch_factor", "persistent_workers",
                  "pin_memory_device", "in_order")


def get_worker_info():
    """None: graphc's DataLoader never starts worker processes."""
    return None


class DataLoader:
    """Batches of `dataset`, in order or shuffled, collated by `collate_fn` (default_collate)."""

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, generator=None, **worker_kwargs):
        unknown = sorted(set(worker_kwargs) - set(_WORKER_KWARGS))
        if unknown:
            raise TypeError(f"DataLoader.__init__() got an unexpected keyword argument {unknown[0]!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if num_workers == 0 and worker_kwargs.get("prefetch_factor") is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if num_workers == 0 and worker_kwargs.get("persistent_workers"):
            raise ValueError("persistent_workers option needs num_workers > 0")
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.generator = generator
        for key in _WORKER_KWARGS:
            setattr(self, key, worker_kwargs.get(key))
        self.timeout = self.timeout or 0
        self._iterable = isinstance(dataset, IterableDataset)

        if self._iterable:
            if shuffle not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified shuffle option, "
                                 f"but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler option, "
                                 f"but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                                 f"but got batch_sampler={batch_sampler}")
        else:
            if sampler is not None and shuffle:
                raise ValueError("sampler option is mutually exclusive with shuffle")
            if batch_sampler is not None:
                if batch_size != 1 or shuffle or sampler is not None or drop_last:
                    raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, "
                                     "sampler, and drop_last")
                batch_size, drop_last = None, False
            elif batch_size is None and drop_last:
                raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with "
                                 "drop_last")
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
            if batch_size is not None and batch_sampler is None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    @property
    def _auto_collation(self):
        return self.batch_sampler is not None or (self._iterable and self.batch_size is not None)

    def __len__(self):
        if self._iterable:
            n = len(self.dataset)   # TypeError for a stream without __len__, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __iter__(self):
        return _DataLoaderIter(self)

    def _batches(self):
        dataset, collate = self.dataset, self.collate_fn
        if self._iterable:
            yield from self._iterable_batches()
            return
        if self.batch_sampler is None:   # batch_size=None: one sample at a time
            for index in self.sampler:
                yield collate(dataset[index])
            return
        getitems = getattr(dataset, "__getitems__", None)
        if not callable(getitems):
            getitems = None
        for indices in self.batch_sampler:
            if getitems is not None:
                data = getitems(indices)
                if isinstance(data, CollatedBatch) and collate is not default_collate:
                    data = list(data)   # a user's collate_fn gets the samples, as in PyTorch
            else:
                data = [dataset[i] for i in indices]
            yield collate(data)

    def _iterable_batches(self):
        collate = self.collate_fn
        if self.batch_size is None:
            for sample in self.dataset:
                yield collate(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch = []
        if batch and not self.drop_last:
            yield collate(batch)


class _DataLoaderIter:
    """One pass over a DataLoader (what iter(loader) returns): next() gives the next batch."""

    def __init__(self, loader):
        self._loader = loader
        self._it = loader._batches()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._it)

    def __len__(self):
        return len(self._loader)
