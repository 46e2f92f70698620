"""Atomic file writes: a reader sees the old file or the new one, never half of one.

    write_atomic("run.ir", text)                                    # str or bytes
    write_atomic("ckpt.pt", lambda fh: fh.write(blob), durable=True)  # a writer of a binary file

The one implementation every layer uses (checkpoints, generated kernels, IR dumps, CLI outputs), so it
imports nothing from graphc.
"""
from __future__ import annotations

import os
import tempfile


def umask():
    """The process's file-mode creation mask.   umask() -> 0o022

    Read from /proc where it can be: os.umask can only be read by setting it, and another thread
    creating a file in between would get a file with mode 0666.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def write_atomic(path, data, *, durable=False):
    """Write `data` (str, bytes, or a function of a binary file) to a temporary file beside `path`, then
    rename it into place.  durable=True also fsyncs the file and the directory, so the new content
    survives a power cut.  The file gets the mode a plain open() would give it.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask())   # mkstemp makes the file 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        _fsync_directory(directory)


def _fsync_directory(directory):
    """Make a rename itself durable (best effort: not every platform can open a directory)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
