"""nn.utils (clipping, flat vectors), nn.init (trunc_normal_, orthogonal_), and the new layers compiled == eager.

    clip_grad_norm_ inside @graphc.compile: no .item(), grads scaled like torch's
    BatchNorm2d train and eval, compiled over 3 steps: losses, weights and running stats == eager
"""
import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F

from graphc.cli.models import make_step

from .helpers import arr, rand

torch = pytest.importorskip("torch")


def _two_params(lib):
    rng = np.random.default_rng(0)
    ps = [lib.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True),
          lib.tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)]
    ((ps[0] * ps[0] * 3).sum() + (ps[1] ** 3).sum()).backward()
    return ps


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.5, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    g, t = _two_params(graphc), _two_params(torch)
    total = nn.utils.clip_grad_norm_(g, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(t, max_norm, norm_type)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-5)
    for a, b in zip(g, t):
        np.testing.assert_allclose(arr(a.grad), b.grad.numpy(), rtol=1e-5)


def test_clip_grad_value_and_vectors_match_torch():
    g, t = _two_params(graphc), _two_params(torch)
    nn.utils.clip_grad_value_(g, 0.7)
    torch.nn.utils.clip_grad_value_(t, 0.7)
    for a, b in zip(g, t):
        np.testing.assert_allclose(arr(a.grad), b.grad.numpy())
    vec = nn.utils.parameters_to_vector(g)
    np.testing.assert_allclose(arr(vec), torch.nn.utils.parameters_to_vector(t).detach().numpy())
    nn.utils.vector_to_parameters(vec * 2.0, g)
    np.testing.assert_allclose(arr(g[1]), 2 * t[1].detach().numpy())


def test_clip_grad_norm_inside_a_compiled_step_equals_eager():
    results = []
    for compiled in (False, True):
        graphc.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        opt = graphc.optim.SGD(net.parameters(), lr=0.5)
        x, y = graphc.tensor(rand(6, 4) * 10), graphc.tensor(np.array([0, 1, 0, 1, 1, 0]))

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(net.parameters(), 0.1)
            opt.step()
            return loss, norm

        fn = graphc.compile(step, backend="interpreter") if compiled else step
        out = [(loss.item(), norm.item()) for loss, norm in (fn() for _ in range(3))]
        results.append((out, {k: arr(v).copy() for k, v in net.state_dict().items()}))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    assert results[0][0][0][1] > 0.1, "the test must actually clip"
    for k in results[0][1]:
        np.testing.assert_allclose(results[1][1][k], results[0][1][k], rtol=1e-5, atol=1e-7)


def test_trunc_normal_and_orthogonal():
    graphc.manual_seed(0)
    w = graphc.empty(200, 300)
    nn.init.trunc_normal_(w, mean=0.5, std=1.0, a=-1.0, b=1.5)
    v = arr(w)
    from scipy.stats import truncnorm
    expected = truncnorm(-1.5, 1.0, loc=0.5, scale=1.0)
    assert v.min() >= -1.0 and v.max() <= 1.5
    assert abs(v.mean() - expected.mean()) < 0.01 and abs(v.std() - expected.std()) < 0.01
    for shape in ((6, 4), (4, 6), (3, 2, 2)):
        q = graphc.empty(*shape)
        nn.init.orthogonal_(q, gain=2.0)
        m = arr(q).reshape(shape[0], -1)
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        np.testing.assert_allclose(small, 4.0 * np.eye(small.shape[0]), atol=1e-5)


# --- compiled == eager for the new layers ---------------------------------------------------------

class Tiny(nn.Module):
    """One model that exercises every new layer in a training step."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.lstm = nn.LSTM(8, 6, num_layers=2, batch_first=True)
        self.gru = nn.GRU(6, 6, batch_first=True)
        self.conv = nn.Conv1d(6, 4, 3, padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.head = nn.Linear(2 * 2 * 10, 3)
        self.act = nn.GELU()

    def forward(self, ids):
        x = self.emb(ids)                                       # [N, 5, 8]
        a, _ = self.attn(x, x, x)
        x = self.norm(x + F.scaled_dot_product_attention(a, a, a, is_causal=True))
        x, _ = self.lstm(self.act(x))
        x, _ = self.gru(F.silu(x))                              # [N, 5, 6]
        x = self.gn(self.conv(x.transpose(1, 2)))               # [N, 4, 5]
        x = self.up(F.interpolate(x.unsqueeze(-1), size=(5, 1)))   # [N, 2, 10, 2]
        x = F.softplus(F.pad(x, (0, 0, 0, 0), mode="constant")).flatten(1)
        return self.head(x)


def _train_tiny(backend, steps=3):
    graphc.manual_seed(0)
    net = Tiny()
    opt = graphc.optim.Adam(net.parameters(), lr=1e-2)
    ids = graphc.tensor(np.random.default_rng(0).integers(0, 10, (4, 5)))
    y = graphc.tensor(np.array([0, 1, 2, 1]))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(ids), y, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss

    fn = graphc.compile(step, backend=backend) if backend else step
    losses = [fn().item() for _ in range(steps)]
    return losses, {k: arr(v).copy() for k, v in net.state_dict().items()}


def test_new_layers_compiled_equal_eager_interpreter():
    eager, compiled = _train_tiny(None), _train_tiny("interpreter")
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5)
    for k in eager[1]:
        # atol: the key part of in_proj_bias has an exactly-zero true gradient (softmax ignores a shift),
        # so Adam turns rounding noise of 1e-9 into steps of 1e-6 there
        np.testing.assert_allclose(compiled[1][k], eager[1][k], rtol=1e-4, atol=5e-5, err_msg=k)


def _train_bn(backend, train_mode, steps=3):
    graphc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3),
                        nn.BatchNorm1d(3))
    net.train(train_mode)
    if not train_mode:   # eval uses running stats: make them non-trivial
        for m in net:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(0.1)
                m.running_var.fill_(2.0)
    opt = graphc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(1)
    data = [(graphc.tensor(rng.standard_normal((5, 1, 6, 6)).astype(np.float32)),
             graphc.tensor(rng.integers(0, 3, 5))) for _ in range(steps)]

    step = make_step(net, nn.CrossEntropyLoss(), opt)
    fn = graphc.compile(step, backend=backend) if backend else step
    losses = [fn(x, y).item() for x, y in data]
    return losses, {k: arr(v).copy() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("train_mode", [True, False])
def test_batchnorm_compiled_equals_eager_with_running_stats(train_mode):
    eager, compiled = _train_bn(None, train_mode), _train_bn("interpreter", train_mode)
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5)
    assert any("running_mean" in k for k in eager[1])
    for k in eager[1]:
        np.testing.assert_allclose(compiled[1][k], eager[1][k], rtol=1e-5, atol=1e-7, err_msg=k)
    moved = eager[1]["1.running_mean"]
    assert (np.abs(moved - (0.0 if train_mode else 0.1)) > 1e-6).any() == train_mode, \
        "train mode moves the running mean, eval mode leaves it"
    assert eager[1]["1.num_batches_tracked"] == (3 if train_mode else 0)
