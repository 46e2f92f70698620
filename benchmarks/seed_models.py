"""The seed MLP and CNN of PyTorch's MNIST examples, for benchmark and test scripts.

    net, criterion, optimizer, step = build("mlp", graphc)   # step(x, y) -> loss: one training step

One definition serves graphc's CLI, these scripts and the tests: graphc.cli.models.
"""
from graphc.cli.models import build  # noqa: F401
