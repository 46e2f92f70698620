"""The pass pipeline, top to bottom: what happens to a traced graph before a backend sees it.

    trace -> autodiff -> simplify -> fold -> cse -> dce -> (backend passes: fuse, plan memory)
"""
from __future__ import annotations


def default_passes():
    """[(name, pass)] run on every traced graph, in order."""
    from .autodiff import autodiff
    from .cse import cse
    from .dce import dce
    from .fold import fold_constants
    from .simplify import simplify
    return [
        ("autodiff", autodiff),      # grad requests -> backward subgraph (VJP rules of the op table)
        ("simplify", simplify),      # x*1, reshape(reshape), stop_gradient (after autodiff: no longer needed)
        ("fold", fold_constants),    # ops on constants -> constants
        ("simplify", simplify),      # identities that folding exposed, e.g. x * (0.5 + 0.5)
        ("cse", cse),                # one node per distinct computation
        ("dce", dce),                # drop what no output or update needs
    ]
