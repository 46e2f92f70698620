"""graphc.multiprocessing, as torch.multiprocessing: the standard library's API, plus spawn().

    import graphc.multiprocessing as mp
    model.share_memory()
    procs = [mp.Process(target=train, args=(rank, model)) for rank in range(2)]
    mp.spawn(train, args=(model,), nprocs=2)          # train(rank, model) in each of 2 processes

Tensors shared with Tensor.share_memory_() / Module.share_memory() travel to child processes by
the name of their shared-memory block, so every process updates the same numbers.
"""
from __future__ import annotations

import multiprocessing as _mp
import traceback
from multiprocessing import (Array, Barrier, Condition, Event, JoinableQueue, Lock, Manager, Pipe, Pool,  # noqa: F401
                             Process, Queue, RLock, Semaphore, SimpleQueue, Value, active_children, cpu_count,
                             current_process, get_all_start_methods, get_context, get_start_method, parent_process,
                             set_start_method)

__all__ = ["Array", "Barrier", "Condition", "Event", "JoinableQueue", "Lock", "Manager", "Pipe", "Pool", "Process",
           "Queue", "RLock", "Semaphore", "SimpleQueue", "Value", "active_children", "cpu_count", "current_process",
           "get_all_start_methods", "get_context", "get_start_method", "parent_process", "set_start_method",
           "spawn", "start_processes", "ProcessContext", "ProcessRaisedException", "ProcessExitedException",
           "get_sharing_strategy", "set_sharing_strategy", "get_all_sharing_strategies"]

_SHARING_STRATEGIES = {"file_system"}   # graphc always shares by a named block (POSIX shm / Windows mapping)


def get_all_sharing_strategies():
    return set(_SHARING_STRATEGIES)


def get_sharing_strategy():
    return "file_system"


def set_sharing_strategy(new_strategy):
    """Accepted for PyTorch programs; graphc has one strategy (named shared-memory blocks)."""
    if new_strategy not in ("file_system", "file_descriptor"):
        raise ValueError(f"unknown sharing strategy {new_strategy!r}; expected 'file_system' or 'file_descriptor'")


class ProcessException(Exception):
    def __init__(self, msg, error_index, pid):
        super().__init__(msg)
        self.msg, self.error_index, self.pid = msg, error_index, pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid)


class ProcessRaisedException(ProcessException):
    """A spawned process raised: the message holds its traceback."""


class ProcessExitedException(ProcessException):
    """A spawned process died without raising (killed, or os._exit)."""

    def __init__(self, msg, error_index, pid, exit_code=None):
        super().__init__(msg, error_index, pid)
        self.exit_code = exit_code

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.pid, self.exit_code)


def _wrap(fn, i, args, error_queue):
    try:
        fn(i, *args)
    except KeyboardInterrupt:
        pass
    except Exception:
        error_queue.put(traceback.format_exc())
        raise SystemExit(1)


class ProcessContext:
    """The processes spawn() started; join() waits and re-raises the first failure."""

    def __init__(self, processes, error_queues):
        self.processes = processes
        self.error_queues = error_queues

    def pids(self):
        return [p.pid for p in self.processes]

    def join(self, timeout=None):
        """Wait for all processes; True when all have exited. A failure terminates the others and raises."""
        for i, p in enumerate(self.processes):
            p.join(timeout)
            if p.exitcode not in (None, 0):
                for other in self.processes:
                    if other.is_alive():
                        other.terminate()
                        other.join()
                if not self.error_queues[i].empty():
                    msg = self.error_queues[i].get()
                    raise ProcessRaisedException(f"\n\n-- Process {i} terminated with the following error:\n{msg}",
                                                 i, p.pid)
                raise ProcessExitedException(f"process {i} terminated with exit code {p.exitcode}", i, p.pid,
                                             exit_code=p.exitcode)
        return all(p.exitcode is not None for p in self.processes)


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Start `nprocs` processes running fn(i, *args) with the given start method."""
    ctx = _mp.get_context(start_method)
    processes, queues = [], []
    for i in range(nprocs):
        q = ctx.SimpleQueue()
        p = ctx.Process(target=_wrap, args=(fn, i, args, q), daemon=daemon)
        p.start()
        processes.append(p)
        queues.append(q)
    context = ProcessContext(processes, queues)
    if not join:
        return context
    while not context.join():
        pass
    return None


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """torch.multiprocessing.spawn: fn(i, *args) in `nprocs` fresh processes, i = 0 .. nprocs - 1."""
    return start_processes(fn, args, nprocs, join, daemon, start_method)
