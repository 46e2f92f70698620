"""Write generated source to a file named by its content hash and import it, so numba's cache=True works.

    mod = load_module(source, cache_dir)    # a new process with the same source loads cached machine code

numba cannot cache functions defined by exec() (no file to key on); a real file can, and its
name — the hash of the source, which embeds graphc's, numba's, numpy's and Python's versions —
makes a changed generator produce a new file instead of reusing stale machine code.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
import tempfile
import warnings

from ...config import log
from ...fileio import write_atomic

_fallback_warned = False


# Source locations in comments ("   (model.py:41)") do not change the code: they stay out of the cache
# key, so editing the user's script elsewhere does not force a cold compile.
_LOCATION = re.compile(r"   \([^()\n]*:\d+\)$", re.M)


def cache_key(source):
    return _LOCATION.sub("", source)


def module_path(source, cache_dir):
    digest = hashlib.sha256(cache_key(source).encode()).hexdigest()[:24]
    return os.path.join(cache_dir, f"graphc_{digest}.py"), f"graphc_generated_{digest}"


_fallback_dir = None


def _writable_dir(cache_dir):
    """cache_dir if we can write there; else a private temporary directory for this process (warned once).

    The fallback is made with mkdtemp (mode 0700, a fresh name): numba's cache index files are pickles,
    so a predictable shared path could let another local user plant one.
    """
    global _fallback_warned, _fallback_dir
    try:
        os.makedirs(cache_dir, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".probe", delete=True)
        probe.close()
        return cache_dir
    except OSError as exc:
        if _fallback_dir is None:
            _fallback_dir = tempfile.mkdtemp(prefix="graphc-cache-")
        if not _fallback_warned:
            warnings.warn(f"graphc: the kernel cache directory {cache_dir!r} is not writable ({exc.strerror}); "
                          f"caching in {_fallback_dir} for this process instead. Set GRAPHC_CACHE_DIR to a "
                          f"writable directory.", stacklevel=3)
            _fallback_warned = True
        return _fallback_dir


def load_module(source, cache_dir):
    """Import `source` from <cache_dir>/graphc_<hash>.py (written if missing or corrupt); returns the module."""
    cache_dir = _writable_dir(cache_dir)
    path, name = module_path(source, cache_dir)
    if name in sys.modules:
        return sys.modules[name]
    existing = None
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            existing = f.read()
        if cache_key(existing) != cache_key(source):
            log("cache", f"cache entry {path} is corrupt or truncated; rebuilding it")
            _drop_numba_cache(path)
            existing = None
    if existing is None:
        write_atomic(path, source, durable=True)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # before exec: numba's cache locator looks the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _drop_numba_cache(path):
    """Remove numba's index/data files that belong to a generated module."""
    stem = os.path.splitext(os.path.basename(path))[0]
    pycache = os.path.join(os.path.dirname(path), "__pycache__")
    if not os.path.isdir(pycache):
        return
    for entry in os.listdir(pycache):
        if entry.startswith(stem + "."):
            try:
                os.unlink(os.path.join(pycache, entry))
            except OSError:
                pass


def drop_cache_for(module):
    """Forget a generated module and its numba cache files (used when a cache entry fails to load)."""
    path = getattr(module, "__file__", None)
    if path:
        _drop_numba_cache(path)
    sys.modules.pop(getattr(module, "__name__", ""), None)
