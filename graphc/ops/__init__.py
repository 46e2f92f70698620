"""The op table: importing this package registers every primitive in OPS.

    from graphc.ops import OPS;  OPS["exp"].impl(np.zeros(2)) -> [1., 1.]
"""
from . import (collective, conv, elementwise, gather, indexing, linalg, movement, reduce, scan, sort,  # noqa: F401
               source, special, trig)  # (registers the ops)
from .registry import (AUTODIFF, CONV, ELEMENTWISE, KINDS, MATMUL, MOVEMENT, OPAQUE, OPS, REDUCE, SOURCE,  # noqa: F401
                       OpDef, defop, get_op)
