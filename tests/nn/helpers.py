"""Shared helpers for the graphc.nn tests: numpy/torch conversion and the two seed models."""
import numpy as np

import graphc
from graphc.cli.models import build


def arr(t):
    """A graphc tensor's values as an ndarray (detached)."""
    return t.detach().numpy()


def leaf(a, dtype=np.float32):
    """A graphc leaf tensor that requires grad, from array-like a."""
    return graphc.tensor(np.asarray(a, dtype=dtype), requires_grad=True)


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def MLP():
    """The seed MLP (graphc.cli.models, the one definition the CLI, benchmarks and tests share)."""
    return build("mlp", graphc)[0]


def CNN():
    """The seed CNN, dropout on."""
    return build("cnn", graphc)[0]


def torch_models(torch):
    """The same two seed models built with torch: (make_mlp, make_cnn)."""
    return (lambda: build("mlp", torch)[0]), (lambda: build("cnn", torch)[0])


def copy_to_torch(model, tmodel, torch):
    """Load a graphc model's weights into a torch model with the same state_dict keys."""
    tmodel.load_state_dict({k: torch.tensor(arr(v)) for k, v in model.state_dict().items()})
    return tmodel
