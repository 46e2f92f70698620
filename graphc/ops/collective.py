"""Collectives in the IR: an allreduce as a start/wait pair ordered by a token (mpi4jax's answer in XLA).

    %t: i64[] = collective_token
    %h: i64[] = allreduce_start %g, %t {reduce="avg", index=0}     # MPI Iallreduce: starts, returns a handle
    %y: f32[10] = allreduce_wait %h {reduce="avg", shape=(10,), dtype=float32}   # MPI Wait: the result

These ops have an effect (`effect = True`): DCE keeps them when nothing reads them and CSE never
merges two. Their order is part of the program: every start takes the previous start's handle as
its token, so no pass can reorder two starts, and every rank starts its collectives in the same
order (graphc.distributed.check_collective_order checks that at the first compile).
"""
from __future__ import annotations

import itertools

import numpy as np

from .registry import OPAQUE, defop

_HANDLE = np.dtype(np.int64)
_pending = {}                      # handle -> (MPI request or None, result buffer, world size)
_handles = itertools.count(1)


def _comm():
    # The process group's state lives in graphc.mpi_comm, which imports nothing above the op table.
    from .. import mpi_comm as comm
    return comm


@defop("collective_token", kind=OPAQUE, infer=lambda: ((), _HANDLE), nondiff=True)
class CollectiveToken:
    """The first link of the ordering chain that every collective in a graph threads.   collective_token() -> 0"""
    effect = True

    @staticmethod
    def impl():
        return np.int64(0)


def _infer_start(x, token, reduce, index):
    return (), _HANDLE


@defop("allreduce_start", kind=OPAQUE, infer=_infer_start, nondiff=True, attrs=("reduce", "index"))
class AllreduceStart:
    """Start a sum/avg/min/max/product of x over ranks (MPI Iallreduce).   allreduce_start(g, t) -> handle, the next token"""
    effect = True

    @staticmethod
    def impl(x, token, reduce, index):
        mpi = _comm()
        comm = mpi.require_comm("allreduce_start")
        buf = np.array(x, order="C")       # MPI writes into a buffer of its own while the step goes on
        request = None
        if comm.Get_size() > 1:
            from mpi4py import MPI
            request = comm.Iallreduce(MPI.IN_PLACE, buf, op=mpi.mpi_op(reduce))
        handle = next(_handles)
        _pending[handle] = (request, buf, comm.Get_size())
        return np.int64(handle)


def _infer_wait(handle, reduce, shape, dtype):
    return tuple(shape), np.dtype(dtype)


@defop("allreduce_wait", kind=OPAQUE, infer=_infer_wait, nondiff=True, attrs=("reduce", "shape", "dtype"))
class AllreduceWait:
    """Wait for a started allreduce (MPI Wait).   allreduce_wait(h) -> [2., 3.] (ranks held [1., 2.] and [3., 4.], avg)"""
    effect = True

    @staticmethod
    def impl(handle, reduce, shape, dtype):
        request, buf, world = _pending.pop(int(handle))
        if request is not None:
            request.Wait()
        if reduce == "avg":
            buf /= buf.dtype.type(world)
        return buf.reshape(shape)
