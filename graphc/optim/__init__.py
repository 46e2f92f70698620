"""graphc.optim: SGD, Adam, AdamW, Adadelta, RMSprop, Adagrad and learning-rate schedulers, with PyTorch's rules.

    optimizer = graphc.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
"""
from . import lr_scheduler  # noqa: F401
from .adam import Adadelta, Adam, AdamW  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .rmsprop import Adagrad, RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401
