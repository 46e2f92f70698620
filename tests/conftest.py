"""Test-session settings shared by every test directory.

* GRAPHC_CACHE_DIR: when the environment does not set it, the session compiles numba kernels into one
  temporary directory, removed at the end. Every test then shares the kernels the others compiled (a graph
  compiled twice costs one numba compile), and nothing lands in ~/.cache/graphc. Set GRAPHC_CACHE_DIR
  yourself to keep the kernels between runs (a warm second run of tests/backends takes seconds).
* `seed_steps`: a session fixture that compiles the seed MLP step on numba_cpu once (the graph the backend
  tests inspect) and hands out fresh, identically initialised copies of the seed models.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:        # `from benchmarks.seed_models import build`, `from tests.ops.cases import ...`
    sys.path.insert(0, _ROOT)

if not os.environ.get("GRAPHC_CACHE_DIR"):
    _SESSION_CACHE = tempfile.mkdtemp(prefix="graphc-test-cache-")
    os.environ["GRAPHC_CACHE_DIR"] = _SESSION_CACHE
    atexit.register(shutil.rmtree, _SESSION_CACHE, True)
    # graphc may already be imported (a plugin, an earlier conftest): its settings read the variable at import.
    if "graphc.config" in sys.modules:
        sys.modules["graphc.config"].settings.cache_dir = _SESSION_CACHE


@pytest.fixture(scope="session")
def cache_dir():
    """The session's kernel cache directory (GRAPHC_CACHE_DIR)."""
    from graphc.config import settings
    return settings.cache_dir


class SeedSteps:
    """Builds the seed models with the same initial weights every time; caches one compiled MLP step.

    A compiled graph is keyed by its generated source, so every test that builds the same model with the
    same batch shape and optimizer structure reuses the numba kernels compiled here (in memory and on disk).
    """

    MLP_BATCH = 4

    def __init__(self):
        self._states = {}
        self._mlp = None

    def build(self, model="mlp", optimizer="sgd", dropout=False, **opt_kwargs):
        """(net, criterion, optimizer, step) with deterministic weights; optimizer in {sgd, adam, adamw}.

        The first build of a model calls graphc.manual_seed(1234) (which replaces the generator's RNG
        tensors): build before compiling a function that uses dropout.
        """
        import graphc
        from benchmarks.seed_models import build
        net, criterion, opt, step = build(model, graphc, dropout=dropout)
        key = model
        if key not in self._states:
            graphc.manual_seed(1234)
            fresh = build(model, graphc, dropout=dropout)[0]
            self._states[key] = {k: v.detach().numpy().copy() for k, v in fresh.state_dict().items()}
        net.load_state_dict({k: graphc.tensor(v.copy()) for k, v in self._states[key].items()})
        opt = make_optimizer(optimizer, net.parameters(), **opt_kwargs)

        def step(x, y):
            opt.zero_grad()
            loss = criterion(net(x), y)
            loss.backward()
            opt.step()
            return loss

        return net, criterion, opt, step

    @staticmethod
    def batch(n, seed=0, hw=28, classes=10):
        """An MNIST-shaped batch: x f32[n,1,hw,hw], y i64[n]."""
        return mnist_like_batch(n, seed, hw, classes)

    def mlp_numba(self):
        """(net, opt, compiled step, x, y): the seed MLP + SGD(momentum=0.9), batch 4, compiled on numba_cpu."""
        if self._mlp is None:
            import graphc
            net, _, opt, step = self.build("mlp", "sgd", lr=0.05, momentum=0.9)
            compiled = graphc.compile(step, backend="numba_cpu")
            x, y = mnist_like_batch(self.MLP_BATCH, seed=7)
            compiled(x, y)
            self._mlp = (net, opt, compiled, x, y)
        return self._mlp


def make_optimizer(name, params, **kwargs):
    import graphc
    if name == "sgd":
        kwargs.setdefault("lr", 0.05)
        return graphc.optim.SGD(params, **kwargs)
    if name == "adam":
        kwargs.setdefault("lr", 1e-3)
        return graphc.optim.Adam(params, **kwargs)
    if name == "adamw":
        kwargs.setdefault("lr", 1e-3)
        return graphc.optim.AdamW(params, **kwargs)
    raise ValueError(name)


def mnist_like_batch(n, seed=0, hw=28, classes=10):
    """An MNIST-shaped batch (x: f32[n,1,hw,hw] normalised like MNIST, y: i64[n])."""
    import numpy as np

    import graphc
    rng = np.random.default_rng(seed)
    x = ((rng.random((n, 1, hw, hw)) - 0.1307) / 0.3081).astype(np.float32)
    y = rng.integers(0, classes, n).astype(np.int64)
    return graphc.tensor(x), graphc.tensor(y)


@pytest.fixture(scope="session")
def seed_steps():
    return SeedSteps()
