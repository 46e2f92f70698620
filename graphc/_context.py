"""Mode flags read on every op: grad mode and the active tracer, per thread (as PyTorch's grad mode is).

    with no_grad(): ...          # grad_enabled is False in this thread only
    tracer is not None           # inside @graphc.compile's first call: ops append IR nodes

`_context.tracer` and `_context.grad_enabled` are properties of this module that read and write
the current thread's values: eager code running in one thread is never captured by a trace in
progress in another, and no_grad in one thread leaves the others alone.
"""
import sys
import threading
import types



class _Modes(threading.local):
    """Per-thread modes; class attributes are the defaults, so a read is one plain attribute lookup."""
    tracer = None
    grad_enabled = True


_local = _Modes()
TRACE_LOCK = threading.RLock()
# graphc.detect_anomaly(): False, or the checker `apply` calls on every eager result (graphc/debug/anomaly.py).
anomaly = False


class _ContextModule(types.ModuleType):
    @property
    def tracer(self):
        return _local.tracer

    @tracer.setter
    def tracer(self, value):
        _local.tracer = value

    @property
    def grad_enabled(self):
        return _local.grad_enabled

    @grad_enabled.setter
    def grad_enabled(self, value):
        _local.grad_enabled = value


def set_tracer(tracer):
    _local.tracer = tracer


def set_grad_enabled(enabled):
    _local.grad_enabled = enabled


sys.modules[__name__].__class__ = _ContextModule
