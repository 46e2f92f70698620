"""Mode flags read on every op: grad mode and the active tracer, per thread (as PyTorch's grad mode is).

    with no_grad(): ...          # set_grad_enabled(False) for this thread
    tracer is not None           # inside @graphc.compile's first call: ops append IR nodes

`_context.tracer` and `_context.grad_enabled` read this thread's values (module __getattr__); write
them with set_tracer / set_grad_enabled.  Per thread, so that eager code running in one thread is
never captured by a trace in progress in another, and no_grad in one thread leaves the others alone.
"""
import threading

_local = threading.local()
TRACE_LOCK = threading.RLock()
# graphc.detect_anomaly(): False, or the checker `apply` calls on every eager result (graphc/debug.py).
anomaly = False


def __getattr__(name):
    if name == "tracer":
        return getattr(_local, "tracer", None)
    if name == "grad_enabled":
        return getattr(_local, "grad_enabled", True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_tracer(tracer):
    _local.tracer = tracer


def set_grad_enabled(enabled):
    _local.grad_enabled = enabled
