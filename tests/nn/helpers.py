"""Shared helpers for the graphc.nn tests: numpy/torch conversion and the two seed models."""
import numpy as np

import graphc
import graphc.nn as nn
import graphc.nn.functional as F


def arr(t):
    """A graphc tensor's values as an ndarray (detached)."""
    return t.detach().numpy()


def leaf(a, dtype=np.float32):
    """A graphc leaf tensor that requires grad, from array-like a."""
    return graphc.tensor(np.asarray(a, dtype=dtype), requires_grad=True)


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = graphc.flatten(x, 1)
        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = graphc.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def torch_models(torch):
    """The same two seed models written with torch."""
    tnn, TF = torch.nn, torch.nn.functional

    class TMLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = tnn.Linear(784, 128)
            self.fc2 = tnn.Linear(128, 10)

        def forward(self, x):
            x = torch.flatten(x, 1)
            return TF.log_softmax(self.fc2(TF.relu(self.fc1(x))), dim=1)

    class TCNN(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 32, 3, 1)
            self.conv2 = tnn.Conv2d(32, 64, 3, 1)
            self.dropout1 = tnn.Dropout2d(0.25)
            self.dropout2 = tnn.Dropout2d(0.5)
            self.fc1 = tnn.Linear(9216, 128)
            self.fc2 = tnn.Linear(128, 10)

        def forward(self, x):
            x = TF.relu(self.conv1(x))
            x = TF.relu(self.conv2(x))
            x = TF.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = TF.relu(self.fc1(x))
            x = self.dropout2(x)
            return TF.log_softmax(self.fc2(x), dim=1)

    return TMLP, TCNN


def copy_to_torch(model, tmodel, torch):
    """Load a graphc model's weights into a torch model with the same state_dict keys."""
    tmodel.load_state_dict({k: torch.tensor(arr(v)) for k, v in model.state_dict().items()})
    return tmodel
