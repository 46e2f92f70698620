"""Parameter: a Tensor that a Module registers as a learnable weight.

    p = nn.Parameter(graphc.zeros(3)); p.requires_grad -> True; isinstance(p, graphc.Tensor) -> True
"""
from __future__ import annotations

import numpy as np

from ..tensor import DEFAULT_DTYPE, Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad and registers itself when assigned to a Module attribute.

        nn.Parameter(graphc.ones(2)) -> Parameter containing:\\ntensor([1., 1.], requires_grad=True)
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = Tensor._wrap(np.empty((0,), dtype=DEFAULT_DTYPE))
        elif not isinstance(data, Tensor):
            data = Tensor(data)
        # No copy: the Parameter takes over the tensor's storage, as torch.nn.Parameter does, so
        # `Parameter(t)` and `t` see the same numbers (init code often relies on that).
        self._value = data._value
        self._grad = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
