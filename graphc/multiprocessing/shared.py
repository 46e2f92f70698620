"""Tensor storage in shared memory, so that processes update one model in place (Hogwild).

    model.share_memory()            # each parameter's array now lives in a named shared-memory block
    mp.Process(target=train, args=(model,)).start()   # the child reattaches the blocks by name

The process that shares a tensor owns its block and unlinks it when the tensor is collected or the
process exits; a process that receives the tensor (pickled to a spawned child) only attaches.
Gradients are never shared: each process allocates its own, as in PyTorch.
"""
from __future__ import annotations

import weakref
from multiprocessing import resource_tracker, shared_memory

import numpy as np


class SharedBlock:
    """One named shared-memory block and the ndarray over it."""

    def __init__(self, shm, shape, dtype, owner):
        self.shm = shm
        self.name = shm.name
        self.array = np.ndarray(shape, dtype=dtype, buffer=shm.buf)
        self.owner = owner
        if owner:   # the name goes when the owner does; processes still attached keep their mapping
            weakref.finalize(self, _unlink, shm.name)

    def __reduce__(self):
        return attach, (self.name, self.array.shape, self.array.dtype.str)


def _unlink(name):
    try:
        block = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return
    block.unlink()   # also tells this process's resource tracker the block is gone
    block.close()


def create(array):
    """A new block holding a copy of `array` (owned by this process)."""
    shm = shared_memory.SharedMemory(create=True, size=max(array.nbytes, 1))
    block = SharedBlock(shm, array.shape, array.dtype, owner=True)
    np.copyto(block.array, array)
    return block


def attach(name, shape, dtype):
    """The block another process created, by name (what unpickling a shared tensor calls)."""
    shm = shared_memory.SharedMemory(name=name)
    # Attaching registers the block with the resource tracker as if this process had made it, and the
    # tracker would unlink it when this process ends, under the owner's feet (CPython gh-82300, fixed by
    # track=False in 3.13): the owner alone unlinks it.
    resource_tracker.unregister(shm._name, "shared_memory")
    return SharedBlock(shm, tuple(shape), np.dtype(dtype), owner=False)


def rebuild_tensor(cls, block, requires_grad, extra):
    """Unpickle a shared tensor: its storage is the block, its gradient starts empty."""
    t = cls.__new__(cls)
    t._value = block.array
    t._grad = None
    t._ctx = None
    t.requires_grad = requires_grad
    t.__dict__.update(extra)
    t._shared_block = block
    return t
