"""graphc.distributed: torch.distributed's names over MPI (mpi4py); collectives act on tensors in place.

    import graphc.distributed as dist
    dist.init_process_group(backend="mpi")       # rank and world size come from mpiexec
    dist.all_reduce(t, op=dist.ReduceOp.AVG)     # t now holds the mean over ranks

Run N ranks with `mpiexec -n N python -m mpi4py script.py`: `-m mpi4py` aborts every rank when
one raises, where a plain `python script.py` would leave the others waiting forever. With the
group initialized and more than one rank, graphc also installs an excepthook that calls
MPI Abort, for scripts started without `-m mpi4py`. Without mpiexec, init_process_group makes a
group of one process (mpi4py not even needed), so the same script runs on a laptop.
"""
from __future__ import annotations

import enum
import hashlib
import sys
import time
import traceback

import numpy as np

from ..errors import GraphcError
from ..mpi_comm import launched_by_mpi, load_mpi, local_world_size, mpi_op, require_comm, state

__all__ = ["ReduceOp", "init_process_group", "is_initialized", "is_available", "get_rank", "get_world_size",
           "all_reduce", "broadcast", "all_gather", "reduce", "barrier", "destroy_process_group",
           "launched_by_mpi", "local_world_size"]


class ReduceOp(enum.Enum):
    """How all_reduce / reduce combine the ranks' tensors (torch.distributed.ReduceOp)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


class _SingleProcess:
    """A group of one, for init_process_group without mpiexec and without mpi4py: every collective is a copy."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Allreduce(self, send, recv, op=None):
        if send is not _IN_PLACE:
            np.copyto(recv, send)

    def Bcast(self, buf, root=0):
        pass

    def Reduce(self, send, recv, op=None, root=0):
        self.Allreduce(send, recv)

    def Allgather(self, send, recv):
        np.copyto(recv.reshape(send.shape), send)

    def Barrier(self):
        pass

    def Abort(self, code=1):
        raise SystemExit(code)


_IN_PLACE = object()


def is_available():
    """True when mpi4py and an MPI library can be loaded (torch.distributed.is_available)."""
    return load_mpi() is not None


def init_process_group(backend="mpi", init_method=None, world_size=-1, rank=-1, **kwargs):
    """Join the default group: rank and size come from MPI; a lone process without mpiexec is a group of one."""
    if backend not in ("mpi", None):
        raise GraphcError("init_process_group", f"backend {backend!r} is not supported",
                          hint="graphc's collectives run on MPI: use backend='mpi'")
    if state.comm is not None:
        raise GraphcError("init_process_group", "trying to initialize the default process group twice",
                          hint="call destroy_process_group() first, or check is_initialized()")
    MPI = load_mpi()
    if MPI is None:
        if launched_by_mpi():
            raise GraphcError("init_process_group", "started by an MPI launcher but mpi4py cannot load an MPI library",
                              hint='pip install "graphc[distributed]" (mpi4py and mpich)')
        comm = _SingleProcess()
    else:
        comm = MPI.COMM_WORLD
    for name, given, actual in (("rank", rank, comm.Get_rank()), ("world_size", world_size, comm.Get_size())):
        if given not in (-1, None) and given != actual:
            raise GraphcError("init_process_group", f"{name}={given} but MPI says {actual}",
                              hint="with backend='mpi' the launcher decides rank and world size; leave them out")
    state.comm = comm
    if comm.Get_size() > 1:
        state.excepthook = sys.excepthook
        sys.excepthook = _abort_on_exception


def _abort_on_exception(kind, value, tb):
    """An uncaught exception on one rank ends every rank (MPI Abort) instead of leaving them waiting."""
    traceback.print_exception(kind, value, tb)
    rank = state.comm.Get_rank() if state.comm is not None else "?"
    print(f"graphc.distributed: rank {rank} raised {kind.__name__}; aborting every rank", file=sys.stderr, flush=True)
    sys.stderr.flush()
    if state.comm is not None:
        # mpiexec forwards each rank's output through its own processes; Abort kills them at once, and on
        # a loaded machine the traceback was cut to its first line. Give the forwarding a moment.
        time.sleep(0.5)
        state.comm.Abort(1)


def is_initialized():
    return state.comm is not None


def get_rank(group=None):
    """This process's rank (0 when no group is initialized, as a single process is rank 0)."""
    return state.comm.Get_rank() if state.comm is not None else 0


def get_world_size(group=None):
    return state.comm.Get_size() if state.comm is not None else 1


def destroy_process_group(group=None):
    """Leave the group; MPI itself stays up until the process exits (mpi4py finalizes at exit)."""
    if state.excepthook is not None:
        sys.excepthook = state.excepthook
        state.excepthook = None
    state.comm = None


def _reduce_op(op):
    if isinstance(op, ReduceOp):
        return op
    try:
        return ReduceOp(str(op).lower().rsplit(".", 1)[-1])
    except ValueError:
        raise GraphcError("all_reduce", f"unknown reduce op {op!r}",
                          hint="use graphc.distributed.ReduceOp.SUM, AVG, PRODUCT, MIN or MAX") from None


def _buffer(tensor, op):
    """The tensor's ndarray, which MPI reads and writes in place (a C-contiguous array)."""
    from ..tensor import Tensor
    if not isinstance(tensor, Tensor):
        raise GraphcError(op, f"expected a graphc Tensor, got {type(tensor).__name__}")
    arr = tensor._value
    if not isinstance(arr, np.ndarray):
        raise GraphcError(op, "collectives on a traced tensor go through DistributedDataParallel",
                          hint="call collectives outside @graphc.compile, or wrap the model in DistributedDataParallel")
    if not arr.flags.c_contiguous:
        raise GraphcError(op, f"tensor of shape {arr.shape} is not contiguous", hint="call .contiguous() first")
    return arr


def _in_place(comm):
    return _IN_PLACE if isinstance(comm, _SingleProcess) else load_mpi().IN_PLACE


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine `tensor` over all ranks, in place.   all_reduce(t, ReduceOp.MAX)"""
    comm = require_comm("all_reduce")
    op = _reduce_op(op)
    arr = _buffer(tensor, "all_reduce")
    comm.Allreduce(_in_place(comm), arr, op=mpi_op(op.value))
    if op is ReduceOp.AVG:
        _divide(arr, comm.Get_size())
    return None


def _divide(arr, n):
    if arr.dtype.kind == "f":
        arr /= arr.dtype.type(n)
    else:
        arr //= n   # torch's AVG on integers floors as well


def broadcast(tensor, src=0, group=None, async_op=False):
    """Copy rank `src`'s tensor into every rank's tensor, in place."""
    comm = require_comm("broadcast")
    comm.Bcast(_buffer(tensor, "broadcast"), root=src)


def reduce(tensor, dst=0, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine `tensor` over all ranks into rank `dst`'s tensor; the others keep theirs."""
    comm = require_comm("reduce")
    op = _reduce_op(op)
    arr = _buffer(tensor, "reduce")
    if comm.Get_rank() == dst:
        comm.Reduce(_in_place(comm), arr, op=mpi_op(op.value), root=dst)
        if op is ReduceOp.AVG:
            _divide(arr, comm.Get_size())
    else:
        comm.Reduce(arr, None, op=mpi_op(op.value), root=dst)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """Fill tensor_list[r] with rank r's tensor, on every rank."""
    comm = require_comm("all_gather")
    arr = _buffer(tensor, "all_gather")
    if len(tensor_list) != comm.Get_size():
        raise GraphcError("all_gather", f"tensor_list has {len(tensor_list)} tensors for {comm.Get_size()} ranks",
                          hint="pass one tensor per rank: [graphc.empty_like(t) for _ in range(world_size)]")
    gathered = np.empty((comm.Get_size(),) + arr.shape, dtype=arr.dtype)
    comm.Allgather(arr, gathered)
    for out, part in zip(tensor_list, gathered):
        np.copyto(_buffer(out, "all_gather"), part.reshape(out.shape), casting="same_kind")


def barrier(group=None):
    require_comm("barrier").Barrier()


def broadcast_object(obj, src=0):
    """Rank src's picklable object on every rank (torch's broadcast_object_list for one object)."""
    comm = require_comm("broadcast_object")
    return obj if isinstance(comm, _SingleProcess) else comm.bcast(obj, root=src)


def all_gather_object(object_list, obj, group=None):
    """Fill object_list[r] with rank r's picklable object, on every rank (torch's name and contract)."""
    comm = require_comm("all_gather_object")
    gathered = [obj] if isinstance(comm, _SingleProcess) else comm.allgather(obj)
    if len(object_list) != len(gathered):
        raise GraphcError("all_gather_object", f"object_list has {len(object_list)} slots for {len(gathered)} ranks",
                          hint="pass a list with one slot per rank: [None] * world_size")
    object_list[:] = gathered


def check_collective_order(graph):
    """Guard of a compiled step: every rank must issue the same collectives in the same order.

    A mismatch would deadlock or mix up gradients; at the first compile the ranks compare a hash
    of their sequence of (op, operand type, attributes) and all raise if any differs.
    """
    sequence = [f"{n.op} {n.inputs[0].type_str()} {sorted(n.attrs.items())}" for n in graph.nodes
                if n.op == "allreduce_start"]
    if not sequence or get_world_size() == 1:
        return
    digest = hashlib.sha256("\n".join(sequence).encode()).hexdigest()[:16]
    digests = state.comm.allgather(digest)
    if len(set(digests)) > 1:
        raise GraphcError("compile", f"the ranks traced different sequences of collectives "
                                     f"(hash per rank: {', '.join(digests)})",
                          detail=f"this rank ({get_rank()}) issues {len(sequence)}: {sequence[:3]} ...",
                          hint="every rank must trace the same step: the same model, batch shape and code path")
