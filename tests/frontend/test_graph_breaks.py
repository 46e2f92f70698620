"""compile(fullgraph=False): untraceable code becomes a graph break, and the step still equals eager.

    @graphc.compile(fullgraph=False)
    def step(x, y): ...; print(loss.item()); loss.backward(); ...   # 2 graphs, 1 break
    graphc.explain(step, x, y).graph_break_count -> 1
"""
import inspect
import os

import numpy as np
import pytest

import graphc
import graphc.nn as nn
from graphc.cli.models import build
from graphc.errors import GraphcError, TraceError

HERE = os.path.basename(__file__)


def line_of(fn, text):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def batches(n, batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return [(graphc.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)),
             graphc.tensor(rng.integers(0, 10, batch))) for _ in range(n)]


def seed_step_that_prints():
    """The seed MLP step with `print(loss.item())` between the forward and the backward."""
    graphc.manual_seed(0)
    net, criterion, optimizer, _ = build("mlp", graphc, lr=0.05, momentum=0.9)
    printed = []

    def train_step(x, y):
        optimizer.zero_grad()
        loss = criterion(net(x), y)
        printed.append(loss.item())
        loss.backward()
        optimizer.step()
        return loss
    return net, train_step, printed


@pytest.mark.parametrize("backend", ["numba_cpu", "interpreter"])
def test_item_in_the_middle_of_the_seed_step_equals_eager(backend):
    net_e, step_e, printed_e = seed_step_that_prints()
    net_c, step_c, printed_c = seed_step_that_prints()
    compiled = graphc.compile(step_c, backend=backend, fullgraph=False)
    for x, y in batches(3):
        loss_e, loss_c = step_e(x, y), compiled(x, y)
        np.testing.assert_allclose(loss_c.item(), loss_e.item(), atol=1e-6, rtol=0)
        np.testing.assert_allclose(printed_c[-1], printed_e[-1], atol=1e-6, rtol=0)
    for (name, p_e), (_, p_c) in zip(net_e.named_parameters(), net_c.named_parameters()):
        np.testing.assert_allclose(p_c.detach().numpy(), p_e.detach().numpy(), atol=1e-6, rtol=0, err_msg=name)
    stats = compiled.stats()
    assert stats["graph_breaks"] == 1
    assert stats["compiles"] == 2, stats          # two segments, compiled on the first call...
    assert stats["cache_hits"] == 4, stats        # ...and reused by the next two
    lineno = line_of(seed_step_that_prints, "printed.append(loss.item())")
    assert stats["break_reasons"][0].startswith(f"at {HERE}:{lineno}   printed.append(loss.item())")

    _, step_x, _ = seed_step_that_prints()
    x, y = batches(1)[0]
    explained = graphc.explain(step_x, x, y, backend=backend)
    assert explained.graph_break_count == 1 and explained.graph_count == 2
    assert "graphs: 2, graph breaks: 1" in explained
    assert f"1. at {HERE}:{lineno}   printed.append(loss.item())  -- .item() reads a tensor's value" in explained


def test_a_value_read_after_the_update_is_a_plain_input_of_the_next_graph():
    """print(loss.item()) at the end of the step: no backward crosses the break, nothing is computed twice."""
    graphc.manual_seed(0)
    net, criterion, optimizer, step = build("mlp", graphc, lr=0.05)
    seen = []

    def step_then_print(x, y):
        loss = step(x, y)
        seen.append(loss.item())
        return loss * 2
    compiled = graphc.compile(step_then_print, backend="interpreter")
    x, y = batches(1)[0]
    out = compiled(x, y)
    assert compiled.stats()["graph_breaks"] == 1
    np.testing.assert_allclose(out.item(), 2 * seen[0], rtol=1e-6)
    assert "matmul" not in compiled.ir("trace")        # the second graph only doubles the loss


def test_explain_of_a_whole_graph_reports_no_break():
    _, _, _, step = build("mlp", graphc)
    explained = graphc.explain(step, *batches(1)[0], backend="interpreter")
    assert explained.graph_break_count == 0 and "graphs: 1, graph breaks: 0" in explained


class DropNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(6, 16), nn.Dropout(0.5), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.drop(graphc.relu(self.fc1(x))))


def dropout_step(break_where):
    """Adam over a net with dropout; a .item() read at `break_where`; gradients must cross the break."""
    graphc.manual_seed(1)
    net = DropNet()
    opt = graphc.optim.Adam(net.parameters(), lr=0.01)
    crit = nn.CrossEntropyLoss()
    seen = []

    def step(x, y):
        opt.zero_grad()
        h = net.fc1(x)
        if break_where == "hidden":
            seen.append(h.abs().max().item())
        loss = crit(net.fc2(net.drop(graphc.relu(h))), y)
        if break_where == "loss":
            seen.append(loss.item())
        loss.backward()
        opt.step()
        if break_where == "after_step":
            seen.append(net.fc1.weight.sum().item())   # reads the parameter the graph just updated
        return loss
    return net, opt, step, seen


@pytest.mark.parametrize("break_where", ["hidden", "loss", "after_step"])
def test_state_rng_and_gradients_cross_a_break(break_where):
    rng = np.random.default_rng(2)
    data = [(graphc.tensor(rng.standard_normal((5, 6)).astype(np.float32)), graphc.tensor(rng.integers(0, 3, 5)))
            for _ in range(3)]
    # One run after the other: both draw their dropout masks from the one generator, from the same seed.
    net_e, opt_e, step_e, seen_e = dropout_step(break_where)
    losses_e = [step_e(x, y).item() for x, y in data]
    net_c, opt_c, step_c, seen_c = dropout_step(break_where)
    compiled = graphc.compile(step_c, backend="interpreter", fullgraph=False)
    losses_c = [compiled(x, y).item() for x, y in data]
    np.testing.assert_allclose(losses_c, losses_e, atol=1e-6)
    np.testing.assert_allclose(seen_c, seen_e, atol=1e-6)
    for (name, p_e), (_, p_c) in zip(net_e.named_parameters(), net_c.named_parameters()):
        np.testing.assert_allclose(p_c.detach().numpy(), p_e.detach().numpy(), atol=1e-6, err_msg=name)
        np.testing.assert_allclose(p_c.grad.numpy(), p_e.grad.numpy(), atol=1e-6, err_msg=name + ".grad")
        for key, v in opt_e.state[p_e].items():
            if isinstance(v, graphc.Tensor):
                np.testing.assert_allclose(opt_c.state[p_c][key].numpy(), v.numpy(), atol=1e-6, err_msg=key)
    assert int(graphc.default_generator.offset_tensor.numpy()) > 0
    assert compiled.stats()["graph_breaks"] == 1


# --- each kind of untraceable read, compiled == eager ----------------------------------------------------

def uses_numpy(x):
    y = x * 2 + 1
    scale = np.abs(y.numpy()).max()
    return graphc.tensor(y.numpy() / scale) + y.tolist()[0][0]


def uses_if(x):
    s = x.sum()
    if s > 0:
        return x * 2, s
    return x - 1, s


def uses_mask(x):
    m = x > 0.5
    return x[m] * 3, (x * 2).sum()


@pytest.mark.parametrize("fn", [uses_numpy, uses_if, uses_mask], ids=lambda f: f.__name__)
def test_untraceable_reads_equal_eager(fn):
    compiled = graphc.compile(fn, backend="interpreter", fullgraph=False)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3)] + [-np.ones((3, 4), np.float32)]
    for arr in inputs:   # the branch taken and the mask's count change between calls
        got, want = compiled(graphc.tensor(arr)), fn(graphc.tensor(arr))
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6)
    assert compiled.stats()["graph_breaks"] >= 1


def test_a_branch_on_a_tensor_is_decided_again_on_every_call():
    compiled = graphc.compile(uses_if, backend="interpreter", fullgraph=False)
    pos, neg = graphc.ones(2, 2), -graphc.ones(2, 2)
    for x in (pos, neg, pos, neg):
        np.testing.assert_array_equal(compiled(x)[0].numpy(), uses_if(x)[0].numpy())
    assert compiled.stats()["compiles"] == 3          # the sum once, then each branch once
    assert compiled.stats()["cache_hits"] == 5        # 4 calls x 2 segments, less those 3


def test_new_python_numbers_after_a_break_recompile_up_to_the_limit_then_run_eagerly():
    def scaled(x):
        return x * float(x.sum())   # the number is a constant of the next graph
    compiled = graphc.compile(scaled, backend="interpreter")
    with graphc.config.override(recompile_limit=3):
        with pytest.warns(UserWarning, match="compiled 3 new graphs after its first call"):
            for k in range(1, 6):
                x = graphc.full((2,), float(k))
                np.testing.assert_array_equal(compiled(x).numpy(), scaled(x).numpy())
    assert len(compiled.stats()["recompiles"]) == 3
    assert compiled.stats()["compiles"] == 5   # the first call's two graphs, three more; then eager


def test_fullgraph_true_keeps_the_error_and_names_the_way_out():
    compiled = graphc.compile(uses_if, backend="interpreter", fullgraph=True)
    with pytest.raises(TraceError, match="fullgraph=False") as info:
        compiled(graphc.ones(2))
    assert info.value.loc[1] == line_of(uses_if, "if s > 0")


def test_mask_read_under_fullgraph_names_the_way_out():
    with pytest.raises(TraceError, match="fullgraph=False"):
        graphc.compile(uses_mask, backend="interpreter", fullgraph=True)(graphc.ones(2))


# --- no argument accepted and then ignored --------------------------------------------------------------

def test_mode_has_a_meaning_or_an_error():
    assert graphc.compile(uses_if, mode="default").mode_settings == {}
    assert graphc.compile(uses_if, mode="reduce-overhead").mode_settings == {}
    with pytest.raises(GraphcError, match="unknown mode 'fast'"):
        graphc.compile(uses_if, mode="fast")


def test_max_autotune_compiles_parallel_loops():
    """mode="max-autotune" takes prange down to 131,072 elements for this function's kernels (the default
    starts at 1M): a 512 x 512 loop is parallel under it only."""
    def scale(x):
        return x * 2 + 1
    x = graphc.ones(512, 512)
    fast = graphc.compile(scale, mode="max-autotune")
    plain = graphc.compile(scale)
    np.testing.assert_array_equal(fast(x).numpy(), plain(x).numpy())
    assert "in prange(" in fast.source() and "in prange(" not in plain.source()


def test_options_are_the_backends_own_or_an_error():
    with pytest.raises(GraphcError, match="has no option 'parallel'") as info:
        graphc.compile(uses_if, backend="numba_cpu", options={"parallel": True})
    assert "fusion" in str(info.value) and "keep_values" in str(info.value)
    with pytest.raises(GraphcError, match="backend 'interpreter' has no option 'fusion'"):
        graphc.compile(uses_if, backend="interpreter", options={"fusion": False})
    assert graphc.compile(uses_if, backend="numba_cpu", options={"fusion": False}).options == {"fusion": False}


class Gate(nn.Module):
    """A module whose forward branches on its hidden values."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        big, bounded = bool(h.mean() > 0), bool(h.abs().max() < 10)
        if big and bounded:
            h = h * 2
        return self.b(graphc.relu(h))


def test_a_compiled_module_breaks_too():
    graphc.manual_seed(0)
    net = Gate()
    compiled = graphc.compile(net, backend="interpreter")
    rng = np.random.default_rng(4)
    for _ in range(4):
        x = graphc.tensor(rng.standard_normal((3, 4)).astype(np.float32))
        np.testing.assert_array_equal(compiled(x).numpy(), net(x).detach().numpy())
    assert compiled.stats()["graph_breaks"] == 2



def test_segments_are_found_again_by_structure():
    from graphc.frontend.breaks import structure_key
    from graphc.ir.parser import parse_graph
    text = "graph g(%x: f32[2] data) {\n  %0: f32[2] = mul %x, %x\n  return %0\n}"
    assert structure_key(parse_graph(text)) == structure_key(parse_graph(text.replace("graph g", "graph h")))
    assert structure_key(parse_graph(text)) != structure_key(parse_graph(text.replace("mul", "add")))
    assert structure_key(parse_graph(text)) != structure_key(parse_graph(text.replace("data", "state")))


def test_backward_through_a_value_from_before_the_update_is_a_clear_error():
    graphc.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = graphc.optim.SGD(net.parameters(), lr=0.1)

    def twice(x):
        out = net(x).sum()
        out.backward()
        opt.step()                 # the first graph updates the weights out was computed from
        print(out.item())
        (out * 2).backward()
        return out
    with pytest.raises(graphc.GradError, match="updated in place"):
        graphc.compile(twice, backend="interpreter")(graphc.ones(4, 3))
