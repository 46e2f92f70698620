"""Prototype: cross-entropy (log-softmax + NLL, mean) as one row-wise kernel each way.

    src = cross_entropy_source(64, 10, "float32")
    # defines ce_forward(logits, labels, lse, loss) and ce_backward(logits, labels, lse, g, grad)

Today the fused graph spends 6-8 kernels on the loss (max, sub+exp, sum, log, one_hot+mul, sum, and
their gradients), because the fusion pass never merges a reduction with the broadcasts that read its
result.  A row-wise kernel does: each row is small (10 classes) and stays in registers, so the row's
max, sum of exp, log and the picked label need one pass over the row and no intermediate arrays.

Not wired in yet (the fusion pass and the emitter are being reorganised).  The intended hook is a
"rowwise" kernel kind that fusion forms when a reduction over the last axis is followed only by
elementwise ops that broadcast its result back over the same rows; the emitter then writes a loop
over rows with the reduction(s) as inner loops, like these two functions.  Forward keeps the per-row
log-sum-exp (one float per row) for the backward kernel, so backward is one pass too:
    grad[i, j] = g / N * (exp(x[i, j] - lse[i]) - (j == label[i])).
"""
from __future__ import annotations

TEMPLATE = '''
@njit(cache=True, error_model="numpy", fastmath={{"reassoc", "contract"}})
def ce_forward(logits, labels, lse, loss):
    """loss[()] = mean over rows of logsumexp(row) - row[label]; lse[i] = logsumexp(row i)."""
    total = 0.0
    for i in range({rows}):
        m = logits[i, 0]
        for j in range(1, {cols}):
            if logits[i, j] > m:
                m = logits[i, j]
        s = 0.0
        for j in range({cols}):
            s += math.exp(logits[i, j] - m)
        label = labels[i]
        if label < 0 or label >= {cols}:
            raise ValueError("ce_forward: cross_entropy: a target class is out of range for {cols} classes")
        lse[i] = m + math.log(s)
        total += lse[i] - logits[i, label]
    loss[()] = {dtype}(total / {rows})


@njit(cache=True, error_model="numpy", fastmath={{"reassoc", "contract"}})
def ce_backward(logits, labels, lse, g, grad):
    """grad = d(mean cross-entropy)/d(logits) * g, from the forward's per-row log-sum-exp."""
    scale = g[()] / {rows}
    for i in range({rows}):
        label = labels[i]
        for j in range({cols}):
            p = math.exp(logits[i, j] - lse[i])
            grad[i, j] = {dtype}(scale * (p - (1.0 if j == label else 0.0)))
'''


def cross_entropy_source(rows, cols, dtype="float32"):
    """Source of the forward and backward row-wise kernels for logits [rows, cols] of `dtype`."""
    return "import math\n\nimport numpy as np\nfrom numba import njit\n" + TEMPLATE.format(
        rows=int(rows), cols=int(cols), dtype=f"np.{dtype}")
