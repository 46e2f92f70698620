"""Op table: source ops (const, full, uniform, one_hot) and stop_gradient.

    C("full", lambda: apply_op("full", shape=(2, 3), value=0.25, dtype=F32), lambda: np.full((2, 3), 0.25), [])
"""
from __future__ import annotations

import numpy as np

from graphc.functional import apply_op

from .core import F32, C, _tF, _torch, one_hot
from .references import np_one_hot, np_uniform


SOURCES = [
    # source ops, one_hot, stop_gradient
    C("one_hot", one_hot, lambda y: np_one_hot(y, 4), [(5,)], ("label", 4), out="float32",
      torch=lambda y: _tF().one_hot(y, 4).float()),
    C("one_hot_2d", lambda y: one_hot(y, 3), lambda y: np_one_hot(y, 3), [(2, 3)], ("label", 3), out="float32",
      torch=lambda y: _tF().one_hot(y, 3).float()),
    C("const", lambda: apply_op("const", value=np.array([[1.5, -2.0]], dtype=np.float32)),
      lambda: np.array([[1.5, -2.0]]), [], out="float32", torch=None),
    C("full", lambda: apply_op("full", shape=(2, 3), value=0.25, dtype=F32), lambda: np.full((2, 3), 0.25), [],
      out="float32", torch=lambda: _torch().full((2, 3), 0.25)),
    C("uniform", lambda s, o: apply_op("uniform", s, o, shape=(3, 4)), lambda s, o: np_uniform(s, o, (3, 4)),
      [(), ()], (("value", 1234), ("value", 77)), out="float32", torch=None, rtol=0, atol=0),
    C("uniform_seed0", lambda s, o: apply_op("uniform", s, o, shape=(5,)), lambda s, o: np_uniform(s, o, (5,)),
      [(), ()], (("value", 0), ("value", 0)), out="float32", torch=None, rtol=0, atol=0),
    C("stop_gradient", lambda x: apply_op("stop_gradient", x), lambda x: x, [(3,)], grad=False,
      torch=lambda x: x.detach()),
    C("detach_in_expr", lambda x: x * x.detach(), lambda x: x * x, [(3,)], grad=False),
]
