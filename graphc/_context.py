"""Process-wide mode flags read on every op: grad mode and the active tracer.

    with no_grad(): ...          # flips grad_enabled
    tracer is not None           # inside @graphc.compile's first call: ops append IR nodes
"""
import threading

# NOTE: a module global, not a thread-local: tracing is serialised by TRACE_LOCK, and eager
# grad mode is read on every op, where a thread-local lookup would cost more than the op's bookkeeping.
grad_enabled = True
tracer = None
TRACE_LOCK = threading.RLock()
# graphc.detect_anomaly(): False, or the checker `apply` calls on every eager result (graphc/debug.py).
anomaly = False
