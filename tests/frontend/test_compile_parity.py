"""Compiled == eager for the seed training steps: same initial weights, same batches, five steps.

    eager:    net, opt from one state_dict; loss_i = step(x_i, y_i)
    compiled: a copy of both;              loss_i = graphc.compile(step)(x_i, y_i)
    -> losses and every parameter agree within 1e-5 (relative to the tensor's largest entry)

The interpreter backend runs every optimizer on both seed models; numba_cpu runs the MLP with
SGD+momentum and Adam and the CNN with SGD+momentum (the graphs numba compiles take seconds each).
With dropout on, both modes draw the same masks from the counter-based generator (graphc.random).
Known graphc bugs are strict xfails whose reason says what is wrong; a fix turns them into XPASS.
"""
import copy

import numpy as np
import pytest

import graphc

STEPS = 5
RTOL = 1e-5

OPTIMIZERS = {
    "sgd": ("sgd", dict(lr=0.05)),
    "sgd_momentum": ("sgd", dict(lr=0.05, momentum=0.9)),
    "nesterov": ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "weight_decay": ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    "adam": ("adam", dict(lr=1e-3)),
    "adamw": ("adamw", dict(lr=1e-3, weight_decay=1e-2)),
}
BATCH = {"mlp": 8, "cnn": 2}

def test_adam_hyper_parameter_arithmetic_is_the_same_in_both_modes():
    """One Adam step on one weight, bit for bit: eager and compiled must round 1 - beta1 etc. the same way."""
    results = []
    for compiled in (False, True):
        w = graphc.nn.Parameter(graphc.tensor(np.array([0.5, -1.5, 2.0, 1e-3], dtype=np.float32)))
        opt = graphc.optim.Adam([w], lr=1e-3, betas=(0.9, 0.999))

        def step():
            opt.zero_grad()
            (w * w * 1e-7).sum().backward()
            opt.step()
            return opt.state[w]["exp_avg"] * 1.0

        fn = graphc.compile(step, backend="interpreter") if compiled else step
        exp_avg = [fn().numpy().copy() for _ in range(3)]
        results.append((exp_avg, w.detach().numpy().copy()))
    for a, b in zip(results[1][0], results[0][0]):
        np.testing.assert_array_equal(a, b, err_msg="exp_avg")
    np.testing.assert_array_equal(results[1][1], results[0][1], err_msg="weight")


def mnist_like_batch(n, seed):
    """x: f32[n,1,28,28] normalised like MNIST, y: i64[n] (the same helper as tests/conftest.py)."""
    rng = np.random.default_rng(seed)
    x = ((rng.random((n, 1, 28, 28)) - 0.1307) / 0.3081).astype(np.float32)
    return graphc.tensor(x), graphc.tensor(rng.integers(0, 10, n).astype(np.int64))


def batches(model, n=STEPS):
    return [mnist_like_batch(BATCH[model], seed=100 + i) for i in range(n)]


def train(seed_steps, model, optimizer, backend=None, dropout=False, data=None, rng_seed=None):
    """Five steps from the shared initial weights: (losses, {name: param array}, optimizer state arrays)."""
    kind, kwargs = OPTIMIZERS[optimizer]
    net, _, opt, step = seed_steps.build(model, kind, dropout=dropout, **kwargs)
    fn = graphc.compile(step, backend=backend) if backend else step
    if rng_seed is not None:
        graphc.manual_seed(rng_seed)
    losses = [fn(x, y).item() for x, y in (data or batches(model))]
    params = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    state = [{k: v.numpy().copy() for k, v in s.items()} for s in opt.state.values()]
    return losses, params, state, fn


def assert_close(a, b, what, rtol=RTOL):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    scale = max(np.abs(b).max(initial=0.0), 1e-12)
    err = np.abs(a - b).max(initial=0.0)
    assert err <= rtol * scale + 1e-9, f"{what}: max abs difference {err:.3g} (largest entry {scale:.3g})"


def assert_same_training(eager, compiled, rtol=RTOL):
    (l_e, p_e, s_e, _), (l_c, p_c, s_c, _) = eager, compiled
    for i, (a, b) in enumerate(zip(l_c, l_e)):
        assert abs(a - b) <= rtol * abs(b), f"loss of step {i}: compiled {a!r}, eager {b!r}"
    assert p_c.keys() == p_e.keys()
    for k in p_e:
        assert_close(p_c[k], p_e[k], f"parameter {k}", rtol)
    assert len(s_c) == len(s_e), "the optimizers hold state for a different number of parameters"
    for i, (a, b) in enumerate(zip(s_c, s_e)):
        assert a.keys() == b.keys()
        for k in b:
            assert_close(a[k], b[k], f"optimizer state {k} of parameter {i}", rtol)


def opt_params(models, names, marks=None):
    out = []
    for model in models:
        for name in names:
            m = list((marks or {}).get((model, name), []))
            out.append(pytest.param(model, name, id=f"{model}-{name}", marks=m))
    return out


# --- interpreter: every optimizer, both seed models ---------------------------------------------------

HYPER_F32_CASES = {}


@pytest.mark.parametrize("model,optimizer", opt_params(["mlp", "cnn"], list(OPTIMIZERS), HYPER_F32_CASES))
def test_interpreter_matches_eager(seed_steps, model, optimizer):
    eager = train(seed_steps, model, optimizer)
    compiled = train(seed_steps, model, optimizer, backend="interpreter")
    assert compiled[3].stats()["compiles"] == 1, "five identical steps compiled more than once"
    assert_same_training(eager, compiled)


def test_the_comparison_is_not_vacuous(seed_steps):
    """The parameters do move in five steps, and each batch gives its own loss."""
    losses, params, _, _ = train(seed_steps, "mlp", "sgd_momentum", backend="interpreter")
    initial = {k: v.detach().numpy() for k, v in seed_steps.build("mlp")[0].state_dict().items()}
    assert all(np.abs(params[k] - initial[k]).max() > 1e-4 for k in params)
    assert len(set(losses)) == STEPS


def test_dropout_masks_match_eager(seed_steps):
    """The CNN with dropout on: eager and compiled draw the same masks from the counter-based generator."""
    data = batches("cnn", 3)
    eager = train(seed_steps, "cnn", "sgd_momentum", dropout=True, data=data, rng_seed=11)
    offset_eager = int(graphc.default_generator.offset_tensor.numpy())
    compiled = train(seed_steps, "cnn", "sgd_momentum", backend="interpreter", dropout=True, data=data, rng_seed=11)
    offset_compiled = int(graphc.default_generator.offset_tensor.numpy())
    assert offset_eager > 0
    assert offset_compiled == offset_eager, "the compiled step advanced the generator's offset differently"
    assert_same_training(eager, compiled)
    # And the masks matter: another seed gives other losses.
    other = train(seed_steps, "cnn", "sgd_momentum", backend="interpreter", dropout=True, data=data, rng_seed=12)
    assert other[0] != compiled[0]


def dropout_fn(x):
    return graphc.nn.functional.dropout(x, 0.5, training=True)


def test_dropout_of_a_compiled_function_matches_eager_call_by_call():
    x = graphc.ones(4, 6)
    compiled = graphc.compile(dropout_fn, backend="interpreter")
    graphc.manual_seed(3)
    eager = [dropout_fn(x).numpy() for _ in range(3)]
    graphc.manual_seed(3)
    got = [compiled(x).numpy() for _ in range(3)]
    for a, b in zip(got, eager):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(eager[0], eager[1]), "each call draws a new mask"


def test_manual_seed_after_compiling_reseeds_the_compiled_function():
    x = graphc.ones(4, 6)
    compiled = graphc.compile(dropout_fn, backend="interpreter")
    graphc.manual_seed(3)
    first = compiled(x).numpy()
    graphc.manual_seed(3)
    again = compiled(x).numpy()
    np.testing.assert_array_equal(again, first)
    assert int(graphc.default_generator.offset_tensor.numpy()) == 24


def test_optimizer_load_state_dict_reaches_a_compiled_step(seed_steps):
    data = batches("mlp", 3)
    net, _, opt, step = seed_steps.build("mlp", "sgd", lr=0.05, momentum=0.9)
    compiled = graphc.compile(step, backend="interpreter")
    compiled(*data[0])
    net_sd = {k: v.clone() for k, v in net.state_dict().items()}
    opt_sd = opt.state_dict()
    opt_sd = {"state": {i: {k: v.clone() for k, v in s.items()} for i, s in opt_sd["state"].items()},
              "param_groups": copy.deepcopy(opt_sd["param_groups"])}
    ref_net, _, ref_opt, ref_step = seed_steps.build("mlp", "sgd", lr=0.05, momentum=0.9)
    ref_net.load_state_dict(net_sd)
    ref_opt.load_state_dict(opt_sd)
    ref_step(*data[1])
    compiled(*data[2])                       # move away from the checkpoint...
    net.load_state_dict(net_sd)              # ...and back
    opt.load_state_dict(opt_sd)
    compiled(*data[1])
    for k, v in ref_net.state_dict().items():
        assert_close(net.state_dict()[k].numpy(), v.numpy(), f"parameter {k}")


# --- numba_cpu ---------------------------------------------------------------------------------------
# numba sums float32 in other orders than numpy (BLAS blocking, fastmath reassociation), so values agree to
# ~1e-7, not bit for bit; two settings keep that from being amplified into the 1e-5 budget:
#  * Adam with eps=1e-3: with eps=1e-8, an entry whose gradient is pure rounding noise (a sum that cancels to
#    ~1e-9) gets a full lr-sized step whose sign depends on the rounding: 1e-4 relative differences in fc1;
#  * the CNN at lr=0.01: at lr=0.05 a conv2 pre-activation reaches 1e-8 by step 3 and the ReLU / max-pool
#    choice there flips with the rounding (checked: min |h2| = 1.07e-8), a discrete change of the gradient.
# Neither changes the graph: lr and eps are runtime inputs.
NUMBA_CASES = {
    "mlp-sgd_momentum": ("mlp", 4, "sgd", dict(lr=0.05, momentum=0.9)),   # the session fixture's graph
    "mlp-adam": ("mlp", 4, "adam", dict(lr=1e-3, eps=1e-3)),
    "cnn-sgd_momentum": ("cnn", 2, "sgd", dict(lr=0.01, momentum=0.9)),
}


@pytest.mark.parametrize("case", list(NUMBA_CASES))
def test_numba_cpu_matches_eager(seed_steps, case):
    model, batch, kind, kwargs = NUMBA_CASES[case]
    data = [mnist_like_batch(batch, seed=200 + i) for i in range(STEPS)]
    runs = []
    for backend in (None, "numba_cpu"):
        net, _, opt, step = seed_steps.build(model, kind, **kwargs)
        fn = graphc.compile(step, backend=backend) if backend else step
        losses = [fn(x, y).item() for x, y in data]
        runs.append((losses, {k: v.detach().numpy().copy() for k, v in net.state_dict().items()},
                     [{k: v.numpy().copy() for k, v in s.items()} for s in opt.state.values()], fn))
    assert runs[1][3].stats()["compiles"] == 1
    assert_same_training(runs[0], runs[1])
