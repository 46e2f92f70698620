"""graphc: PyTorch-style eager deep learning, and a compiler that turns a whole training step into Numba kernels.

    import graphc as torch
    x = torch.randn(64, 784); y = torch.relu(x @ w.T + b)
    step = graphc.compile(train_step)        # traced once, compiled, cached
"""
import os as _os

import numpy as _np

from .threads import configure_runtime as _configure_runtime

_configure_runtime()   # numba's threading layer and OpenMP's wait policy, before anything loads numba

from . import ops  # noqa: F401  (fills the op table)
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .device import accelerator, cuda, device, xpu
from .device import backends as _torch_backends
from .errors import DTypeError, GradError, GraphcError, ShapeError, TraceError
from .functional import (abs, add, allclose, amax, amin, arange, argmax, argmin, argsort, as_tensor, bmm, cat, chunk,
                         clamp, clip, concat, concatenate, cos, cumsum, div, dot, einsum, empty, empty_like, eq, equal, erf,
                         exp, eye, flatten, from_numpy, full, full_like, gather, ge, gt, index_select, is_tensor, isinf,
                         isnan, le, linspace, log, log1p, log_softmax, logical_and, logical_not, logical_or, logsumexp, lt,
                         masked_fill, matmul, max, maximum, mean, min, minimum, mm, mul, ne, neg, norm, numel, ones,
                         ones_like, permute, pow, relu, repeat, reshape, return_types, rsqrt, scatter, scatter_add,
                         sigmoid, sign, sin, softmax, sort, split, sqrt, square, squeeze, stack, std, sub, sum, t, tanh,
                         tensor, topk, transpose, tril, triu, unsqueeze, var, where, zeros, zeros_like)
from .random import (Generator, bernoulli, default_generator, initial_seed, manual_seed, rand, rand_like, randint,
                     randn, randn_like, randperm, seed)
from .tensor import Size, Tensor
from .version import __version__  # noqa: F401

# graphc.backends is the compiler's backend package (graphc.threads imported it above); it also answers
# torch.backends' questions (graphc.backends.mps.is_available(), graphc.backends.cudnn.deterministic).
# Binding device.py's class to the name instead hid the package: `import graphc.backends.numba_cpu as m`
# raised ImportError, and graphc.backends.get_backend was missing.
from . import backends as _backend_package  # noqa: E402
_backend_package.mps, _backend_package.cudnn = _torch_backends.mps, _torch_backends.cudnn

float32 = float = _np.dtype("float32")
float64 = double = _np.dtype("float64")
float16 = half = _np.dtype("float16")
int64 = long = _np.dtype("int64")
int32 = int = _np.dtype("int32")
int16 = short = _np.dtype("int16")
int8 = _np.dtype("int8")
uint8 = _np.dtype("uint8")
bool = _np.dtype("bool")
FloatTensor = Tensor
LongTensor = Tensor


if _os.environ.get("GRAPHC_NUM_THREADS"):
    from .threads import default_num_threads as _default_num_threads, set_num_threads as _set_num_threads
    _set_num_threads(_default_num_threads())


def get_default_dtype():
    return float32


def __getattr__(name):
    # Subpackages load on first use, so `import graphc` stays light.
    import importlib
    if name in ("nn", "optim", "utils", "vision", "autograd", "ir", "passes", "config", "functional", "backends",
                "multiprocessing"):
        return importlib.import_module(f"graphc.{name}")
    if name in ("compile", "explain"):
        from . import frontend
        return getattr(frontend, name)
    if name in ("verify", "detect_anomaly", "debug"):
        debug = importlib.import_module("graphc.debug")   # not `from . import debug`: that asks this hook again
        return debug if name == "debug" else getattr(debug, name)
    if name in ("set_num_threads", "get_num_threads"):
        from . import threads
        return getattr(threads, name)
    if name in ("save", "load"):
        from . import serialization
        return getattr(serialization, name)
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")
