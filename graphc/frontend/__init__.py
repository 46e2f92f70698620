"""The frontend that connects user code to the compiler: tracing and @graphc.compile."""
from .compile import CompiledFunction, CompiledModule, compile, explain  # noqa: F401
