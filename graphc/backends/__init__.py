"""Backends: turn a planned graph into a callable.  get_backend("interpreter" | "numba_cpu" | "numba_cuda").

graphc.backends is also what PyTorch programs reach as torch.backends: `mps.is_available()` and the
cudnn flags answer as a CPU-only torch does.
"""
import types

from ..errors import BackendError


class _NoAccelerator:
    """torch.backends.mps on a machine without one: graphc's eager mode runs on the CPU."""

    @staticmethod
    def is_available():
        return False

    @staticmethod
    def is_built():
        return False


mps = _NoAccelerator()
cudnn = types.SimpleNamespace(deterministic=False, benchmark=False, enabled=False)


def get_backend(name):
    """The backend object for a name.   get_backend("interpreter").compile(graph)"""
    if name == "interpreter":
        from .interpreter import InterpreterBackend
        return InterpreterBackend()
    if name == "numba_cpu":
        from .numba_cpu import NumbaCPUBackend
        return NumbaCPUBackend()
    if name == "numba_cuda":
        from .numba_cuda import NumbaCUDABackend
        return NumbaCUDABackend()
    raise BackendError("compile", f"unknown backend {name!r}",
                       hint="choose one of 'numba_cpu' (default), 'interpreter', 'numba_cuda'")


def set_kernel_threads(n):
    """Threads for numba's parallel loops in the generated kernels (graphc.set_num_threads also sets BLAS's)."""
    try:
        import numba
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    except (ImportError, ValueError):
        pass
