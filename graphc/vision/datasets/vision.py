"""VisionDataset: the root / transform / target_transform plumbing torchvision's datasets share."""
from __future__ import annotations

import os

from ...utils.data import Dataset


class VisionDataset(Dataset):
    """A dataset stored under `root`, whose samples pass through `transform` and `target_transform`."""

    _repr_indent = 4

    def __init__(self, root=None, transforms=None, transform=None, target_transform=None):
        if isinstance(root, str):
            root = os.path.expanduser(root)
        self.root = root
        if transforms is not None and (transform is not None or target_transform is not None):
            raise ValueError("Only transforms or transform/target_transform can be passed as argument")
        self.transform = transform
        self.target_transform = target_transform
        self.transforms = transforms

    def __len__(self):
        raise NotImplementedError

    def extra_repr(self):
        return ""

    def __repr__(self):
        pad = " " * self._repr_indent
        lines = [f"Number of datapoints: {len(self)}"]
        if self.root is not None:
            lines.append(f"Root location: {self.root}")
        lines += [line for line in self.extra_repr().splitlines() if line]
        for name in ("transform", "target_transform"):
            value = getattr(self, name)
            if value is not None:
                title = "Transform: " if name == "transform" else "Target transform: "
                body = repr(value).splitlines()
                lines.append(title + body[0])
                lines += [" " * len(title) + rest for rest in body[1:]]
        return "\n".join([f"Dataset {type(self).__name__}"] + [pad + line for line in lines])
