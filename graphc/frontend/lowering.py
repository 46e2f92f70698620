"""From a traced graph to a backend's callable, and the undo of a failed first run: shared by compile and breaks.

    backend, graph, manager = run_passes(record.graph, "numba_cpu", timings); run = backend.compile(graph)
    saved = snapshot(tensors); ...; restore(saved)     # a failed first call leaves the state as it was
"""
from __future__ import annotations

import time

import numpy as np

from ..config import log, settings


def run_passes(graph, backend_name, timings):
    """The pass pipeline, then the backend's own passes: (backend, the final graph, the pass manager)."""
    from ..backends import get_backend
    from ..distributed import check_collective_order
    from ..passes.manager import PassManager
    from ..passes.pipeline import default_passes
    backend = get_backend(backend_name)
    manager = PassManager(default_passes() + backend.prepare_passes(), first_stage="trace",
                          dump_dir=settings.dump, log=lambda banner: log("passes", banner))
    t1 = time.perf_counter()
    graph = manager.run(graph)
    timings["passes"] = time.perf_counter() - t1
    check_collective_order(graph)
    return backend, graph, manager


def snapshot(tensors):
    """Copies of the tensors a first run may write (parameters, optimizer state, arguments), to undo a failure."""
    return [(t, t._value.copy()) for t in tensors if isinstance(t._value, np.ndarray)]


def restore(saved):
    """Put back what snapshot() copied."""
    for t, value in saved:
        if t._value.shape == value.shape:
            np.copyto(t._value, value)
        else:
            t._value = value
