"""Datasets, as torchvision.datasets.   MNIST(root='./data', train=True, transform=ToTensor())"""
from .mnist import MNIST, FashionMNIST
from .vision import VisionDataset

__all__ = ["FashionMNIST", "MNIST", "VisionDataset"]


def __getattr__(name):
    if name[:1].isupper():
        raise AttributeError(f"graphc.vision.datasets has no {name!r}: graphc provides MNIST and FashionMNIST; "
                             f"wrap other data in graphc.utils.data.TensorDataset or a Dataset subclass")
    raise AttributeError(f"module 'graphc.vision.datasets' has no attribute {name!r}")
