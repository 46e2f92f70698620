"""Random graphc programs for differential fuzzing, and the check that eager and compiled runs agree.

    @given(programs())
    def test(prog): check(prog, "numba_cpu")        # fails with the program's source when runs disagree

A program is drawn from the op table's families (elementwise chains with broadcasting, reductions with
dim/keepdim, matmul/linear with layer sizes up to a few hundred, reshape/transpose/permute/slicing/cat/
stack/expand, conv2d, max/avg pooling, and a loss: mean, mse, cross_entropy, log_softmax + nll). It is
rendered as Python source over graphc tensors, computes a scalar loss, calls loss.backward() inside the
(compiled) function, often takes a step of any graphc.optim optimizer (with its flags, sometimes two
param groups with their own hyper-parameters), and returns the loss, an intermediate value, every
parameter's grad and updated value. Programs hold up to 50 parameter tensors and unit dims everywhere.

Each run calls the program several times: twice on the same data (the second call runs on the optimizer
state and graphs the first left behind), or, for a batch-polymorphic program, once per batch size (batch
dims of 1 included) through the same compiled function. Every call must agree with eager.

The test file (test_fuzz.py) and the long campaign (benchmarks/fuzz_campaign.py) share this module.
"""
from __future__ import annotations

import inspect
import linecache
import re

import numpy as np
from hypothesis import strategies as st

import graphc
import graphc.nn.functional as F

RTOL, ATOL = 2e-4, 2e-5
MAX_PARAMS = 50
# The batch dim of a batch-polymorphic program has this size while the program is drawn; no other dim
# ever has it (other dims are at most 8, layer sizes avoid it), so a dim of this size is the batch.
BATCH = 11
LAYER_SIZES = [1, 2, 3, 4, 1, 2, 3, 4, 32, 100, 300]
DIMS = [1, 1, 2, 3, 4]


# ----------------------------------------------------------------------------------------------
# Optimizers: one line per optimizer. Flags an optimizer's signature lacks are skipped, optimizers
# graphc.optim lacks are skipped, so a new optimizer is one line here.
# ----------------------------------------------------------------------------------------------

def _sgd_rules(kw):
    if kw.get("nesterov"):   # PyTorch: Nesterov momentum needs a momentum and zero dampening
        kw["momentum"], kw["dampening"] = kw.get("momentum") or 0.9, 0
    return kw


WEIGHT_DECAY, MAXIMIZE = [0, 0, 0.01], [False, False, True]
OPTIMIZERS = {   # name: ({hyper-parameter: choices}, rule that makes a drawn combination legal)
    "SGD": ({"lr": [0.1, 0.01], "momentum": [0, 0.9], "dampening": [0, 0, 0.1], "nesterov": [False, True],
             "weight_decay": WEIGHT_DECAY, "maximize": MAXIMIZE}, _sgd_rules),
    "Adam": ({"lr": [0.05, 0.001], "betas": [(0.9, 0.999), (0.5, 0.9)], "weight_decay": WEIGHT_DECAY,
              "amsgrad": [False, True], "maximize": MAXIMIZE}, None),
    "AdamW": ({"lr": [0.05, 0.001], "betas": [(0.9, 0.999), (0.5, 0.9)], "weight_decay": [0.01, 0.1],
               "amsgrad": [False, True], "maximize": MAXIMIZE}, None),
    "Adadelta": ({"lr": [1.0, 0.5], "rho": [0.9, 0.5], "weight_decay": WEIGHT_DECAY, "maximize": MAXIMIZE}, None),
    "RMSprop": ({"lr": [0.01, 0.001], "alpha": [0.99, 0.9], "momentum": [0, 0.9], "centered": [False, True],
                 "weight_decay": WEIGHT_DECAY, "maximize": MAXIMIZE}, None),
    "Adagrad": ({"lr": [0.1, 0.01], "lr_decay": [0, 0.01], "initial_accumulator_value": [0, 0.1],
                 "weight_decay": WEIGHT_DECAY, "maximize": MAXIMIZE}, None),
}
GROUP_KEYS = ("lr", "momentum", "weight_decay", "betas", "rho", "alpha", "lr_decay", "dampening")


def available_optimizers():
    """{name: ({flag: choices}, rule)} for the optimizers graphc.optim has, limited to the flags they take."""
    out = {}
    for name, (flags, rule) in OPTIMIZERS.items():
        cls = getattr(graphc.optim, name, None)
        if cls is None:
            continue
        accepted = inspect.signature(cls).parameters
        out[name] = ({k: v for k, v in flags.items() if k in accepted}, rule)
    return out


def supports_param_groups():
    try:
        p = graphc.nn.Parameter(graphc.zeros(1))
        q = graphc.nn.Parameter(graphc.zeros(1))
        graphc.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
        return True
    except Exception:   # noqa: BLE001 -- any failure means "not supported": the fuzzer then draws one group
        return False


_OPTIMIZERS = available_optimizers()
_GROUPS = supports_param_groups()


@st.composite
def optimizer_source(draw, n_params):
    """Source of an optimizer over `params`, or None (no update): every flag, sometimes two groups."""
    name = draw(st.sampled_from([None, None] + sorted(_OPTIMIZERS)))
    if name is None:
        return None
    flags, rule = _OPTIMIZERS[name]
    kw = {k: draw(st.sampled_from(v)) for k, v in flags.items()}
    kw = rule(kw) if rule else kw
    if not (_GROUPS and n_params >= 2 and draw(st.integers(0, 2)) == 0):
        return f"graphc.optim.{name}(params, {_kwargs(kw)})"
    cut = draw(st.integers(1, n_params - 1))
    own = {k: draw(st.sampled_from(flags[k])) for k in GROUP_KEYS if k in flags and draw(st.booleans())}
    own = {k: v for k, v in (rule({**kw, **own}) if rule else own).items() if k in own or kw.get(k) != v}
    second = "".join(f", {k!r}: {v!r}" for k, v in own.items())
    return (f"graphc.optim.{name}([{{'params': params[:{cut}]}}, {{'params': params[{cut}:]{second}}}], "
            f"{_kwargs(kw)})")


def _kwargs(kw):
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


# ----------------------------------------------------------------------------------------------
# Programs
# ----------------------------------------------------------------------------------------------

class Program:
    """A random program: inputs (parameters and data), source lines, and how to build the values."""

    def __init__(self, seed, dynamic=False, batch_sizes=(BATCH, 1, 3)):
        self.seed = seed
        self.dynamic = dynamic   # batch-polymorphic: dims of size BATCH take each of batch_sizes in turn
        self.batches = list(batch_sizes) if dynamic else [None, None]
        self.params = []      # (name, shape)
        self.data = []        # (name, shape, classes or None)
        self.lines = []
        self.values = []      # (var name, shape, requires_grad)
        self.tail = None      # the value returned next to the loss
        self.optimizer = None  # source of an optimizer over the parameters, or None (then no update)

    # --- building ---------------------------------------------------------------------------
    def param(self, shape):
        name = f"p{len(self.params)}"
        self.params.append((name, tuple(shape)))
        return self.add_value(name, shape, True, line=None)

    def data_input(self, shape, classes=None):
        name = f"d{len(self.data)}"
        self.data.append((name, tuple(shape), classes))
        return self.add_value(name, shape, False, line=None)

    def add_value(self, expr, shape, grad, line=True):
        if line is None:
            self.values.append((expr, tuple(shape), grad))
            return len(self.values) - 1
        name = f"v{len(self.lines)}"
        self.lines.append(f"{name} = {expr}")
        self.values.append((name, tuple(shape), grad))
        return len(self.values) - 1

    def name(self, i):
        return self.values[i][0]

    def shape(self, i):
        return self.values[i][1]

    def room(self):
        """How many more parameter tensors the program may draw."""
        return MAX_PARAMS - len(self.params)

    # --- output -----------------------------------------------------------------------------
    def source(self):
        args = ", ".join(name for name, _, _ in self.data)
        body = ["opt.zero_grad()"] if self.optimizer else []
        body += self.lines
        # The small L2 term gives every parameter a gradient well above rounding noise (Adam would
        # otherwise blow noise on a structurally-zero gradient up to a full step).
        reg = " + ".join(f"({p} * {p}).sum()" for p, _ in self.params)
        body.append(f"loss = loss + 0.001 * ({reg})")
        body.append("loss.backward()")
        grads = "".join(f", {p}.grad" for p, _ in self.params)
        if self.optimizer:
            body.append("opt.step()")
            grads += "".join(f", {p} * 1.0" for p, _ in self.params)
        body.append(f"return loss, {self.tail}{grads}")
        return f"def program({args}):\n" + "\n".join("    " + line for line in body) + "\n"

    def outputs(self):
        names = ["loss", "value"] + [f"{p}.grad" for p, _ in self.params]
        return names + ([f"{p} after the step" for p, _ in self.params] if self.optimizer else [])

    def build(self, dtype=np.float32):
        """(function, parameters) ready to run: fresh parameters on every call (float64: the reference)."""
        rng = np.random.default_rng(self.seed)
        namespace = {"graphc": graphc, "F": F}
        params = []
        for name, shape in self.params:
            p = graphc.nn.Parameter(graphc.tensor(rng.standard_normal(shape).astype(np.float32).astype(dtype)))
            namespace[name] = p
            params.append(p)
        if self.optimizer:
            namespace["opt"] = eval(self.optimizer, {"graphc": graphc, "params": params})
        filename = f"<fuzz program {self.seed}>"
        source = self.source()
        # linecache knows the source: errors then quote the program's line, as they would a user's file
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        code = compile(source, filename, "exec")
        exec(code, namespace)
        return namespace["program"], params

    def inputs(self, call, dtype=np.float32):
        """The data tensors of call number `call` (the same on every run of the program)."""
        batch = self.batches[call]
        rng = np.random.default_rng([self.seed, batch or 0])
        out = []
        for _, shape, classes in self.data:
            shape = tuple(batch if (batch and d == BATCH) else d for d in shape) if batch else shape
            if classes is None:
                out.append(graphc.tensor(rng.standard_normal(shape).astype(np.float32).astype(dtype)))
            else:
                out.append(graphc.tensor(rng.integers(0, classes, shape).astype(np.int64)))
        return out

    def header(self):
        shapes = ", ".join(f"{n}: {list(s)}" for n, s in self.params)
        dshapes = ", ".join(f"{n}: {list(s)}{' labels<' + str(c) if c else ''}" for n, s, c in self.data)
        opt = f"\n# opt = {self.optimizer}" if self.optimizer else ""
        calls = f"\n# calls with batch sizes {self.batches} (dims of {BATCH} are the batch)" if self.dynamic else ""
        return f"# seed {self.seed}; params {shapes}\n# data {dshapes}{opt}{calls}"

    def __repr__(self):
        return f"{self.header()}\n{self.source()}"


def compatible_shape(draw, shape, param=False, grow=True):
    """A shape that broadcasts with `shape` (trailing dims equal or 1; possibly fewer or more dims).

    A parameter never takes the batch dim of a batch-polymorphic program (it gets 1 there); with
    grow=False the shape broadcasts *into* `shape` (no more dims, so the result keeps `shape`).
    """
    top = min(len(shape) + 1, 4) if grow else len(shape)
    rank = draw(st.integers(max(0, len(shape) - 2), max(top, 0)))
    out = []
    for j in range(rank):
        axis = j - rank
        if -axis <= len(shape):
            d = shape[axis]
            if d == BATCH and param:
                out.append(1)
            else:
                out.append(draw(st.sampled_from([d, 1])) if d != 1 else draw(st.sampled_from([1, 1, 2, 3])))
        else:
            out.append(draw(st.sampled_from([1, 2])))
    if not grow:   # a 1 in `shape` must stay 1
        out = [1 if shape[j - len(out)] == 1 else d for j, d in enumerate(out)]
    return tuple(out)


def broadcast(a, b):
    return tuple(np.broadcast_shapes(a, b))


UNARY = {
    "tanh": "graphc.tanh({0})", "sigmoid": "graphc.sigmoid({0})", "relu": "graphc.relu({0})",
    "abs": "graphc.abs({0})", "neg": "-{0}", "exp": "graphc.exp(graphc.tanh({0}))",
    "log": "graphc.log({0} * {0} + 1.0)", "sqrt": "graphc.sqrt({0} * {0} + 0.5)", "square": "{0} ** 2",
    "clamp": "{0}.clamp(-0.5, 0.7)", "clamp_min": "graphc.clamp({0}, min=0.1)", "affine": "{0} * 0.5 + 1.0",
    "rsub": "2.0 - {0}", "recip": "1.0 / ({0} * {0} + 1.0)", "sig_mul": "{0} * graphc.sigmoid({0})",
    "gelu": "F.gelu({0})", "silu": "F.silu({0})", "elu": "F.elu({0})", "leaky": "F.leaky_relu({0}, 0.1)",
    "pow": "graphc.pow({0} * {0} + 1.0, 1.5)", "mask": "({0} > 0).float() * {0}",
}
BINARY = {
    "add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / ({1} * {1} + 0.5)",
    "maximum": "graphc.maximum({0}, {1})", "minimum": "graphc.minimum({0}, {1})",
    "where": "graphc.where({0} > {1}, {0}, {1} * 0.5)",
}


def _kinds(prog, shape):
    """The op families that fit a value of this shape (a batch-polymorphic program skips the ones whose
    source would spell a batch-dependent size)."""
    rank = len(shape)
    kinds = ["unary", "binary", "binary", "scalar_chain"]
    if rank >= 1:
        kinds += ["reduce", "movement", "softmax", "norm"]
        if prog.room() >= 2 and not (prog.dynamic and shape[-1] == BATCH):
            kinds.append("matmul")
    if rank == 4 and prog.room() >= 2 and not (prog.dynamic and BATCH in shape[1:]):
        kinds += ["conv", "conv", "pool"]
    return kinds


def step(draw, prog, live):
    """Append one op to the program, reading live values; returns the new value's index."""
    i = draw(st.sampled_from(live))
    shape = prog.shape(i)
    x = prog.name(i)
    grad = prog.values[i][2]
    rank = len(shape)
    kind = draw(st.sampled_from(_kinds(prog, shape)))
    if kind == "unary":
        op = draw(st.sampled_from(sorted(UNARY)))
        return prog.add_value(UNARY[op].format(x), shape, grad)
    if kind == "scalar_chain":
        a, b = draw(st.sampled_from([0.5, 2.0, -1.5])), draw(st.sampled_from([0.25, -1.0, 3.0]))
        return prog.add_value(f"({x} * {a} + {b}) * {x}", shape, grad)
    if kind == "binary":
        op = draw(st.sampled_from(sorted(BINARY)))
        others = [j for j in live if j != i and _broadcastable(prog.shape(j), shape)]
        sources = (["new_param"] if prog.room() else []) + ["new_data"] + (["live"] if others else [])
        source = draw(st.sampled_from(sources))
        if source == "live":
            j = draw(st.sampled_from(others))
        elif source == "new_param":
            j = prog.param(compatible_shape(draw, shape, param=True))
        else:
            j = prog.data_input(compatible_shape(draw, shape))
        a, b = (i, j) if draw(st.booleans()) else (j, i)
        out = broadcast(prog.shape(a), prog.shape(b))
        return prog.add_value(BINARY[op].format(prog.name(a), prog.name(b)), out,
                              prog.values[a][2] or prog.values[b][2])
    if kind == "reduce":
        op = draw(st.sampled_from(["sum", "mean", "amax", "logsumexp"]))
        dim = draw(st.one_of(st.none(), st.integers(-rank, rank - 1))) if op != "logsumexp" \
            else draw(st.integers(-rank, rank - 1))
        keepdim = draw(st.booleans())
        if dim is None:
            expr, out = f"{x}.{op}()" if op != "amax" else f"graphc.amax({x})", ()
        else:
            d = dim % rank
            out = tuple(1 if k == d else s for k, s in enumerate(shape)) if keepdim else \
                tuple(s for k, s in enumerate(shape) if k != d)
            expr = {"sum": f"{x}.sum(dim={dim}, keepdim={keepdim})",
                    "mean": f"{x}.mean(dim={dim}, keepdim={keepdim})",
                    "amax": f"graphc.amax({x}, dim={dim}, keepdim={keepdim})",
                    "logsumexp": f"graphc.logsumexp({x}, dim={dim}, keepdim={keepdim})"}[op]
        return prog.add_value(expr, out, grad)
    if kind == "norm":   # layer-norm-like: mean and biased variance over the last dim
        return prog.add_value(f"({x} - {x}.mean(dim=-1, keepdim=True)) / "
                              f"graphc.sqrt({x}.var(dim=-1, keepdim=True, unbiased=False) + 1e-5)", shape, grad)
    if kind == "softmax":
        dim = draw(st.integers(-rank, rank - 1))
        fn = draw(st.sampled_from(["F.softmax", "F.log_softmax"]))
        return prog.add_value(f"{fn}({x}, dim={dim})", shape, grad)
    if kind == "matmul":
        return _matmul(draw, prog, x, shape)
    if kind == "movement":
        return _movement(draw, prog, x, shape, grad)
    return _image(draw, prog, kind, x, shape, grad)


def _matmul(draw, prog, x, shape):
    n = shape[-1]
    k = draw(st.sampled_from(LAYER_SIZES))
    form = draw(st.sampled_from(["w", "wt", "linear", "linear_nobias"]))
    out = shape[:-1] + (k,)
    if form == "w":
        w = prog.param((n, k))
        return prog.add_value(f"{x} @ {prog.name(w)}", out, True)
    w = prog.param((k, n))
    if form == "wt":
        return prog.add_value(f"graphc.matmul({x}, {prog.name(w)}.t())", out, True)
    if form == "linear":
        b = prog.param((k,))
        return prog.add_value(f"F.linear({x}, {prog.name(w)}, {prog.name(b)})", out, True)
    return prog.add_value(f"F.linear({x}, {prog.name(w)})", out, True)


def _movement(draw, prog, x, shape, grad):
    rank = len(shape)
    dyn = prog.dynamic and BATCH in shape
    forms = ["unsqueeze", "stack", "cat"]
    if not dyn:   # these spell sizes in the source, or change the batch dim's size
        forms += ["reshape", "flatten", "slice", "expand"]
    elif rank >= 2 and BATCH not in shape[1:]:
        forms += ["flatten"]
    if rank >= 2:
        forms += ["transpose", "permute"]
    if 1 in shape:
        forms.append("squeeze")
    form = draw(st.sampled_from(forms))
    if form == "reshape":
        new = draw(st.sampled_from(_factorizations(int(np.prod(shape)))))   # never has a dim of BATCH (prime)
        return prog.add_value(f"{x}.reshape({new})", new, grad)
    if form == "flatten":
        start = draw(st.integers(1 if dyn else 0, rank - 1))
        out = shape[:start] + (int(np.prod(shape[start:])),)
        return prog.add_value(f"graphc.flatten({x}, {start})", out, grad)
    if form == "unsqueeze":
        d = draw(st.integers(0, rank))
        return prog.add_value(f"{x}.unsqueeze({d})", shape[:d] + (1,) + shape[d:], grad)
    if form == "squeeze":
        d = draw(st.sampled_from([k for k, s in enumerate(shape) if s == 1]))
        return prog.add_value(f"{x}.squeeze({d})", shape[:d] + shape[d + 1:], grad)
    if form == "slice":
        cut = draw(st.sampled_from(["[1:]", "[1:]", "[0]", "[..., :1]"]))
        if cut == "[1:]" and shape[0] >= 2:
            return prog.add_value(f"{x}[1:]", (shape[0] - 1,) + shape[1:], grad)
        if cut == "[..., :1]":
            return prog.add_value(f"{x}[..., :1]", shape[:-1] + (1,), grad)
        return prog.add_value(f"{x}[0]", shape[1:], grad)
    if form == "cat":
        dims = [k for k in range(rank) if shape[k] != BATCH or not prog.dynamic]
        if not dims:
            return prog.add_value(UNARY["tanh"].format(x), shape, grad)
        d = draw(st.sampled_from(dims))
        out = tuple(2 * s if k == d else s for k, s in enumerate(shape))
        return prog.add_value(f"graphc.cat([{x}, graphc.tanh({x})], dim={d})", out, grad)
    if form == "stack":
        d = draw(st.integers(0, rank))
        return prog.add_value(f"graphc.stack([{x}, {x} * 2.0], dim={d})", shape[:d] + (2,) + shape[d:], grad)
    if form == "expand":
        return prog.add_value(f"{x}.unsqueeze(0).expand(2, {', '.join(map(str, shape))})", (2,) + shape, grad)
    if form == "transpose":
        a, b = draw(st.sampled_from([(a, b) for a in range(rank) for b in range(a + 1, rank)]))
        out = list(shape)
        out[a], out[b] = out[b], out[a]
        return prog.add_value(f"{x}.transpose({a}, {b})", tuple(out), grad)
    perm = tuple(draw(st.permutations(range(rank))))
    return prog.add_value(f"{x}.permute{perm}", tuple(shape[p] for p in perm), grad)


def _image(draw, prog, kind, x, shape, grad):
    n, c, h, w = shape
    if kind == "conv":
        o = draw(st.integers(1, 3))
        kh, kw = draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w)))
        stride = draw(st.sampled_from([1, 1, 2]))
        pad = draw(st.integers(0, min(1, kh - 1, kw - 1)))
        weight = prog.param((o, c, kh, kw))
        bias = prog.param((o,)) if draw(st.booleans()) else None
        oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
        args = f"{x}, {prog.name(weight)}" + (f", {prog.name(bias)}" if bias is not None else "")
        return prog.add_value(f"F.conv2d({args}, stride={stride}, padding={pad})", (n, o, oh, ow), True)
    k = 2
    if h < 2 or w < 2:
        return prog.add_value(UNARY["tanh"].format(x), shape, grad)
    pool = draw(st.sampled_from(["max", "max", "avg", "adaptive"]))
    if pool == "avg":
        return prog.add_value(f"F.avg_pool2d({x}, 2)", (n, c, h // 2, w // 2), grad)
    if pool == "adaptive":
        return prog.add_value(f"F.adaptive_avg_pool2d({x}, 1)", (n, c, 1, 1), grad)
    stride = draw(st.sampled_from([None, 1, 2]))
    pad = draw(st.sampled_from([0, 0, 1]))
    s = stride or k
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    return prog.add_value(f"F.max_pool2d({x}, {k}, stride={stride}, padding={pad})", (n, c, oh, ow), grad)


def _broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _factorizations(n):
    out = [(n,)]
    for a in range(1, n + 1):
        if n % a == 0:
            out.append((a, n // a))
            for b in range(1, n // a + 1):
                if (n // a) % b == 0 and a <= 4:
                    out.append((a, b, n // a // b))
    return out[:12]


def _many_params(draw, prog, i):
    """Real-model territory: up to MAX_PARAMS parameter tensors, folded into the value as scaled biases."""
    n = draw(st.sampled_from([0, 0, 0, 0, 2, 8, 20, MAX_PARAMS]))
    n = draw(st.integers(0, min(n, prog.room())))
    shape = prog.shape(i)
    for _ in range(n):
        p = prog.param(compatible_shape(draw, shape, param=True, grow=False))
        scale = draw(st.sampled_from(["0.5", "-1.0", "0.1"]))
        i = prog.add_value(f"{prog.name(i)} + {scale} * {prog.name(p)}", shape, True)
    return i


@st.composite
def programs(draw, max_ops=6, dynamic=None, batch_sizes=(BATCH, 1, 3)):
    """A random Program; `dynamic` (True/False/None: drawn) makes it batch-polymorphic, called once per
    batch size through one graphc.compile(dynamic=True) (size 1 compiles on its own: keep the list short
    where compiles are dear)."""
    dynamic = draw(st.integers(0, 3)) == 0 if dynamic is None else dynamic
    prog = Program(draw(st.integers(0, 2 ** 31 - 1)), dynamic=dynamic, batch_sizes=batch_sizes)
    first_dim = BATCH if dynamic else draw(st.sampled_from(DIMS))
    if draw(st.integers(0, 3)) == 0:   # an image program: conv / pool first
        shape = (BATCH if dynamic else draw(st.integers(1, 2)), draw(st.integers(1, 3)),
                 draw(st.integers(3, 6)), draw(st.integers(3, 6)))
    else:
        rank = draw(st.integers(1, 3))
        shape = (first_dim,) + tuple(draw(st.sampled_from(DIMS)) for _ in range(rank - 1))
    x = prog.data_input(shape)
    p = prog.param(compatible_shape(draw, shape, param=True))
    first = prog.add_value(f"{prog.name(x)} * {prog.name(p)}" if draw(st.booleans())
                           else f"{prog.name(x)} + {prog.name(p)}", broadcast(shape, prog.shape(p)), True)
    live = [first]
    for _ in range(draw(st.integers(1, max_ops))):
        live.append(step(draw, prog, live))
        live = live[-3:]
    last = _many_params(draw, prog, live[-1])
    prog.tail = prog.name(last)
    _add_loss(draw, prog, last)
    prog.optimizer = draw(optimizer_source(len(prog.params)))
    return prog


def _add_loss(draw, prog, i):
    x, shape = prog.name(i), prog.shape(i)
    kinds = ["mean", "square_mean", "mse"]
    if len(shape) >= 1 and shape[-1] >= 2 and not (prog.dynamic and shape[-1] == BATCH):
        kinds += ["cross_entropy", "cross_entropy", "nll"]
    kind = draw(st.sampled_from(kinds))
    if kind == "mean":
        prog.lines.append(f"loss = {x}.mean()" if shape else f"loss = {x} * 1.0")
    elif kind == "square_mean":
        prog.lines.append(f"loss = ({x} * {x}).mean()")
    elif kind == "mse":
        target = prog.data_input(shape)
        prog.lines.append(f"loss = F.mse_loss({x}, {prog.name(target)})")
    else:
        classes = shape[-1]
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        # -1: the rows scale with the batch size of a batch-polymorphic program
        logits = f"{x}.reshape(-1, {classes})" if prog.dynamic else f"{x}.reshape({rows}, {classes})"
        # labels: one per row; in a batch-polymorphic program, rows = m * batch ** k
        k = sum(1 for d in shape[:-1] if d == BATCH) if prog.dynamic else 0
        if k:
            y = prog.data_input((rows // BATCH ** k,) + (BATCH,) * k, classes=classes)
            labels = f"{prog.name(y)}.reshape(-1)"
        else:
            labels = prog.name(prog.data_input((rows,), classes=classes))
        if kind == "cross_entropy":
            prog.lines.append(f"loss = F.cross_entropy({logits}, {labels})")
        else:
            prog.lines.append(f"loss = F.nll_loss(F.log_softmax({logits}, dim=1), {labels})")


# ----------------------------------------------------------------------------------------------
# Running and comparing
# ----------------------------------------------------------------------------------------------

class Mismatch(AssertionError):
    """A compiled run differs from eager (beyond float32 rounding of an ill-conditioned value)."""


class Crash(RuntimeError):
    """A run raised: the phase ("eager", "compile on numba_cpu"...) and the original exception."""

    def __init__(self, phase, exc, prog):
        self.phase, self.exc = phase, exc
        self.summary = f"{phase}: {type(exc).__name__}: {exc}"   # without the program
        super().__init__(f"{self.summary}\n{prog!r}")


def run(prog, backend=None, dtype=np.float32):
    """The outputs of each call of the program (eager, or compiled on `backend`), from fresh parameters.

    A batch-polymorphic program compiles with dynamic=True: its sizes run on one symbolic compile
    (size 1 and any size whose code depends on the value get their own static compile).
    """
    fn, params = prog.build(dtype)
    if backend is not None:
        fn = graphc.compile(fn, backend=backend, dynamic=True if prog.dynamic else None)
    outs = []
    for call in range(len(prog.batches)):
        for p in params:
            p.grad = None
        try:
            result = fn(*prog.inputs(call, dtype))
        except Exception as exc:   # noqa: BLE001 -- any escape is a finding, reported with the program
            raise Crash(f"call {call + 1} on {backend or 'eager'}", exc, prog) from exc
        outs.append([None if t is None else np.array(t.detach().numpy()) for t in result])
    return outs


def assert_agree(prog, want, got, backend, note=print):
    """Raise Mismatch (with the program and graphc.verify's report) unless every output of every call agrees.

    A value outside the tolerance still agrees when it is ill-conditioned, shown one of two ways:
    a parameter after the step is eager's optimizer applied to the compiled gradients (_step_replays),
    or the compiled value is within what float32 rounding does to the value in float64 runs of the
    program (_as_close_as_eager: a gradient summed from terms of 1e4 that cancel to 1e-3 carries 1e-4
    of rounding, in whichever order a backend sums).
    """
    reference = []   # the float64 run, made on the first value that needs it
    for call, (w_out, g_out) in enumerate(zip(want, got)):
        for name, w, g in zip(prog.outputs(), w_out, g_out):
            where = f"{backend}, call {call + 1}"
            if w is None or g is None:
                if not (w is None and g is None):
                    raise Mismatch(f"{where}: {name} is None in one run only\n{prog!r}")
                continue
            if w.shape != g.shape:
                raise Mismatch(f"{where}: {name} has shape {g.shape}, eager {w.shape}\n{prog!r}")
            scale = 1.0 + float(np.max(np.abs(w))) if w.size and np.isfinite(w).all() else 1.0
            if not np.allclose(g, w, rtol=RTOL, atol=ATOL * scale, equal_nan=True):
                if name.endswith(" after the step") and _step_replays(prog, got, call):
                    note(f"{where}: {name} differs from eager, but it is eager's optimizer applied to the "
                         f"compiled gradients, which agree with eager's: the step amplifies their rounding")
                    return   # later calls start from other parameters: no longer comparable
                reference = reference or [_float64_run(prog)]
                refs = None if reference[0] is None else [r[call][prog.outputs().index(name)] for r in reference[0]]
                if refs is not None and _as_close_as_eager(g, w, refs, scale):
                    note(f"{where}: {name} differs from eager by {np.max(np.abs(g - w)):.3g}, within what float32 "
                         f"rounding moves it in float64 runs with rounding noise: ill-conditioned")
                    continue
                fn, _ = prog.build()
                report = graphc.verify(fn, *prog.inputs(call), backend=backend, rtol=RTOL, atol=ATOL * scale,
                                       steps=call + 1)
                if report.divergence is not None and report.divergence.where == "rounding":
                    note(f"{backend}: {name} differs by rounding only (float64 moves it as far):\n{report}")
                    return   # an ill-conditioned value (e.g. Adam's step on a cancelling gradient): not a bug
                raise Mismatch(f"{where}: {name} differs from eager (max abs {np.max(np.abs(g - w)):.3g})\n"
                               f"{prog!r}\n{report}")


ROUNDING_FACTOR = 16
NOISY_RUNS = 4


def _float64_run(prog):
    """[exact, noisy...]: the program's outputs in float64 (parameters and data are the float32 values,
    widened), then NOISY_RUNS float64 runs whose every op result is perturbed by float32's rounding
    (Monte Carlo arithmetic). Their spread is how far float32 rounding alone can move each value,
    whatever order a backend sums in. None when some op has no float64 path."""
    try:
        runs = [run(prog, dtype=np.float64)]
        for seed in range(NOISY_RUNS):
            with _float32_rounding_noise(seed):
                runs.append(run(prog, dtype=np.float64))
    except Crash:   # no reference: the value is judged without one
        return None
    return runs


class _float32_rounding_noise:
    """Within: every eager op's float64 result is multiplied by (1 + u * 2**-24), u uniform in [-1, 1]."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.saved = {}

    def __enter__(self):
        from graphc.ops import OPS
        for name, op in OPS.items():
            self.saved[name] = impl = op.impl
            op.impl = self._noisy(impl)
        return self

    def _noisy(self, impl):
        def noisy(*args, **kwargs):
            out = impl(*args, **kwargs)
            if isinstance(out, np.ndarray) and out.dtype == np.float64:
                return out * (1.0 + self.rng.uniform(-1.0, 1.0, out.shape) * 2.0 ** -24)
            return out
        return noisy

    def __exit__(self, *exc):
        from graphc.ops import OPS
        for name, impl in self.saved.items():
            OPS[name].impl = impl


def _as_close_as_eager(got, want, refs, scale):
    """True when the compiled value's distance from the float64 value is within ROUNDING_FACTOR times
    what float32 rounding can do to it: eager's own distance, or the spread of the noisy float64 runs."""
    ref = refs[0].astype(np.float64)
    spread = max([float(np.max(np.abs(want - ref), initial=0.0)),
                  float(np.finfo(np.float32).eps * np.max(np.abs(ref), initial=0.0))]
                 + [float(np.max(np.abs(noisy - ref), initial=0.0)) for noisy in refs[1:]])
    error = float(np.max(np.abs(got.astype(np.float64) - ref), initial=0.0))
    return np.isfinite(error) and error <= ROUNDING_FACTOR * spread + ATOL * scale


def _step_replays(prog, got, call):
    """True when eager's optimizer, fed the compiled run's gradients of calls 1..call+1, lands on the
    compiled run's parameters.

    Then the compiled update is right and a parameter differs from eager only because the step amplifies
    float32 rounding of its gradient (the gradients themselves were compared already and agree): Adam's
    m / sqrt(v) on a gradient that nearly cancels between steps turns a 1e-9 difference into 1e-4.
    """
    n = len(prog.params)
    fn, params = prog.build()
    opt = fn.__globals__["opt"]
    for step in range(call + 1):
        grads = got[step][2:2 + n]
        for p, g in zip(params, grads):
            p.grad = None if g is None else graphc.tensor(g)
        opt.step()
    for p, g in zip(params, got[call][2 + n:]):
        w = p.detach().numpy()
        if not np.allclose(g, w, rtol=RTOL, atol=ATOL * (1.0 + float(np.max(np.abs(w)))), equal_nan=True):
            return False
    return True


def check(prog, backends, note=print):
    """Run `prog` eagerly and on each backend; raise Crash or Mismatch on the first disagreement."""
    want = run(prog)
    for backend in backends:
        assert_agree(prog, want, run(prog, backend), backend, note)


# ----------------------------------------------------------------------------------------------
# Failure identity (for deduplication)
# ----------------------------------------------------------------------------------------------

_VOLATILE = [(re.compile(r"0x[0-9a-f]+"), "0x?"), (re.compile(r"graphc_[0-9a-f]{8,}"), "graphc_?"),
             (re.compile(r"%\w+"), "%?"), (re.compile(r"\b[pvd]\d+\b"), "?"), (re.compile(r"_\d+\b"), "_?"),
             (re.compile(r"-?\d+(\.\d+)?(e-?\d+)?"), "N"), (re.compile(r"<fuzz program N>"), "<program>")]


def failure_key(exc):
    """(exception type, normalized first message line, phase) naming a distinct failure."""
    if isinstance(exc, Crash):
        inner, phase = exc.exc, re.sub(r"^call \d+ on ", "", exc.phase)
    else:
        inner, phase = exc, "compare"
        backend = str(exc).split(",", 1)[0]
        phase = f"compare on {backend}"
    first = (str(inner).strip().splitlines() or [""])[0]
    if isinstance(exc, Mismatch):
        first = first.split(": ", 1)[1] if ": " in first else first
        first = re.sub(r"\(max abs .*\)", "", first)
    for pattern, repl in _VOLATILE:
        first = pattern.sub(repl, first)
    return type(inner).__name__, first.strip(), phase
