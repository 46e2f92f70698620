"""graphc.utils, as torch.utils: data loading lives in graphc.utils.data.

    import graphc as torch; torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
"""
from . import data  # noqa: F401  (so `graphc.utils.data` resolves after `import graphc`)
