"""graphc.vision, as torchvision: datasets (MNIST, FashionMNIST) and transforms.

    import graphc.vision as torchvision
    from graphc.vision import datasets, transforms
    train = datasets.MNIST('./data', train=True, download=True, transform=transforms.ToTensor())
"""
from . import datasets, transforms  # noqa: F401

__all__ = ["datasets", "transforms"]
