"""Looking inside a compiled function: IR per stage, source locations, dumps, and the ways to call compile.

    step(x, y); step.ir()            -> the final IR (what the backend ran)
    step.ir("trace"), step.ir("autodiff"), step.ir("cse") ..., step.stages()
    with graphc.config.override(dump=dir): step(x, y)    -> dir/step.00.trace.ir ... dir/step.py
"""
import os
import re
import sys

import numpy as np
import pytest

import graphc
import graphc.nn as nn
from graphc.config import override
from graphc.errors import GraphcError
from graphc.ir import parse_graph, print_graph, verify
from graphc.passes.pipeline import default_passes

HERE = os.path.basename(__file__)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 7)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(7, 3)

    def forward(self, x):
        h = graphc.relu(self.fc1(x))  # <- fc1
        return self.fc2(self.drop(h))


def make_step(seed=0):
    graphc.manual_seed(seed)
    net = Tiny()
    opt = graphc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    crit = nn.CrossEntropyLoss()

    def train_step(x, y):
        opt.zero_grad()
        loss = crit(net(x), y)
        loss.backward()  # <- backward
        opt.step()
        return loss
    return net, opt, train_step


def batch(n=4):
    rng = np.random.default_rng(0)
    return graphc.tensor(rng.standard_normal((n, 5)).astype(np.float32)), graphc.tensor(rng.integers(0, 3, n))


def source_line(text, fn=None):
    """The line number of `text` in this file."""
    with open(__file__) as f:
        for i, line in enumerate(f, 1):
            if text in line:
                return i
    raise AssertionError(text)


@pytest.fixture(scope="module")
def compiled_step():
    net, opt, step = make_step()
    compiled = graphc.compile(step, backend="interpreter")
    compiled(*batch())
    return compiled


# --- stages ------------------------------------------------------------------------------------------

def test_stages_are_trace_then_every_pass_then_final(compiled_step):
    stages = compiled_step.stages()
    assert stages[0] == "trace" and stages[-1] == "final"
    names = [name for name, _ in default_passes()]
    middle = stages[1:-1]
    assert [s.split("#")[0] for s in middle] == names, middle     # repeated passes get "#2"
    assert "autodiff" in stages
    for stage in stages:
        text = compiled_step.ir(stage)
        assert text.startswith("graph train_step("), stage
        verify(parse_graph(text))


def test_ir_defaults_to_the_final_stage(compiled_step):
    assert compiled_step.ir() == compiled_step.ir("final") == compiled_step.ir(None)
    assert compiled_step.ir() == print_graph(compiled_step.graph())
    assert compiled_step.ir() == compiled_step.ir(compiled_step.stages()[-2]), "final = after the last pass"


def test_trace_has_grad_requests_and_autodiff_expands_them(compiled_step):
    grad_line = re.compile(r"= grad %")
    trace = compiled_step.ir("trace")
    assert len(grad_line.findall(trace)) == 4, "one grad request per parameter (fc1/fc2 weight and bias)"
    for stage in compiled_step.stages()[1:]:
        assert not grad_line.search(compiled_step.ir(stage)), f"grad node left after {stage}"
    autodiff = compiled_step.ir("autodiff")
    assert "relu" in autodiff and "matmul" in autodiff
    assert len(autodiff.splitlines()) > len(trace.splitlines()), "the backward subgraph was added"


def test_passes_shrink_the_graph(compiled_step):
    count = lambda text: sum(1 for ln in text.splitlines() if re.match(r"\s+%\S+: ", ln))  # noqa: E731
    assert count(compiled_step.ir("final")) < count(compiled_step.ir("autodiff"))


def test_ir_all_and_unknown_stage(compiled_step):
    everything = compiled_step.ir("all")
    for stage in compiled_step.stages():
        assert f"// IR after {stage}\n" in everything
    with pytest.raises(GraphcError, match="no stage named 'fuse'") as info:
        compiled_step.ir("fuse")
    assert "autodiff" in str(info.value), "the error lists the stages there are"


def test_nothing_to_inspect_before_the_first_call():
    compiled = graphc.compile(lambda x: x + 1, backend="interpreter")
    for call in (compiled.ir, compiled.stages, compiled.graph, compiled.source):
        with pytest.raises(GraphcError, match="nothing has been compiled yet"):
            call()


def test_ir_lines_carry_the_users_file_and_line(compiled_step):
    trace = compiled_step.ir("trace")
    fc1 = source_line("# <- fc1")
    backward = source_line("# <- backward")
    assert re.search(rf"= matmul .*# {re.escape(HERE)}:{fc1}\b", trace), trace
    assert re.search(rf"= relu .*# {re.escape(HERE)}:{fc1}\b", trace), trace
    assert re.search(rf"= grad .*# {re.escape(HERE)}:{backward}\b", trace), trace
    # The backward nodes the autodiff pass adds point at the forward line they differentiate.
    final = compiled_step.ir()
    relu_grad = [ln for ln in final.splitlines() if re.search(r"= (gt|where|mul) ", ln) and f"{HERE}:{fc1}" in ln]
    assert relu_grad, "no backward node of the relu carries its forward line"
    # Every node line names a source location.
    nodes = [ln for ln in final.splitlines() if re.match(r"\s+%\S+: ", ln)]
    assert nodes and all(re.search(r"# \S+\.py:\d+", ln) for ln in nodes), [ln for ln in nodes if "#" not in ln]


def test_final_ir_round_trips_through_the_parser(compiled_step):
    for stage in ("trace", "autodiff", "final"):
        text = compiled_step.ir(stage)
        graph = parse_graph(text)
        verify(graph)
        assert print_graph(graph) == text, stage


def test_inputs_are_named_after_module_paths_and_arguments(compiled_step):
    header = compiled_step.ir().splitlines()[0]
    for name in ("%x: f32[4,5] data", "%y: i64[4] data", "%fc1.weight: f32[7,5] param", "%lr: f32[] scalar",
                 "%fc1.weight.momentum_buffer: f32[7,5] state"):
        assert name in header, header
    footer = compiled_step.ir().splitlines()[-2]
    assert "updates %fc1.weight <- " in footer and "%fc1.weight.momentum_buffer <- " in footer, footer


# --- GRAPHC_DUMP -------------------------------------------------------------------------------------

def test_dump_writes_every_stage_and_the_generated_source(tmp_path):
    def scaled_relu(x, w):
        return graphc.relu(x @ w.T) * 2.0
    x, w = graphc.ones(2, 3), graphc.ones(4, 3)
    interp = graphc.compile(scaled_relu, backend="interpreter")
    with override(dump=str(tmp_path / "interp")):
        interp(x, w)
    files = sorted(os.listdir(tmp_path / "interp"))
    stages = interp.stages()[:-1]
    assert len(files) == len(stages), files
    for i, stage in enumerate(stages):
        name = f"scaled_relu.{i:02d}.{stage.split('#')[0]}.ir"
        assert name in files, (name, files)
        text = (tmp_path / "interp" / name).read_text()
        assert text.startswith("// IR after "), text[:80]
        assert text.split("\n", 1)[1].strip() == interp.ir(stage).strip()

    numba = graphc.compile(scaled_relu, backend="numba_cpu")
    with override(dump=str(tmp_path / "numba")):
        numba(x, w)
    files = os.listdir(tmp_path / "numba")
    assert any(f.endswith(".trace.ir") for f in files)
    py = [f for f in files if f.endswith(".py")]
    assert py == ["scaled_relu.py"], files
    assert (tmp_path / "numba" / "scaled_relu.py").read_text() == numba.source()


def test_no_dump_without_the_setting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with override(dump=None):
        graphc.compile(lambda x: x * 2, backend="interpreter")(graphc.ones(2))
    assert os.listdir(tmp_path) == []


# --- compiling a Module --------------------------------------------------------------------------------

def test_compile_a_module_for_inference_and_train_eval():
    graphc.manual_seed(0)
    net = Tiny()
    compiled = graphc.compile(net, backend="interpreter")
    x = batch()[0]
    net.eval()
    with graphc.no_grad():
        evaluated = compiled(x).numpy().copy()
        np.testing.assert_allclose(evaluated, net(x).numpy(), rtol=1e-6)
    assert "uniform" not in compiled.ir(), "eval mode: no dropout in the graph"
    net.train()
    with graphc.no_grad():
        out = compiled(x).numpy()
    assert "uniform" in compiled.ir(), "train mode: dropout draws a mask"
    assert not np.allclose(out, evaluated)
    assert compiled.stats()["compiles"] == 2
    # Attributes reach the module.
    assert compiled.fc1 is net.fc1 and compiled.training is True
    assert len(list(compiled.parameters())) == 4


def test_compiled_module_output_can_be_trained_from_eagerly():
    """A compiled forward's output is a plain tensor; the module's parameters are the same objects."""
    graphc.manual_seed(0)
    net = Tiny().eval()
    compiled = graphc.compile(net, backend="interpreter")
    x = batch()[0]
    with graphc.no_grad():
        a = compiled(x).numpy().copy()
        with graphc.no_grad():
            for p in net.parameters():
                p.mul_(0.5)
        b = compiled(x).numpy()
    assert not np.allclose(a, b), "the compiled forward reads the current parameter values"
    np.testing.assert_allclose(b, net(x).detach().numpy(), rtol=1e-6)


# --- the three ways to call graphc.compile ---------------------------------------------------------------

@graphc.compile
def bare(x):
    return x * 2 + 1


@graphc.compile(backend="interpreter")
def with_args(x):
    return x * 3


def plain(x):
    return x - 1


def test_bare_decorator():
    assert isinstance(bare, graphc.frontend.CompiledFunction)
    assert bare.__name__ == "bare" and bare.__wrapped__ is not None
    np.testing.assert_array_equal(bare(graphc.ones(2)).numpy(), [3.0, 3.0])
    assert bare.backend_name == sys.modules["graphc.frontend.compile"].DEFAULT_BACKEND


def test_decorator_with_arguments():
    assert with_args.backend_name == "interpreter"
    np.testing.assert_array_equal(with_args(graphc.ones(2)).numpy(), [3.0, 3.0])
    assert with_args.__name__ == "with_args"
    assert "mul" in with_args.ir()


def test_as_a_function():
    compiled = graphc.compile(plain, backend="interpreter")
    assert compiled is not plain and compiled.fn is plain
    np.testing.assert_array_equal(compiled(graphc.ones(2)).numpy(), [0.0, 0.0])
    assert plain(graphc.ones(1)).numpy().tolist() == [0.0], "the original function is untouched"


def test_unknown_backend_is_refused():
    compiled = graphc.compile(plain, backend="tpu")
    with pytest.raises(GraphcError, match="unknown backend 'tpu'"):
        compiled(graphc.ones(2))


def test_observers_see_each_compiled_call_before_and_after_it_runs(monkeypatch):
    """Entry.observers: what graphc.verify and detect_anomaly watch compiled calls through."""
    from graphc.frontend.compile import Entry
    w = nn.Parameter(graphc.ones(3))
    seen = []

    def observer(entry, inputs):
        seen.append(("before", entry.graph.name, [np.array(a) for a in inputs]))
        return lambda result: seen.append(("after", float(result[0].item()), float(w.detach().numpy()[0])))

    @graphc.compile(backend="interpreter")
    def step(x):
        loss = (x * w).sum()
        with graphc.no_grad():
            w.sub_(1.0)
        return loss

    monkeypatch.setattr(Entry, "observers", [observer])
    step(graphc.full((3,), 2.0))
    step(graphc.full((3,), 2.0))
    assert [s[0] for s in seen] == ["before", "after", "before", "after"]
    assert seen[0][1] == "step"
    np.testing.assert_array_equal(seen[2][2][0], [2.0, 2.0, 2.0])     # the data argument
    np.testing.assert_array_equal(seen[2][2][1], [0.0, 0.0, 0.0])     # w as the second call found it
    assert seen[1][1:] == (6.0, 0.0) and seen[3][1:] == (0.0, -1.0)    # after: result, and w written back
