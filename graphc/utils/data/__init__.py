"""graphc.utils.data: Dataset, DataLoader, samplers and collation, mirroring torch.utils.data.

    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    for xb, yb in loader: ...          # xb: [64, ...] Tensor, yb: [64] Tensor

Speed: a dataset may offer `__getitems__(indices)` (PyTorch 2.x's batched-fetch protocol); the
DataLoader then fetches a whole batch with one call. graphc's own datasets (TensorDataset, Subset
of one, MNIST) return a `CollatedBatch` from it — the batch already stacked with numpy — which
`default_collate` passes through, so an epoch costs one vectorised fetch per batch rather than a
Python call, a transform and a collate per sample.
"""
from .collate import CollatedBatch, default_collate, default_convert
from .dataloader import DataLoader, get_worker_info
from .distributed import DistributedSampler
from .dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset,
                      random_split)
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                      WeightedRandomSampler)

__all__ = ["BatchSampler", "ChainDataset", "CollatedBatch", "ConcatDataset", "DataLoader", "Dataset",
           "DistributedSampler", "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
           "TensorDataset", "WeightedRandomSampler", "default_collate", "default_convert", "get_worker_info",
           "random_split"]
