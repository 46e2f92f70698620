"""`mpirun`: run a script on N MPI ranks (mpiexec -n N python -m mpi4py), killed after a timeout.

Tests that need it skip, saying why, only when mpi4py or mpiexec is not installed
(pip install "graphc[distributed]").
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 120


def find_mpiexec():
    """mpiexec next to this Python (a venv with the mpich wheel), else on PATH; None when absent."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def mpi_missing():
    """Why MPI tests cannot run here, or None."""
    try:
        from mpi4py import MPI  # noqa: F401
    except (ImportError, RuntimeError, OSError) as exc:   # no MPI library: RuntimeError, not ImportError
        return f"mpi4py cannot load MPI ({type(exc).__name__}: {exc}); pip install 'graphc[distributed]'"
    if find_mpiexec() is None:
        return "no mpiexec found next to python or on PATH; pip install 'graphc[distributed]'"
    return None


def run_ranks(args, n=2, timeout=TIMEOUT_S, env=None, mpi4py_main=True):
    """mpiexec -n n python -m mpi4py ARGS from the repository root; the whole job is killed on timeout."""
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    GRAPHC_NUM_THREADS="1")
    full_env.update(env or {})
    cmd = [find_mpiexec(), "-n", str(n), sys.executable] + (["-m", "mpi4py"] if mpi4py_main else []) + \
        [str(a) for a in args]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)     # mpiexec and every rank: its own session
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung for {timeout} s and was killed\nstdout:\n{out}\nstderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture
def mpirun():
    reason = mpi_missing()
    if reason:
        pytest.skip(reason)
    return run_ranks
