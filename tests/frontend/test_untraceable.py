"""Under fullgraph=True, what cannot be traced says so: a TraceError naming the user's line and the way out, and no damage.

    @graphc.compile(fullgraph=True)          # fullgraph=False makes it a graph break (test_graph_breaks.py)
    def step(x, y): ...; total += loss.item()      # TraceError: .item(): cannot read a tensor's value ...
                                                    #   at test_untraceable.py:NN   total += loss.item()
                                                    #   help: return the tensor from the compiled function ...
After the error, parameters, grads and optimizer state are what they were, and eager mode still works.
"""
import inspect
import os

import numpy as np
import pytest

import graphc
import graphc.nn as nn
from graphc.errors import TraceError

BACKEND = "interpreter"
HERE = os.path.basename(__file__)


def line_of(fn, text):
    """The file line number of the first line of fn's source that contains `text`."""
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if text in line:
            return start + i
    raise AssertionError(f"{text!r} not in {fn.__name__}")


# Each function does one untraceable thing; the marker comment names the line the error must point at.

def uses_item(x):
    y = (x * 2).sum()
    return y.item()  # <- untraceable


def uses_numpy(x):
    y = x + 1
    return graphc.tensor(y.numpy() * 2)  # <- untraceable


def uses_float(x):
    y = x.sum()
    return x * float(y)  # <- untraceable


def uses_if(x):
    if x.sum() > 0:  # <- untraceable
        return x * 2
    return x


def uses_int(x):
    return x[: int(x.sum())]  # <- untraceable


def uses_tolist(x):
    return graphc.tensor(x.tolist())  # <- untraceable


CASES = {
    "item": (uses_item, ".item()", ["return the tensor", ".item() outside"]),
    "numpy": (uses_numpy, ".numpy()", ["return the tensor", "outside"]),
    "float": (uses_float, "float(tensor)", ["return the tensor", "outside the compiled function"]),
    "if": (uses_if, "bool(tensor)", ["graphc.where", "outside the compiled function"]),
    "int": (uses_int, "int(tensor)", ["outside the compiled function"]),
    "tolist": (uses_tolist, ".tolist()", ["outside the compiled function"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_error_names_the_user_line_and_the_way_out(name):
    fn, what, hints = CASES[name]
    compiled = graphc.compile(fn, backend=BACKEND, fullgraph=True)
    with pytest.raises(TraceError) as info:
        compiled(graphc.ones(3))
    err = info.value
    text = str(err)
    lineno = line_of(fn, "# <- untraceable")
    assert text.startswith(what + ":"), text
    assert "inside @graphc.compile" in text
    assert f"at {HERE}:{lineno}" in text, text                      # the file and line...
    source = inspect.getsourcelines(fn)[0][lineno - inspect.getsourcelines(fn)[1]].strip()
    assert source.split("  #")[0] in text, text                     # ...and the line's code
    assert "help: " in text
    for hint in hints:
        assert hint in text, text
    assert err.loc[0] == __file__ and err.loc[1] == lineno
    # Nothing half-compiled was kept: the next call traces again and fails the same way.
    with pytest.raises(TraceError):
        compiled(graphc.ones(3))
    assert compiled.stats()["compiles"] == 0


def test_the_same_functions_run_eagerly():
    x = graphc.tensor([1.0, 2.0, 3.0])
    assert uses_item(x) == 12.0
    np.testing.assert_array_equal(uses_numpy(x).numpy(), [4.0, 6.0, 8.0])
    np.testing.assert_array_equal(uses_if(x).numpy(), [2.0, 4.0, 6.0])


def test_value_dependent_branch_has_a_traceable_rewrite():
    """The hint's way out works: graphc.where compiles and matches the eager branch."""
    def branchless(x):
        return graphc.where(x.sum() > 0, x * 2, x)
    compiled = graphc.compile(branchless, backend=BACKEND)
    for values in ([1.0, 2.0], [-1.0, -2.0]):
        x = graphc.tensor(values)
        np.testing.assert_array_equal(compiled(x).numpy(), uses_if(x).numpy())
    assert compiled.stats()["compiles"] == 1


# --- the tracer's abort restores user-visible state ------------------------------------------------------

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.fc(x))


def make(optimizer):
    graphc.manual_seed(0)
    net = Net()
    if optimizer == "sgd":
        opt = graphc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = graphc.optim.Adam(net.parameters(), lr=0.01)
    return net, opt


def snapshot(net, opt):
    params = {k: (id(p), id(p._value), p.detach().numpy().copy()) for k, p in net.named_parameters()}
    grads = {k: (None if p.grad is None else (id(p.grad), p.grad.numpy().copy())) for k, p in net.named_parameters()}
    state = {id(p): {k: (id(v), v.numpy().copy()) if isinstance(v, graphc.Tensor) else v for k, v in s.items()}
             for p, s in opt.state.items()}
    rng = (id(graphc.default_generator.offset_tensor), int(graphc.default_generator.offset_tensor.numpy()))
    return params, grads, state, rng


def assert_same_snapshot(a, b):
    (pa, ga, sa, ra), (pb, gb, sb, rb) = a, b
    assert pa.keys() == pb.keys()
    for k in pa:
        assert pa[k][:2] == pb[k][:2], f"{k}: the parameter or its array was replaced"
        np.testing.assert_array_equal(pa[k][2], pb[k][2], err_msg=k)
    for k in ga:
        assert (ga[k] is None) == (gb[k] is None), f"{k}.grad: {ga[k]} vs {gb[k]}"
        if ga[k] is not None:
            assert ga[k][0] == gb[k][0], f"{k}.grad was replaced"
            np.testing.assert_array_equal(ga[k][1], gb[k][1], err_msg=k + ".grad")
    assert sa.keys() == sb.keys(), "optimizer state gained or lost parameters"
    for p in sa:
        assert sa[p].keys() == sb[p].keys(), f"optimizer state keys changed: {sa[p].keys()} -> {sb[p].keys()}"
        for k in sa[p]:
            if isinstance(sa[p][k], tuple):
                assert sa[p][k][0] == sb[p][k][0], f"state {k} was replaced"
                np.testing.assert_array_equal(sa[p][k][1], sb[p][k][1], err_msg=k)
            else:
                assert sa[p][k] == sb[p][k]
    assert ra == rb, "the dropout generator's offset moved"


def bad_step(net, opt, crit):
    def step(x, y):
        opt.zero_grad()
        loss = crit(net(x), y)
        loss.backward()
        opt.step()
        if loss > 0:  # <- untraceable, after the update was traced
            return loss
        return loss * 0
    return step


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "after_eager_steps"])
def test_abort_restores_params_grads_and_optimizer_state(optimizer, warm):
    net, opt = make(optimizer)
    crit = nn.CrossEntropyLoss()
    step = bad_step(net, opt, crit)
    # numpy data: graphc.randn would draw from the dropout stream that the reference run replays
    x = graphc.tensor(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    y = graphc.tensor([0, 1, 2, 1])
    if warm:   # grads and optimizer state exist before the failed trace
        for _ in range(2):
            opt.zero_grad()
            crit(net(x), y).backward()
            opt.step()
    before = snapshot(net, opt)
    compiled = graphc.compile(step, backend=BACKEND, fullgraph=True)
    with pytest.raises(TraceError, match="bool\\(tensor\\)"):
        compiled(x, y)
    assert_same_snapshot(snapshot(net, opt), before)
    # Eager mode works afterwards, and gives what an untouched copy gives.
    ref_net, ref_opt = make(optimizer)
    if warm:
        for _ in range(2):
            ref_opt.zero_grad()
            crit(ref_net(x), y).backward()
            ref_opt.step()
    graphc.manual_seed(5)
    loss = step(x, y)
    graphc.manual_seed(5)
    ref_loss = bad_step(ref_net, ref_opt, crit)(x, y)
    assert loss.item() == ref_loss.item()
    for (k, p), (_, q) in zip(net.named_parameters(), ref_net.named_parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=k)
        assert not p.grad._is_traced()
    assert graphc.is_grad_enabled()


def test_abort_releases_the_tracer():
    """After a failed trace, other compiled functions trace normally and eager ops compute values."""
    compiled = graphc.compile(uses_item, backend=BACKEND, fullgraph=True)
    with pytest.raises(TraceError):
        compiled(graphc.ones(2))
    from graphc import _context
    assert _context.tracer is None
    ok = graphc.compile(lambda x: x * 3, backend=BACKEND)
    np.testing.assert_array_equal(ok(graphc.ones(2)).numpy(), [3.0, 3.0])
    assert (graphc.ones(2) + 1).numpy().tolist() == [2.0, 2.0]
