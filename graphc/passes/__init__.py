"""Graph -> Graph passes and the manager that runs them in a visible order.

    from graphc.passes import PassManager, cse, dce, fold_constants, simplify
"""
from .cse import cse  # noqa: F401
from .dce import dce  # noqa: F401
from .fold import fold_constants  # noqa: F401
from .manager import PassManager  # noqa: F401
from .simplify import simplify  # noqa: F401
