"""Python's cyclic garbage collector held off while numba compiles generated code.

    @collector_paused()         # or `with collector_paused():`
    def warm_up(self): ...      # numba types, lowers and links the kernels: millions of short-lived objects

numba allocates objects by the million while it compiles, and each allocation burst triggers the
collector; its full collections walk every object the process holds (a test session's, a training
script's), most of them over and over.  On 30 fuzz programs on this 2-core machine the numba compile
took 49.6 s with the collector on and 34.6 s with it held off during each compile (peak RSS 410 MB
against 420 MB: what the compile leaves cyclic is collected at the next collection after it).
A compile is a burst of a few seconds of graphc's own code, so nothing else waits on the collector.
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def collector_paused():
    """Disable the cyclic collector for the block (when it was on) and turn it back on after."""
    if not gc.isenabled():   # the user turned it off, or an outer compile holds it: leave it alone
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
