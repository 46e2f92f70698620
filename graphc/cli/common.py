"""What the subcommands share: the one-line usage error, option types, data and path checks, step timing."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

BACKENDS = ("numba_cpu", "numba_cuda", "interpreter")


class CLIError(Exception):
    """A bad argument or an unusable file: printed as one line `graphc: error: ...`, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises CLIError (one line, no usage dump) instead of exiting."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; adds "(default: X)" where the help does not already say."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


# --- option types -------------------------------------------------------------------------------

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or a positive number, got {text}")
    return value


def add_backend_option(p, default="numba_cpu", help_text=None):
    p.add_argument("--backend", choices=BACKENDS, default=default, metavar="{" + ",".join(BACKENDS) + "}",
                   help=help_text or "graphc.compile backend for the compiled step")


# --- checks -------------------------------------------------------------------------------------

def check_backend(name):
    """Fail early, in one line, when a backend cannot be loaded here (e.g. numba_cuda without a GPU)."""
    from ..backends import get_backend
    from ..errors import GraphcError
    try:
        get_backend(name)
    except (ImportError, GraphcError) as exc:
        raise CLIError(f"backend {name!r} is not available here ({first_line(exc)}); "
                       f"try --backend numba_cpu or --backend interpreter") from None
    if name == "numba_cuda":
        from ..backends.numba_cuda.device import require_cuda
        from ..errors import GraphcError
        try:
            require_cuda()          # names the missing piece; NUMBA_ENABLE_CUDASIM=1 counts
        except GraphcError as exc:
            raise CLIError(f"backend 'numba_cuda' is not available here: {exc.message}; "
                           "try --backend numba_cpu") from None


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def resolve_data_root(data_root):
    """The MNIST root to read: --data-root checked strictly; by default ./data if it holds MNIST, else the repo copy."""
    if data_root is None:
        if _has_mnist("data"):
            return "data"
        from ..vision.datasets.mnist import DEFAULT_ROOT
        if DEFAULT_ROOT is None:
            raise CLIError("no MNIST data found: ./data/MNIST/raw does not exist and graphc was installed without "
                           "its data copy; pass --data-root DIR (a folder holding MNIST/raw/)")
        return DEFAULT_ROOT
    if not os.path.isdir(data_root):
        raise CLIError(f"--data-root {data_root}: no such directory")
    if not _has_mnist(data_root):
        missing = [f for f in MNIST_FILES if not _has_file(data_root, f)]
        raise CLIError(f"--data-root {data_root}: MNIST files missing from {os.path.join(data_root, 'MNIST', 'raw')} "
                       f"({', '.join(missing)}[.gz]); the graphc repository ships them in data/MNIST/raw")
    return data_root


def _has_file(root, name):
    raw = os.path.join(root, "MNIST", "raw", name)
    return os.path.isfile(raw) or os.path.isfile(raw + ".gz")


def _has_mnist(root):
    return all(_has_file(root, f) for f in MNIST_FILES)


def check_writable_file(path, option):
    """Fail before any work when `path` cannot be written: missing directory, a directory, no permission."""
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory; give a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"{option} {path}: the directory {directory} does not exist")
    try:   # a real probe: os.access says yes to root even on a read-only file system
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".graphc-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"{option} {path}: cannot write in {directory} ({exc.strerror})") from None
    if os.path.exists(path) and not os.access(path, os.W_OK) and os.geteuid() != 0:
        raise CLIError(f"{option} {path}: the file is not writable")


def first_line(exc):
    """An exception as one line: its first line, plus graphc's hint when it has one."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    hint = getattr(exc, "hint", None)
    if hint and hint not in line:
        line += f" (help: {hint})"
    return line


def quiet_numba_warnings():
    """numba's performance hints about generated code are for graphc's developers, not for a CLI user."""
    warnings.filterwarnings("ignore", message=r".*is faster on contiguous arrays.*")
    warnings.filterwarnings("ignore", module=r"numba(\..*)?$", category=Warning)
    warnings.filterwarnings("ignore", message=r".*NumbaPerformanceWarning.*")


# --- threads ------------------------------------------------------------------------------------

def set_threads(n):
    """Use n threads in BLAS and numba (graphc.set_num_threads); returns the BLAS libraries changed."""
    from ..threads import set_num_threads
    return set_num_threads(n)


def add_threads_option(p):
    """--threads; unset, graphc's budget applies: GRAPHC_NUM_THREADS, else all usable cores (as torch)."""
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads for BLAS, numba kernels and torch (default: GRAPHC_NUM_THREADS, else all usable "
                        "cores; under mpiexec, cores / ranks on this host)")


def call_as_user(fn, *args):
    """Call a compiled step (graphc/cli counts as user code for source locations, see graphc.errors)."""
    return fn(*args)


# --- timing -------------------------------------------------------------------------------------

def time_interleaved(runners, steps, warmup=2):
    """Median seconds per call of each runner, run in rounds (one call of each per round).

    Interleaving spreads machine noise (other processes, CPU frequency) evenly over the contestants.
    time_interleaved({"eager": f, "compiled": g}, 20) -> {"eager": [s, ...], "compiled": [...]}
    """
    times = {name: [] for name in runners}
    for r in range(warmup + steps):
        for name, fn in runners.items():
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            if r >= warmup:
                times[name].append(dt)
    return times


def median_ms(samples):
    return statistics.median(samples) * 1e3 if samples else float("nan")


def compile_seconds(stats):
    """Seconds a compile took, from CompiledFunction.stats(): trace + passes + backend (numba included)."""
    phases = stats.get("phases", {})
    return sum(phases.get(k, 0.0) for k in ("trace", "passes", "backend"))


def is_tty(stream=None):
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
