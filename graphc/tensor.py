"""Tensor: an ndarray (eager) or an IR value (while tracing); every operation goes through `apply`.

    x = graphc.tensor([[1., 2.]], requires_grad=True); y = (x @ x.T).sum(); y.backward(); x.grad -> [[2., 4.]]
"""
from __future__ import annotations

import numpy as np

from . import _context, storage_version
from .errors import GraphcError, TraceError
from .ops import OPS

DEFAULT_DTYPE = np.dtype(np.float32)


def apply(op, *args, **attrs):
    """Run one primitive on Tensors: compute it now (eager) or add it to the graph (tracing)."""
    if type(op) is str:
        op = OPS[op]
    modes = _context._local   # this thread's modes, read directly (the module properties cost ~1 us per op)
    tracer = modes.tracer
    if tracer is not None:
        return tracer.emit(op, args, attrs)
    values = [a._value for a in args]
    shape, dtype = op.infer(*values, **attrs)
    try:
        out = op.impl(*values, **attrs)
    except GraphcError:
        raise
    except Exception as exc:   # the op's rule passed, so this is a bug or an unusual value: say which op
        raise GraphcError(op.name, f"failed on inputs {', '.join(f'{v.dtype}{list(v.shape)}' for v in values)}: "
                                   f"{type(exc).__name__}: {exc}") from exc
    if type(out) is not np.ndarray:   # numpy ufuncs turn 0-d results into scalars
        out = np.asarray(out)
    if out.dtype != dtype:
        out = out.astype(dtype)
    t = Tensor.__new__(Tensor)
    t._value = out
    t._grad = None
    # Only float results carry gradients (x.long() of a tensor that requires grad does not, as in PyTorch).
    if modes.grad_enabled and not op.nondiff and dtype.kind == "f" and any(a.requires_grad for a in args):
        t.requires_grad = True
        t._ctx = (op, args, attrs)
        # What the VJP will read, as it is now: backward refuses to run on values written over since.
        t._saved_versions = tuple(storage_version.version(a._value) for a in args) + (storage_version.version(out),)
    else:
        t.requires_grad = False
        t._ctx = None
    if _context.anomaly:   # inside graphc.detect_anomaly(): check the result for NaN/inf
        _context.anomaly(op, args, attrs, t)
    return t


def _is_basic_index(index):
    """An index numpy answers with a view: ints, slices, None and Ellipsis.   _is_basic_index((0, slice(1, 3)))"""
    items = index if isinstance(index, tuple) else (index,)
    return all(item is None or item is Ellipsis or isinstance(item, (int, np.integer, slice)) and not isinstance(item, bool)
               for item in items)


def as_tensor_like(value, like):
    """A Python number or array as a Tensor with `like`'s dtype (a float for an int `like` becomes float32)."""
    if isinstance(value, Tensor):
        return value
    dtype = like.dtype
    if isinstance(value, float) and dtype.kind in "biu":
        dtype = DEFAULT_DTYPE
    elif isinstance(value, bool) and dtype.kind != "b":
        pass
    elif isinstance(value, (int, np.integer)) and dtype.kind == "b":
        dtype = np.dtype(np.int64)
    return Tensor._constant(np.asarray(value, dtype=dtype))


def result_dtype(a, b):
    """PyTorch's promotion for two tensors: floats beat ints beat bools; wider floats win."""
    da, db = a.dtype, b.dtype
    if da == db:
        return da
    ka, kb = da.kind, db.kind
    rank = {"b": 0, "u": 1, "i": 1, "f": 2}
    if rank[ka] != rank[kb]:
        # 0-d tensors of a lower category do not widen the other operand (as in PyTorch)
        return da if rank[ka] > rank[kb] else db
    if not a.shape and b.shape:
        return db
    if not b.shape and a.shape:
        return da
    return np.promote_types(da, db)


class _HookHandle:
    """What register_*_hook returns: .remove() unregisters the hook."""

    _ids = iter(range(1 << 62))

    def __init__(self, hooks, hook):
        self.hooks, self.key = hooks, next(_HookHandle._ids)
        hooks[self.key] = hook

    def remove(self):
        self.hooks.pop(self.key, None)


class Tensor:
    """A multi-dimensional array with autograd, mirroring torch.Tensor."""

    __slots__ = ("_value", "requires_grad", "_grad", "_ctx", "__weakref__", "__dict__")
    __array_priority__ = 1000   # numpy scalars on the left defer to Tensor's reflected operators

    def __init__(self, data=None, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data._value
        arr = np.array([] if data is None else data, dtype=dtype)
        if dtype is None and arr.dtype == np.float64 and not isinstance(data, np.ndarray):
            arr = arr.astype(DEFAULT_DTYPE)
        self._value = arr
        self._grad = None
        self._ctx = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array):
        """An eager tensor around an existing ndarray, no copy."""
        t = cls.__new__(cls)
        t._value = array
        t._grad = None
        t._ctx = None
        t.requires_grad = False
        return t

    @classmethod
    def _constant(cls, array):
        """A literal: eager, it is the array; while tracing, a `const` node."""
        if _context.tracer is not None:
            return apply("const", value=array)
        return cls._wrap(array)

    @property
    def grad(self):
        if _context.tracer is not None:
            _context.tracer.note_grad_read(self)
        return self._grad

    @grad.setter
    def grad(self, value):
        # While tracing, the tracer must see every .grad rebinding to write it back after each call.
        if _context.tracer is not None:
            _context.tracer.note_grad(self, value)
        self._grad = value

    # --- basic facts ---------------------------------------------------------------------------
    @property
    def shape(self):
        return Size(self._value.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self._value.shape[dim]

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def ndim(self):
        return len(self._value.shape)

    def dim(self):
        return len(self._value.shape)

    def numel(self):
        return int(np.prod(self._value.shape))

    nelement = numel

    def __len__(self):
        if not self._value.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._value.shape[0]

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return None if self._ctx is None else self._ctx[0]

    @property
    def device(self):
        from .device import device
        return device("cpu")

    @property
    def is_cuda(self):
        return False

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, other):
        from .autograd import no_grad
        with no_grad():   # as in torch, assigning .data is invisible to autograd
            self._assign(other if isinstance(other, Tensor) else Tensor(other))

    def _is_traced(self):
        return not isinstance(self._value, np.ndarray)

    def _leaf_wants_grad(self):
        return self.requires_grad and self._ctx is None

    def _copy_fresh(self):
        if self._is_traced():
            return self
        return Tensor._wrap(np.array(self._value, copy=True))

    # --- leaving the graph -----------------------------------------------------------------------
    def _need_value(self, what, way_out):
        if self._is_traced():
            # compile(fullgraph=False): the graph so far runs and hands the value over (frontend/breaks.py)
            graph_break = getattr(_context.tracer, "graph_break", None)
            if graph_break is not None:
                return graph_break(self, f"{what} reads a tensor's value")
            raise TraceError(what, "cannot read a tensor's value inside @graphc.compile: the value is not "
                                   "known until the compiled graph runs",
                             hint=way_out + "; or compile with fullgraph=False to run it eagerly between two "
                                            "graphs (a graph break)")
        return self._value

    def numpy(self):
        """The values as an ndarray (shares memory, as in PyTorch).   tensor([1.]).numpy() -> array([1.], dtype=float32)"""
        value = self._need_value(".numpy()", "return the tensor from the compiled function and call .numpy() "
                                             "outside it")
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return value

    def item(self):
        """The single value as a Python number.   tensor([2.5]).item() -> 2.5"""
        value = self._need_value(".item()", "return the tensor from the compiled function and call .item() outside "
                                            "it (e.g. `loss = step(x, y); total += loss.item()`)")
        if value.size != 1:
            raise ValueError(f"a Tensor with {value.size} elements cannot be converted to Scalar")
        return value.reshape(()).item()

    def tolist(self):
        return self._need_value(".tolist()", "return the tensor and convert it outside the compiled function").tolist()

    def __bool__(self):
        value = self._need_value("bool(tensor)", "Python `if`/`while` on a tensor's value cannot be traced: use "
                                                 "graphc.where(cond, a, b) to select values, or move the branch "
                                                 "outside the compiled function")
        if value.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {value.size} elements is ambiguous")
        return bool(value)

    def __float__(self):
        return float(self._need_value("float(tensor)", "return the tensor and convert it outside the compiled function"))

    def __int__(self):
        return int(self._need_value("int(tensor)", "return the tensor and convert it outside the compiled function"))

    def __index__(self):
        return int(self)

    def __array__(self, dtype=None, copy=None):
        arr = self._need_value("np.asarray(tensor)", "numpy cannot see inside a compiled function; use graphc ops")
        return arr if dtype is None else arr.astype(dtype)

    def __repr__(self):
        if self._is_traced():
            return f"tensor(<traced {self._value.type_str()}>)"
        body = np.array2string(self._value, separator=", ", precision=4, prefix="tensor(")
        extra = ""
        if self._value.dtype not in (DEFAULT_DTYPE, np.dtype(np.int64)) or self._value.size == 0:
            extra = f", dtype=graphc.{self._value.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True" if self._ctx is None else f", grad_fn=<{self._ctx[0].name}>"
        return f"tensor({body}{extra})"

    def __hash__(self):
        return id(self)

    # --- autograd ----------------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.dtype.kind != "f":
            raise RuntimeError(f"only floating point tensors can require gradients, got {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate gradients of this tensor into the .grad of every leaf it depends on."""
        if _context.tracer is not None:
            return _context.tracer.backward(self, gradient)
        from .autograd import backward
        backward(self, gradient, create_graph=create_graph)

    def detach(self):
        if _context.tracer is not None:
            return apply("stop_gradient", self)
        return Tensor._wrap(self._value)

    def detach_(self):
        self._ctx = None
        self.requires_grad = False
        return self

    def retain_grad(self):
        return self

    # --- shared memory (graphc.multiprocessing) ------------------------------------------------------
    def share_memory_(self):
        """Move the storage into shared memory, so processes that receive this tensor update it in place."""
        if self._is_traced():
            raise TraceError("share_memory_()", "cannot share a traced tensor", hint="share the model before compiling")
        if not self.is_shared():
            from .multiprocessing.shared import create
            block = create(self._value)
            self._value = block.array
            self._shared_block = block
        return self

    def is_shared(self):
        """True when the storage is in shared memory (share_memory_)."""
        return "_shared_block" in self.__dict__

    def __deepcopy__(self, memo):
        import copy
        if not self.is_shared():
            return copy._reconstruct(self, memo, *super().__reduce_ex__(4))
        # A copy is a new tensor (as in torch), not another view of the shared block.
        state = {k: v for k, v in self.__dict__.items() if k not in ("_shared_block", "_saved_versions")}
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new._value = np.array(self._value, copy=True)
        new._grad = copy.deepcopy(self._grad, memo)
        new._ctx = None
        new.requires_grad = self.requires_grad
        new.__dict__.update(copy.deepcopy(state, memo))
        return new

    def __reduce_ex__(self, protocol):
        if not self.is_shared():
            return super().__reduce_ex__(protocol)
        from .multiprocessing.shared import rebuild_tensor
        # The block pickles as its name; the gradient stays behind (per process, as in PyTorch).
        extra = {k: v for k, v in self.__dict__.items() if k not in ("_shared_block", "_saved_versions")}
        return rebuild_tensor, (type(self), self._shared_block, self.requires_grad, extra)

    def register_post_accumulate_grad_hook(self, hook):
        """Call hook(self) once this leaf's .grad is final for a backward (eager and traced alike).

        torch's name and contract; DistributedDataParallel starts a gradient bucket's allreduce from
        it.   h = w.register_post_accumulate_grad_hook(fn); ...; h.remove()
        """
        if self._ctx is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        hooks = self.__dict__.setdefault("_post_accumulate_grad_hooks", {})
        return _HookHandle(hooks, hook)

    # --- in place (optimizers, initialisers; leaves under no_grad) -------------------------------
    def _assign(self, new):
        """Make `new` this tensor's value: in place for eager (same storage), a rebinding when tracing."""
        if _context.grad_enabled and self.requires_grad and self._ctx is None and not self._is_traced():
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation; "
                               "wrap the update in `with graphc.no_grad():`")
        if _context.tracer is not None:
            _context.tracer.assign(self, new)
            return self
        value = new._value
        if tuple(value.shape) != tuple(self._value.shape):
            value = np.broadcast_to(value, self._value.shape)
        if self._value.flags.writeable:
            np.copyto(self._value, value, casting="unsafe")
            storage_version.bump(self._value)
        else:
            self._value = np.array(value, dtype=self._value.dtype)
        return self

    def copy_(self, src):
        src = src if isinstance(src, Tensor) else Tensor(src)
        return self._assign(src.to(self.dtype) if src.dtype != self.dtype else src)

    def zero_(self):
        return self._assign(Tensor._constant(np.zeros((), self.dtype)))

    def fill_(self, value):
        return self._assign(Tensor._constant(np.asarray(value, self.dtype)))

    def add_(self, other, alpha=1):
        return self._assign(self + (other * alpha if isinstance(alpha, Tensor) or alpha != 1 else other))

    def sub_(self, other, alpha=1):
        return self._assign(self - (other * alpha if isinstance(alpha, Tensor) or alpha != 1 else other))

    def mul_(self, other):
        return self._assign(self * other)

    def div_(self, other):
        return self._assign(self / other)

    def addcmul_(self, t1, t2, value=1):
        return self._assign(self + t1 * t2 * value)

    def addcdiv_(self, t1, t2, value=1):
        return self._assign(self + t1 / t2 * value)

    def lerp_(self, end, weight):
        return self._assign(self + (end - self) * weight)

    def clamp_(self, min=None, max=None):
        return self._assign(self.clamp(min, max))

    def relu_(self):
        return self._assign(self.relu())

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from .random import init_uniform
        return self._assign(init_uniform(self.shape, self.dtype, generator) * (b - a) + a)

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from .random import init_normal
        return self._assign(init_normal(self.shape, self.dtype, generator) * std + mean)

    # --- arithmetic ----------------------------------------------------------------------------
    def _binary(self, op, other, reverse=False):
        other = as_tensor_like(other, self)
        a, b = (other, self) if reverse else (self, other)
        if a.dtype != b.dtype:
            dtype = result_dtype(a, b)
            a, b = a.to(dtype), b.to(dtype)
        return apply(op, a, b)

    def __add__(self, other):
        return self._binary("add", other)

    def __radd__(self, other):
        return self._binary("add", other, True)

    def __sub__(self, other):
        return self._binary("sub", other)

    def __rsub__(self, other):
        return self._binary("sub", other, True)

    def __mul__(self, other):
        return self._binary("mul", other)

    def __rmul__(self, other):
        return self._binary("mul", other, True)

    def __truediv__(self, other):
        t = self if self.dtype.kind == "f" or (isinstance(other, Tensor) and other.dtype.kind == "f") \
            else self.to(DEFAULT_DTYPE)
        return t._binary("div", other)

    def __rtruediv__(self, other):
        t = self if self.dtype.kind == "f" else self.to(DEFAULT_DTYPE)
        return t._binary("div", other, True)

    # x += y is in place, as in PyTorch: optimizer updates under no_grad keep the leaf (and its
    # requires_grad); a tensor on the autograd tape is rebound out of place so the tape stays right.
    def _inplace(self, op, other):
        out = self._binary(op, other)
        if _context.tracer is None and out.requires_grad and not self._leaf_wants_grad():
            return out
        return self._assign(out)

    def __iadd__(self, other):
        return self._inplace("add", other)

    def __isub__(self, other):
        return self._inplace("sub", other)

    def __imul__(self, other):
        return self._inplace("mul", other)

    def __itruediv__(self, other):
        return self._inplace("div", other)

    def __neg__(self):
        return apply("neg", self)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        from . import functional as F
        return F.pow(self, exponent)

    def __rpow__(self, base):
        from . import functional as F
        return F.exp(self * float(np.log(base)))

    def __matmul__(self, other):
        from . import functional as F
        return F.matmul(self, other)

    def __rmatmul__(self, other):
        from . import functional as F
        return F.matmul(as_tensor_like(other, self), self)

    def __abs__(self):
        return apply("abs", self)

    def __eq__(self, other):
        return self._binary("eq", other)

    def __ne__(self, other):
        return self._binary("ne", other)

    def __lt__(self, other):
        return self._binary("lt", other)

    def __le__(self, other):
        return self._binary("le", other)

    def __gt__(self, other):
        return self._binary("gt", other)

    def __ge__(self, other):
        return self._binary("ge", other)

    def __and__(self, other):
        return self._binary("logical_and", other)

    def __or__(self, other):
        return self._binary("logical_or", other)

    def __invert__(self):
        return apply("logical_not", self)

    def __getitem__(self, index):
        from . import functional as F
        return F.getitem(self, index)

    def __setitem__(self, index, value):
        from . import functional as F
        if _context.tracer is None and _context.grad_enabled and not self._leaf_wants_grad() and \
                (self.requires_grad or getattr(value, "requires_grad", False)):
            # Eager autograd: the write goes on the tape as a setitem over a snapshot of the old
            # version (torch's CopySlices), so the gradient reaches `value` and skips the overwritten
            # region.  Ops recorded on this tensor before the write would see the new values, so the
            # write bumps the storage's version counter and their backward refuses to run (as in torch).
            old = Tensor._wrap(self._value.copy())
            old.requires_grad, old._ctx = self.requires_grad, self._ctx
            saved = getattr(self, "_saved_versions", None)
            if saved is not None:   # the snapshot stands for this tensor's output, as it was recorded
                intact = saved[-1] == storage_version.version(self._value)
                old._saved_versions = saved[:-1] + (0 if intact else -1,)
            new = F.setitem(old, index, value)
            if self._value.flags.writeable:
                np.copyto(self._value, new._value, casting="unsafe")   # views of this tensor see the write
                storage_version.bump(self._value)
            else:
                self._value = new._value
            self.requires_grad, self._ctx = new.requires_grad, new._ctx
            if new._ctx is not None:
                self._saved_versions = new._saved_versions[:-1] + (storage_version.version(self._value),)
            return
        new = F.setitem(self, index, value)
        if _context.tracer is None and self._value.flags.writeable and _is_basic_index(index):
            # Write the indexed region only, as torch does: in shared memory another process may be
            # writing the rest (Hogwild's `steps_done[rank] += 1`), and a whole-tensor copy would
            # put back its stale values.
            if _context.grad_enabled and self.requires_grad and self._ctx is None:
                self._assign(new)   # raises the leaf-in-place error
            self._value[index] = new._value[index]
            storage_version.bump(self._value)
            return
        self._assign(new)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # The remaining methods (sum, mean, reshape, relu, ...) are graphc.functional's functions,
    # installed onto this class by that module: one definition serves graphc.f(x) and x.f().


class Size(tuple):
    """torch.Size: a tuple of ints with a PyTorch-like repr.   Size((2, 3)) -> graphc.Size([2, 3])"""

    def __repr__(self):
        return f"graphc.Size({list(self)})"

    def numel(self):
        return int(np.prod(self))

