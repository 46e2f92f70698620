"""Random numbers: a seedable Generator, manual_seed, and the creation functions that use it.

    graphc.manual_seed(0); graphc.rand(2) -> the same two numbers on every run

Two streams live in a Generator: numpy's PCG64 for parameter init (Tensor.uniform_/normal_),
randint, randperm and data shuffling (eager only), and a counter-based stream (seed, offset) for
rand, randn, their _like forms and dropout masks, which eager mode, the interpreter and every
compiled backend compute the same way from the op table's `uniform` op.  So noise drawn inside a
compiled step (a VAE's reparameterisation, say) is fresh on every call and equal to eager's.
"""
from __future__ import annotations

import numpy as np

from .tensor import DEFAULT_DTYPE, Tensor


class Generator:
    """A seedable source of random numbers, like torch.Generator.   g = Generator().manual_seed(1)"""

    def __init__(self, device="cpu"):
        self.manual_seed(np.random.SeedSequence().entropy % (2 ** 63))

    def manual_seed(self, seed):
        seed = int(seed)
        self._initial_seed = seed
        self.np = np.random.Generator(np.random.PCG64(seed))
        # 0-d tensors, so that a compiled step lifts them as state and writes the offset back.
        if getattr(self, "seed_tensor", None) is None:
            self.seed_tensor = Tensor._wrap(np.array(seed % (2 ** 63), dtype=np.int64))
            self.offset_tensor = Tensor._wrap(np.array(0, dtype=np.int64))
        else:   # in place: compiled functions hold these Tensor objects as lifted state
            self.seed_tensor._value[...] = seed % (2 ** 63)
            self.offset_tensor._value[...] = 0
        return self

    def initial_seed(self):
        return self._initial_seed

    def seed(self):
        return self.manual_seed(np.random.SeedSequence().entropy % (2 ** 63)).initial_seed()

    def get_state(self):
        return {"seed": self._initial_seed, "np": self.np.bit_generator.state,
                "offset": int(self.offset_tensor._value)}

    def set_state(self, state):
        self.manual_seed(state["seed"])
        self.np.bit_generator.state = state["np"]
        self.offset_tensor._value[...] = state["offset"]

    def uniform(self, shape):
        """Counter-based uniform [0, 1) floats of `shape`; advances the offset (traceable)."""
        from .tensor import apply
        offset = self.offset_tensor
        u = apply("uniform", self.seed_tensor, offset, shape=tuple(shape))
        from .autograd import no_grad
        with no_grad():
            self.offset_tensor._assign(offset + int(np.prod(shape)))
        return u


default_generator = Generator()


def manual_seed(seed):
    """Seed every random stream graphc uses.   graphc.manual_seed(42)"""
    default_generator.manual_seed(seed)
    return default_generator


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def _gen(generator):
    return (generator or default_generator).np


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(size[0])
    return tuple(int(s) for s in size)


def init_uniform(shape, dtype, generator=None):
    """Uniform [0, 1) floats from the numpy stream, for parameter init.   init_uniform((2,), 'float32')"""
    return Tensor._constant(_gen(generator).random(tuple(shape)).astype(np.dtype(dtype), copy=False))


def init_normal(shape, dtype, generator=None):
    """Standard normal floats from the numpy stream, for parameter init.   init_normal((2,), 'float32')"""
    return Tensor._constant(_gen(generator).standard_normal(tuple(shape)).astype(np.dtype(dtype), copy=False))


def _fresh(t, dtype, requires_grad):
    t = t.to(np.dtype(dtype or DEFAULT_DTYPE))
    return t.requires_grad_(True) if requires_grad else t


def rand(*size, generator=None, dtype=None, requires_grad=False, device=None):
    """Uniform [0, 1) floats from the counter-based stream (traceable).   rand(2, 3) -> shape [2, 3]"""
    return _fresh((generator or default_generator).uniform(_size(size)), dtype, requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad=False, device=None):
    """Standard normal floats from the counter-based stream (traceable).   randn(4) -> shape [4]"""
    shape = _size(size)
    gen = generator or default_generator
    u1, u2 = gen.uniform(shape), gen.uniform(shape)
    # Box-Muller: 1 - u1 lies in (0, 1], so the log is finite.
    z = ((1.0 - u1).log() * -2.0).sqrt() * (u2 * (2.0 * np.pi)).cos()
    return _fresh(z, dtype, requires_grad)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None):
    """Uniform integers in [low, high).   randint(0, 10, (3,)) -> int64 shape [3]"""
    if high is None:
        low, high = 0, low
    return Tensor._constant(_gen(generator).integers(low, high, size=tuple(size)).astype(np.dtype(dtype or np.int64)))


def randperm(n, generator=None, dtype=None, device=None):
    """A random permutation of 0..n-1.   randperm(4) -> e.g. [2, 0, 3, 1]"""
    return Tensor._constant(_gen(generator).permutation(n).astype(np.dtype(dtype or np.int64)))


def rand_like(x, generator=None, dtype=None):
    return rand(*x.shape, generator=generator, dtype=dtype or x.dtype)


def randn_like(x, generator=None, dtype=None):
    return randn(*x.shape, generator=generator, dtype=dtype or x.dtype)


def bernoulli(p, generator=None):
    """1.0 with probability p, elementwise, from the counter-based stream."""
    return ((generator or default_generator).uniform(tuple(p.shape)) < p).to(p.dtype)
