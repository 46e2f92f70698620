"""What the benchmarks say about the machine: CPU model, SIMD flags, and a busy core for contention runs.

    print(cpu_description())     # 'AMD EPYC ... | 2 cores | avx2 avx512f avx512bw ...'
    with BusyCore(): ...         # another process spins on one core meanwhile
"""
from __future__ import annotations

import os
import subprocess
import sys

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "amx_tile", "neon", "asimd", "sve")


def usable_cores():
    """Cores this process may run on (its affinity mask), like torch's default thread count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_info():
    """{'model': ..., 'simd': [...], 'cores': n} from /proc/cpuinfo (model 'unknown' elsewhere)."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown":
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "simd": [f for f in SIMD_FLAGS if f in flags], "cores": usable_cores()}


def cpu_description():
    """One line for benchmark output: model, usable cores, SIMD flags."""
    info = cpu_info()
    return f"CPU: {info['model']} | {info['cores']} usable cores | SIMD: {' '.join(info['simd']) or 'none found'}"


class BusyCore:
    """A child process that spins on one core while the block runs (contention measurements)."""

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.proc = None

    def __enter__(self):
        if self.enabled:
            self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        return False
