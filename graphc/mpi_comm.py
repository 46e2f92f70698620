"""The MPI communicator behind graphc.distributed: loading mpi4py, the group's state, launch detection.

    mpi_comm.load_mpi() -> the mpi4py.MPI module, or None when mpi4py or an MPI library is missing

This module imports nothing from graphc above graphc.errors, so the op table (graphc/ops/collective.py) can reach
the communicator without importing the frontend.
"""
from __future__ import annotations

import os

# Environment variables an MPI launcher sets in every rank (MPICH/Hydra, Open MPI, PMIx).
LAUNCH_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_LOCAL_SIZE")


class GroupState:
    """The one process group of this process (torch's default group)."""

    comm = None          # an mpi4py communicator while initialized
    excepthook = None    # the hook we replaced, restored by destroy_process_group


state = GroupState()


def load_mpi():
    """mpi4py.MPI, or None. Without an MPI library `from mpi4py import MPI` raises RuntimeError, not ImportError."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError):
        return None
    return MPI


def launched_by_mpi():
    """True when an MPI launcher (mpiexec / mpirun / srun with PMI) started this process."""
    return any(v in os.environ for v in LAUNCH_RANK_VARS)


def local_world_size():
    """How many ranks share this host: the launcher's variable, else asked of MPI, else 1."""
    for var in LOCAL_SIZE_VARS:
        if os.environ.get(var, "").isdigit():
            return max(1, int(os.environ[var]))
    comm = state.comm
    if comm is not None:
        MPI = load_mpi()
        return comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
    return 1


def mpi_op(name):
    """The MPI reduction named by a ReduceOp value ("sum", "avg", ...); AVG is a SUM the caller divides."""
    MPI = load_mpi()
    if MPI is None:
        return None
    return {"sum": MPI.SUM, "avg": MPI.SUM, "product": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX}[name]


def require_comm(op):
    """The communicator, or a graphc-style error naming `op` when no group is initialized."""
    if state.comm is None:
        from .errors import GraphcError
        raise GraphcError(op, "the default process group is not initialized",
                          hint="call graphc.distributed.init_process_group(backend='mpi') first")
    return state.comm
