"""Differential fuzzing: random programs run eagerly, compiled on the interpreter and on numba_cpu.

The programs (tests/reliability/fuzzgen.py) reach real-model territory: up to 50 parameter tensors,
every graphc.optim optimizer with its flags and param groups, layer sizes up to a few hundred, unit
dims everywhere, and batch-polymorphic programs called with several batch sizes (1 included) through
one compiled function. Every call must agree with eager; a failure shrinks to a small program whose
source the failure prints (see the FOUND tests below and tests/reliability/test_fuzz_regressions.py).

A value that differs only because it is ill-conditioned (graphc.verify finds that evaluating the graph
in float64 moves it as far: e.g. Adam's step on a gradient that is mostly rounding noise) is not a
failure; any other difference, and any exception, fails with the program's source.

    GRAPHC_FUZZ_EXAMPLES=2000 pytest tests/reliability/test_fuzz.py     # thousands of interpreter programs
    GRAPHC_FUZZ_NUMBA_EXAMPLES=300 ...                                   # numba programs
    python benchmarks/fuzz_campaign.py --help                            # long runs, in parallel processes

By default CI runs the same 200 interpreter programs (derandomized) and 100 numba programs (fixed
seeds, in two processes of 50: one per core) every time; with GRAPHC_FUZZ_EXAMPLES or
GRAPHC_FUZZ_NUMBA_EXAMPLES set, hypothesis draws new programs on each run.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import seed as hypothesis_seed
from numba.core.errors import NumbaWarning

import graphc
from tests.reliability.fuzzgen import BATCH, MAX_PARAMS, _OPTIMIZERS, check, programs

ROOT = pathlib.Path(__file__).resolve().parents[2]
INTERP_EXAMPLES = int(os.environ.get("GRAPHC_FUZZ_EXAMPLES", "200"))
EXPLORE_NUMBA = "GRAPHC_FUZZ_NUMBA_EXAMPLES" in os.environ
NUMBA_EXAMPLES = int(os.environ.get("GRAPHC_FUZZ_NUMBA_EXAMPLES")
                     or (max(100, INTERP_EXAMPLES // 20) if os.environ.get("GRAPHC_FUZZ_EXAMPLES") else 100))
# Programs for numba_cpu are kept cheap to compile (few ops, so few kernels, and one batch size: one numba
# compile each) so that CI runs 100 of them; the interpreter's programs, and an exploring run
# (GRAPHC_FUZZ_NUMBA_EXAMPLES set), draw several batch sizes through one dynamic=True compile. Symbolic
# sizes on numba_cpu have their own tests (tests/frontend/test_dynamic_shapes.py).
NUMBA_MAX_OPS = 2
NUMBA_BATCHES = (BATCH, 3, 1) if EXPLORE_NUMBA else (BATCH,)
EXPLORE = "GRAPHC_FUZZ_EXAMPLES" in os.environ or "GRAPHC_FUZZ_NUMBA_EXAMPLES" in os.environ

# CI runs the same programs every time (derandomized); a run with the variables set explores new ones.
FUZZ = settings(deadline=None, derandomize=not EXPLORE, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


@settings(FUZZ, max_examples=INTERP_EXAMPLES)
@given(programs())
def test_interpreter_matches_eager(prog):
    note(repr(prog))
    check(prog, ["interpreter"], note)


# CI's numba programs run in two processes, one per core of the 2-core CI machine: numba compiles
# in one thread, so one process leaves a core idle (100 programs: ~270 s in one process, most of it
# numba compiling 50-900-node graphs).  Shard 0 runs in the pytest process, shard 1 in a child
# (`python -m tests.reliability.test_fuzz --numba-shard 1`); each shard draws its own programs from
# a fixed seed, so CI runs the same 100 programs every time.  Seeds 3 and 4 draw programs a little
# larger than the generator's average (6.9 parameter tensors a program against 5.9 over 600 draws;
# seeds 0 and 1 draw 2.6), so the time CI measures is not a lucky light draw.
NUMBA_SHARDS = 2
NUMBA_SEED = 3
SHARD_TIMEOUT_S = 900


def run_numba_shard(shard, examples):
    """Draw `examples` programs (seed NUMBA_SEED + shard in CI, random when exploring); each must agree on
    numba_cpu with eager and the interpreter.  Raises hypothesis's shrunk failure with its source."""
    numba_settings = settings(FUZZ, max_examples=examples, derandomize=False, **({} if EXPLORE else {"database": None}))

    @numba_settings
    @given(programs(max_ops=NUMBA_MAX_OPS, batch_sizes=NUMBA_BATCHES))
    def numba_matches_eager_and_interpreter(prog):
        note(repr(prog))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check(prog, ["interpreter", "numba_cpu"], note)
        for w in caught:   # graphc's own warnings go on to the user; numba's are raw numba output: a finding
            if not issubclass(w.category, NumbaWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        raw = sorted({f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, NumbaWarning)})
        assert not raw, "numba warned while compiling generated code (a user would see it):\n" + "\n".join(raw)

    if not EXPLORE:
        numba_matches_eager_and_interpreter = hypothesis_seed(NUMBA_SEED + shard)(numba_matches_eager_and_interpreter)
    numba_matches_eager_and_interpreter()


def test_numba_matches_eager_and_interpreter():
    per_shard = -(-NUMBA_EXAMPLES // NUMBA_SHARDS)
    child = subprocess.Popen([sys.executable, "-m", "tests.reliability.test_fuzz", "--numba-shard", "1",
                              "--examples", str(NUMBA_EXAMPLES - per_shard)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_numba_shard(0, per_shard)
    except BaseException:   # shard 0's failure is the report: do not wait for the other shard
        child.kill()
        child.communicate()
        raise
    try:
        output, _ = child.communicate(timeout=SHARD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        output = child.communicate()[0] + f"\n(killed after {SHARD_TIMEOUT_S} s)"
    assert child.returncode == 0, "numba shard 1 (its own process) failed:\n" + output[-20000:]


NEEDLES = ("F.conv2d", "F.max_pool2d", " @ ", "F.linear", "keepdim=True", "F.cross_entropy", "F.mse_loss",
           "F.nll_loss", ".permute", ".transpose", ".reshape", "graphc.cat", "F.log_softmax", "graphc.amax",
           "graphc.where", "graphc.logsumexp", "[1:]", "[0]", "[..., :1]", "graphc.stack", ".expand(",
           "F.avg_pool2d", "F.adaptive_avg_pool2d", ".var(", "F.gelu", "> 0).float()", "opt.step()",
           "amsgrad=True", "nesterov=True", "maximize=True", "weight_decay=0.01", "dampening=0.1", "'params'",
           ".reshape(-1)")


def test_generator_covers_the_op_families():
    """The generator reaches every family, optimizer, flag and size the fuzzer promises (a silent strategy
    change is noticed)."""
    seen, optimizers, sizes = set(), set(), {"params": 0, "layer": 0, "dynamic": 0, "unit batch": 0}

    @settings(max_examples=1500, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def collect(prog):
        src = repr(prog)
        seen.update(n for n in NEEDLES if n in src)
        optimizers.update(name for name in _OPTIMIZERS if f"graphc.optim.{name}(" in src)
        sizes["params"] = max(sizes["params"], len(prog.params))
        sizes["layer"] = max(sizes["layer"], max((max(s, default=1) for _, s in prog.params), default=1))
        sizes["dynamic"] += prog.dynamic
        sizes["unit batch"] += 1 in prog.batches

    collect()
    assert seen == set(NEEDLES), f"never generated: {sorted(set(NEEDLES) - seen)}"
    assert optimizers == set(_OPTIMIZERS), f"never drew: {sorted(set(_OPTIMIZERS) - optimizers)}"
    assert sizes["params"] >= MAX_PARAMS - 5 and sizes["layer"] >= 300, sizes
    assert sizes["dynamic"] >= 100 and sizes["unit batch"] >= 100, sizes


def test_batch_polymorphic_programs_run_at_every_batch_size():
    """A drawn batch-polymorphic program's calls really change the batch dim (so the fuzzer tests that)."""
    @settings(max_examples=30, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(programs(max_ops=4, dynamic=True))
    def one(prog):
        first = [tuple(t.shape) for t in prog.inputs(0)]
        assert BATCH in first[0]
        for call in range(1, len(prog.batches)):
            assert [tuple(t.shape) for t in prog.inputs(call)][0] != first[0]
        check(prog, [], note)   # eager runs at every batch size: the program is legal

    one()


# Programs the fuzzer found that once went wrong, reduced to one op each: kept as regression tests.
FOUND = [
    # numba_cpu's loop-dim merging (emit.py ModuleEmitter._collapse) took a size-1 loop dim as both full and
    # broadcast, merged a broadcast dim with a full one and read the small operand out of bounds.
    ((2, 1, 4, 5), (2, 1, 1, 1)), ((2, 1, 6, 3), (1, 1, 6, 3)), ((2, 1, 6, 3), (1, 1, 6, 1)),
    ((3, 1, 4), (3, 1, 1)), ((2, 1, 3, 1, 4), (2, 1, 1, 1, 4)),
]


@pytest.mark.parametrize("x_shape, p_shape", FOUND)
def test_found_broadcast_with_unit_dims(x_shape, p_shape):
    rng = np.random.default_rng(0)
    x = graphc.tensor(rng.standard_normal(x_shape).astype(np.float32))
    p = graphc.nn.Parameter(graphc.tensor(rng.standard_normal(p_shape).astype(np.float32)))

    def f(x):
        return x * p + graphc.tanh(x + p).sum(dim=-1, keepdim=True)

    report = graphc.verify(f, x, backend="numba_cpu")
    assert report.ok, report


if __name__ == "__main__":   # one numba shard in its own process (test_numba_matches_eager_and_interpreter)
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numba-shard", type=int, required=True)
    parser.add_argument("--examples", type=int, required=True)
    cli = parser.parse_args()
    run_numba_shard(cli.numba_shard, cli.examples)
