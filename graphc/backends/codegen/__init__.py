"""Shared code-generation helpers: an indent-aware source buffer and the cached module loader."""
from .buffer import IndentedBuffer  # noqa: F401
from .loader import load_module, module_path  # noqa: F401
