"""All of graphc's settings in one place: GRAPHC_LOG, GRAPHC_DUMP, GRAPHC_CACHE_DIR, GRAPHC_FALLBACK, ...

    GRAPHC_LOG=graph,passes,fusion,kernels,recompiles   what to print to stderr (also: cache, graph_breaks)
    GRAPHC_DUMP=<dir>                                   write every stage's IR and generated source there
    GRAPHC_CACHE_DIR=<dir>                              where compiled kernels are cached (default ~/.cache/graphc)
    GRAPHC_PARALLEL=1                                   use prange in large generated loops (default off)
    GRAPHC_FALLBACK=interpreter                         a step whose backend fails to compile or to run
                                                        the first time runs on the interpreter (one warning)
                                                        instead of raising a BackendError

    with graphc.config.override(log="recompiles"): ...   # for tests
"""
from __future__ import annotations

import contextlib
import os
import sys

LOG_TOPICS = ("graph", "passes", "fusion", "kernels", "recompiles", "cache", "graph_breaks")


class _Settings:
    def __init__(self):
        self.reload()

    def reload(self):
        self.log = {t.strip() for t in os.environ.get("GRAPHC_LOG", "").split(",") if t.strip()}
        self.dump = os.environ.get("GRAPHC_DUMP") or None
        self.cache_dir = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "graphc")
        self.recompile_limit = int(os.environ.get("GRAPHC_RECOMPILE_LIMIT", "8"))
        # prange in generated loops of at least parallel_min_elements elements. numba's OpenMP threads
        # sleep when idle and BLAS runs on one thread (graphc.threadpool), so they no longer fight.
        # Each parallel loop adds ~0.35 s to a cold compile: below 1M elements its ~0.1 ms a step
        # takes thousands of steps to repay that, so the default starts there; mode="max-autotune"
        # goes down to the measured crossover (benchmarks/bench_parallel_threshold.py).
        self.parallel = os.environ.get("GRAPHC_PARALLEL", "1") not in ("0", "false", "no")
        self.parallel_min_elements = int(os.environ.get("GRAPHC_PARALLEL_MIN", str(1 << 20)))
        # Adjacent elementwise kernels with one body (the optimizer update, one per parameter) as one loop
        # over their flat ranges: the body compiles once.  GRAPHC_MULTIRANGE=0 emits one kernel each.
        self.multirange = os.environ.get("GRAPHC_MULTIRANGE", "1") not in ("0", "false", "no")
        # Which backend a compiled step falls back to when its own backend fails (None: raise BackendError).
        self.fallback = os.environ.get("GRAPHC_FALLBACK") or None


settings = _Settings()


def enabled(topic):
    return topic in settings.log or "all" in settings.log


def log(topic, message):
    """Print `message` to stderr when GRAPHC_LOG names `topic`.   log("recompiles", "...")"""
    if enabled(topic):
        print(f"[graphc:{topic}] {message}", file=sys.stderr)


@contextlib.contextmanager
def override(**values):
    """Temporarily change settings.   with override(log="recompiles", dump=tmpdir): ..."""
    saved = dict(vars(settings))
    for key, value in values.items():
        if key == "log" and isinstance(value, str):
            value = {t.strip() for t in value.split(",") if t.strip()}
        setattr(settings, key, value)
    try:
        yield settings
    finally:
        vars(settings).update(saved)
