"""graphc.vision, as torchvision: datasets (MNIST, FashionMNIST), transforms and utils (make_grid, save_image).

    import graphc.vision as torchvision
    from graphc.vision import datasets, transforms
    train = datasets.MNIST('./data', train=True, download=True, transform=transforms.ToTensor())
"""
from . import datasets, transforms, utils  # noqa: F401

__all__ = ["datasets", "transforms", "utils"]
