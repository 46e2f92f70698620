"""The op parity table: one line per case, every primitive in OPS and the composites of graphc.functional.

    C("add_bcast", lambda a, b: a + b, np.add, [(3, 1), (4,)])

A case is `fn(*tensors) -> tensor` (graphc tensors here, torch tensors in the parity suite when
`torch` is SAME, graphc-traced tensors under @graphc.compile in a backend suite), a numpy
reference over the same inputs as ndarrays, the input shapes, and a domain per input that
keeps the inputs where the op is smooth (positive for log, away from 0 for abs/relu, no ties
for max).  test_forward, test_gradients and test_torch_parity run every line; test_registry
checks that the table exercises every primitive in OPS.  The lines live in one module per op
family; CASES keeps the table's order.
"""
from __future__ import annotations

from .elementwise import BINARY, SPECIAL, UNARY
from .indexing import GATHER_SCATTER, INDEXING
from .linalg import EINSUM, MATMUL
from .nn_ops import CONV_POOL, SOFTMAX
from .reductions import NORMS_POSITIONAL, NORMS_VAR_STD, REDUCTIONS, SORT
from .shape import SHAPE, SPLIT_CUMSUM
from .sources import SOURCES

__all__ = ["CASES", "CASES_BY_NAME", "params"]

CASES = [*UNARY, *BINARY, *REDUCTIONS, *SOFTMAX, *MATMUL, *SHAPE, *NORMS_POSITIONAL, *INDEXING, *CONV_POOL, *SPECIAL,
         *GATHER_SCATTER, *SPLIT_CUMSUM, *SORT, *NORMS_VAR_STD, *EINSUM, *SOURCES]

CASES_BY_NAME = {c.name: c for c in CASES}
assert len(CASES_BY_NAME) == len(CASES), "two cases share a name"


# --- known graphc bugs -------------------------------------------------------------------------------
# Reported to the lead with a fix each.  The tests stay in the table as strict xfails: once the
# fix lands they XPASS, which fails the run, and the entry below is deleted.

SUITES = ("forward", "gradcheck", "grad_shape", "torch_forward", "torch_grad")
KNOWN_BUGS = {}   # case name -> {suite: reason}


def _bug(reason, suites, *names):
    for name in names:
        assert name in CASES_BY_NAME, name
        KNOWN_BUGS.setdefault(name, {}).update({suite: "graphc bug: " + reason for suite in suites})


def params(cases, suite):
    """pytest params for one suite (see SUITES), known graphc bugs marked xfail(strict=True)."""
    import pytest
    assert suite in SUITES, suite
    out = []
    for c in cases:
        reason = KNOWN_BUGS.get(c.name, {}).get(suite)
        out.append(pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=reason)] if reason else []))
    return out
