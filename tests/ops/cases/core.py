"""The op table's building blocks: the case record C, the input domains and draw, lib/nnf (graphc or torch).

    C("add_bcast", lambda a, b: a + b, np.add, [(3, 1), (4,)])
"""
from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

import graphc
from graphc.functional import apply_op

SAME = "same"   # the case's fn also runs on torch tensors, unchanged

F32 = np.dtype(np.float32)


def lib(t):
    """The module whose functions take t: graphc for graphc tensors, torch for torch tensors."""
    return graphc if isinstance(t, graphc.Tensor) else sys.modules["torch"]


def nnf(t):
    """graphc.nn.functional or torch.nn.functional, for t's kind of tensor."""
    if isinstance(t, graphc.Tensor):
        import graphc.nn.functional as F
        return F
    return _tF()


def _torch():
    import torch
    return torch


def _tF():
    import torch.nn.functional as tF
    return tF


# --- input domains ------------------------------------------------------------------------------
# A float domain follows the dtype under test (float32 forward, float64 gradients); the others
# give fixed dtypes.  ("fixed", d) draws floats from d that the case does not differentiate against
# (a shape donor, the input that picks max-pool's argmax).

def _uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def _nonzero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)


def _distinct(rng, shape):
    # Values at least 0.08 apart, so a finite-difference step never swaps two of them (max, pools).
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.1 + rng.uniform(0, 0.02, n)).reshape(shape)


FLOAT_DOMAINS = {
    "real": lambda rng, shape: rng.standard_normal(shape),
    "pos": _uniform(0.5, 2.0),
    "nonzero": _nonzero,
    "wide": _uniform(-60.0, 60.0),
    "distinct": _distinct,
    "intfloat": lambda rng, shape: rng.integers(-2, 3, shape).astype(np.float64),   # ties on purpose
    "nonfinite": lambda rng, shape: rng.choice([np.nan, np.inf, -np.inf, 0.5, -2.0], shape),
}

OTHER_DOMAINS = {
    "int": lambda rng, shape: rng.integers(-4, 5, shape).astype(np.int64),
    "nzint": lambda rng, shape: (rng.choice([-1, 1], shape) * rng.integers(1, 5, shape)).astype(np.int64),
    "bool": lambda rng, shape: rng.random(shape) < 0.5,
}


def is_float_domain(domain):
    """Whether the input is a float the case differentiates against (("fixed", d) is a float held constant)."""
    return domain in FLOAT_DOMAINS or (isinstance(domain, tuple) and domain[0] == "uniform")


def draw(domain, shape, float_dtype, rng):
    """One input array.   draw("pos", (2,), float32, rng) -> 2 floats in [0.5, 2)"""
    if isinstance(domain, tuple):
        kind, *args = domain
        if kind == "uniform":
            return np.asarray(_uniform(*args)(rng, shape), dtype=float_dtype)
        if kind == "label":                      # class indices in [0, n)
            return np.asarray(rng.integers(0, args[0], shape), dtype=np.int64)
        if kind == "value":                      # a fixed int64 value (seeds, offsets)
            return np.full(shape, args[0], dtype=np.int64)
        if kind == "fixed":                      # floats that only steer the op (pool argmax input, shape donor)
            return draw(args[0], shape, float_dtype, rng)
        raise ValueError(f"unknown domain {domain!r}")
    if domain in FLOAT_DOMAINS:
        return np.asarray(FLOAT_DOMAINS[domain](rng, shape), dtype=float_dtype)
    return np.asarray(OTHER_DOMAINS[domain](rng, shape))


@dataclass(frozen=True)
class Case:
    """One line of the table; see C() for the meaning of each field."""

    name: str
    fn: Callable
    ref: Callable
    shapes: tuple
    domains: tuple
    torch: Optional[Callable]
    out: str
    grad: bool
    rtol: float
    atol: float
    traceable: bool = True

    def __repr__(self):
        return f"<case {self.name}>"

    def inputs(self, float_dtype=F32, seed=0):
        """The case's input arrays, the same on every run (seeded by name)."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()) + seed)
        return [draw(d, s, np.dtype(float_dtype), rng) for d, s in zip(self.domains, self.shapes)]

    def float_inputs(self):
        """Positions of the inputs that are floats (those a gradient is taken against)."""
        return [i for i, d in enumerate(self.domains) if is_float_domain(d)]

    def out_dtype(self, float_dtype=F32):
        return np.dtype(float_dtype) if self.out == "float" else np.dtype(self.out)

    def run_torch(self, *tensors):
        return (self.fn if self.torch == SAME else self.torch)(*tensors)


def C(name, fn, ref, shapes, dom="real", *, torch=SAME, out="float", grad=None, rtol=1e-5, atol=1e-6, traceable=True):
    """A case.   name: unique id; fn(*tensors); ref(*ndarrays) (numpy, float64 values);
    shapes: one per input; dom: one domain for all inputs or a tuple, one per input;
    torch: SAME (fn runs on torch tensors too), a torch function, or None;
    out: result dtype, "float" = the float inputs' dtype; grad: differentiable (default: a float
    result of float inputs); rtol/atol: forward tolerance against the float64 reference;
    traceable: False for eager-only cases (a result shape that depends on the data).
    """
    shapes = tuple(tuple(s) for s in shapes)
    single = isinstance(dom, str) or (isinstance(dom, tuple) and dom[:1] in (("uniform",), ("label",), ("value",),
                                                                               ("fixed",)))
    domains = (dom,) * len(shapes) if single else tuple(dom)
    assert len(domains) == len(shapes), f"{name}: {len(shapes)} shapes but {len(domains)} domains"
    if grad is None:
        grad = out == "float" and any(is_float_domain(d) for d in domains)
    return Case(name, fn, ref, shapes, domains, torch, out, grad, rtol, atol, traceable)


SUM_TOL = dict(rtol=1e-5, atol=1e-5)   # sums of a few dozen float32 terms


# Here, not in a family module: cross_entropy's composite (nn_ops) and the one_hot cases (sources) both use it.
def one_hot(y, n=4):
    return apply_op("one_hot", y, num_classes=n, dtype=F32)

