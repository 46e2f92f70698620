"""Dropout layers: active in training mode, the identity after .eval().

    nn.Dropout(0.25)(x) -> x with ~25% zeros and the rest scaled by 4/3 (training)
"""
from __future__ import annotations

from . import functional as F
from .module import Module


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero elements with probability p.   Dropout(p=0.5, inplace=False)"""

    def forward(self, input):
        return F.dropout(input, self.p, self.training)


class Dropout1d(_DropoutNd):
    """Zero whole channels of [N, C, L] input."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Zero whole channels of [N, C, H, W] input (element-wise, with torch's warning, on 2-D input)."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training)
