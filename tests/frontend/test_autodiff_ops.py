"""The autodiff pass, op by op: compiled gradients == eager autograd == float64 finite differences.

For every differentiable case of the op table (tests/ops/cases/), a compiled function computes

    loss = (case.fn(*xs) * seed).sum();  loss.backward();  return [x.grad for x in xs]

with the inputs captured from the closure (so the tracer lifts them as graph inputs) and returns
the gradients the autodiff pass derived.  Those must equal eager autograd's (float32) and central
differences of the eager forward (float64).  The interpreter runs every case, one small graph each;
numba_cpu runs a representative subset batched into one graph (a numba compile costs seconds).
"""
import zlib

import numpy as np
import pytest

import graphc

cases_module = pytest.importorskip("tests.ops.cases", reason="the op table tests/ops/cases/ is not there")
CASES, CASES_BY_NAME = cases_module.CASES, cases_module.CASES_BY_NAME

DIFFERENTIABLE = [c for c in CASES if c.grad and c.traceable]
FD_EPS, FD_ATOL, FD_RTOL = 1e-6, 1e-5, 1e-3          # graphc.autograd.gradcheck's defaults

# The autodiff pass's known failures, case -> reason (strict xfails: a fix makes them XPASS, then delete).
KNOWN_BUGS = {}


def params(cases):
    out = []
    for c in cases:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c.name])] if c.name in KNOWN_BUGS else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


def seed_for(case, out_shape, dtype):
    rng = np.random.default_rng(zlib.crc32(case.name.encode()) + 1)
    return np.asarray(rng.standard_normal(out_shape), dtype=dtype)


class Problem:
    """One case's inputs (floats require grad), its output seed, and the scalar the gradients are of."""

    def __init__(self, case, float_dtype):
        self.case = case
        self.arrays = case.inputs(float_dtype)
        self.slots = case.float_inputs()
        out = case.fn(*[graphc.tensor(a) for a in self.arrays])
        self.seed = seed_for(case, tuple(out.shape), out.dtype)
        self.leaves = {i: graphc.tensor(self.arrays[i], requires_grad=True) for i in self.slots}
        self.fixed = [graphc.tensor(a) for a in self.arrays]
        self.seed_t = graphc.tensor(self.seed)

    def loss(self):
        args = [self.leaves.get(i, self.fixed[i]) for i in range(len(self.arrays))]
        return (self.case.fn(*args) * self.seed_t).sum()

    def reset(self):
        for t in self.leaves.values():
            t.grad = None

    def grads(self):
        return [self.leaves[i].grad for i in self.slots]


def compiled_grads(problems, backend):
    """One compiled graph for all problems: the sum of their losses, differentiated; their grads."""
    def grads_of_all():
        total = None
        for p in problems:
            p.reset()
            loss = p.loss()
            total = loss if total is None else total + loss.to(total.dtype)
        total.backward()
        return [p.grads() for p in problems]
    compiled = graphc.compile(grads_of_all, backend=backend)
    result = compiled()
    assert "grad" in compiled.ir("trace") and " = grad " not in compiled.ir()
    return [[g.numpy() for g in gs] for gs in result], compiled


def eager_grads(problem):
    problem.reset()
    problem.loss().backward()
    return [g.numpy().copy() for g in problem.grads()]


def numerical_grads(problem):
    """Central differences of the float64 eager forward (what graphc.autograd.gradcheck compares against)."""
    out = []
    arrays = [a.copy() for a in problem.arrays]

    def f():
        with graphc.no_grad():
            return float((problem.case.fn(*[graphc.tensor(a) for a in arrays]).numpy() * problem.seed).sum())
    for i in problem.slots:
        flat = arrays[i].reshape(-1)
        num = np.zeros(flat.size)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + FD_EPS
            plus = f()
            flat[j] = orig - FD_EPS
            minus = f()
            flat[j] = orig
            num[j] = (plus - minus) / (2 * FD_EPS)
        out.append(num.reshape(arrays[i].shape))
    return out


def check(case, got, want, what, rtol, atol):
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{case.name}: grad {k} has shape {g.shape}, expected {w.shape}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{case.name}: grad of input "
                                   f"{case.float_inputs()[k]} vs {what}")


# --- interpreter: every differentiable case ----------------------------------------------------------

@pytest.mark.parametrize("case", params(DIFFERENTIABLE))
def test_autodiff_matches_eager_autograd(case):
    problem = Problem(case, np.float32)
    (got,), compiled = compiled_grads([problem], "interpreter")
    for g, x in zip(got, [problem.arrays[i] for i in problem.slots]):
        assert g.dtype == x.dtype, f"{case.name}: grad dtype {g.dtype} for a {x.dtype} input"
    check(case, got, eager_grads(problem), "eager autograd", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", params(DIFFERENTIABLE))
def test_autodiff_matches_finite_differences(case):
    problem = Problem(case, np.float64)
    (got,), _ = compiled_grads([problem], "interpreter")
    check(case, got, numerical_grads(problem), "float64 central differences", rtol=FD_RTOL, atol=FD_ATOL)


def test_every_primitive_with_a_vjp_is_differentiated_somewhere():
    """The cases above reach every differentiable primitive of the op table through the autodiff pass."""
    from graphc.ops import OPS
    seen = set()
    for case in DIFFERENTIABLE:
        problem = Problem(case, np.float32)
        (_, ), compiled = compiled_grads([problem], "interpreter")
        seen |= {line.split(" = ")[1].split()[0] for line in compiled.ir("trace").splitlines() if " = " in line}
    differentiable = {name for name, op in OPS.items() if not op.nondiff and op.impl is not None}
    # Ops whose VJP the pass never needs to run through a traced case (sources and markers).
    sources = {"const", "full", "uniform", "one_hot", "stop_gradient"}
    missing = differentiable - seen - sources
    assert not missing, f"no differentiable case traces through: {sorted(missing)}"


# --- numba_cpu: a representative subset, one graph --------------------------------------------------------

NUMBA_SUBSET = [   # a numba compile costs ~0.2 s of CPU per kernel: one or two cases per kind of op
    "relu_bcast_input", "pow_tensor_exponent", "div_bcast",          # elementwise chains, broadcasting
    "sum_dims_keepdim", "amax_dim",                                    # reductions
    "matmul_batch_bcast", "linear_composite",                          # matmul
    "permute", "reshape_infer", "getitem_step",                        # movement, getitem
    "cnn_block", "F_conv2d_bias", "max_pool2d_overlap_pad",            # conv, pool
    "log_softmax", "F_cross_entropy",                                  # softmax, cross entropy
]


def test_numba_subset_cases_exist():
    missing = [n for n in NUMBA_SUBSET if n not in CASES_BY_NAME or not CASES_BY_NAME[n].grad]
    assert not missing, missing


@pytest.fixture(scope="module")
def numba_subset():
    cases = [CASES_BY_NAME[n] for n in NUMBA_SUBSET if n in CASES_BY_NAME]
    problems = [Problem(c, np.float32) for c in cases]
    got, compiled = compiled_grads(problems, "numba_cpu")
    return cases, problems, got, compiled


def test_numba_autodiff_subset_matches_the_interpreter_and_eager(numba_subset):
    cases, problems, got, compiled = numba_subset
    assert compiled.stats()["compiles"] == 1
    interp, _ = compiled_grads(problems, "interpreter")
    failures = []
    for case, problem, g_numba, g_interp in zip(cases, problems, got, interp):
        eager = eager_grads(problem)
        for what, want in (("interpreter", g_interp), ("eager autograd", eager)):
            try:
                check(case, g_numba, want, what, rtol=1e-4, atol=1e-5)
            except AssertionError as exc:
                failures.append(str(exc).splitlines()[0] + " " + " ".join(str(exc).split("\n")[1:4]))
    assert not failures, "\n".join(failures)


def test_numba_autodiff_subset_is_one_graph_of_fused_kernels(numba_subset):
    _, _, _, compiled = numba_subset
    stats = compiled.stats()
    assert stats["kernels"] >= 1
    source = compiled.source()
    assert "def driver(" in source and "@njit" in source
