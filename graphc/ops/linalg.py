"""Matrix multiplication, with numpy's rules for 1-D and batched operands.

    matmul(a[64,784], b[784,128]) -> [64,128]

1-D operands are lifted to matrices by graphc.matmul (a composite), so the primitive and its
VJP see only 2-D or batched operands.
"""
from __future__ import annotations

from ..errors import ShapeError
from ..threadpool import matmul as _matmul
from .registry import MATMUL, broadcast_shapes, defop, fmt_shape, require_float, same_dtype


def _infer_matmul(a, b):
    sa, sb = tuple(a.shape), tuple(b.shape)
    if len(sa) < 2 or len(sb) < 2:
        raise ShapeError("matmul", f"the matmul primitive takes operands of 2 or more dims, got "
                                   f"{fmt_shape(sa)} @ {fmt_shape(sb)}",
                         hint="graphc.matmul / @ lift 1-D operands for you")
    dtype = same_dtype("matmul", a, b)
    require_float("matmul", a, b)
    if sa[-1] != sb[-2]:
        hint = (f"the left operand's last dim ({sa[-1]}) must equal the right operand's second-to-last "
                f"({sb[-2]}); check the operand order, and transpose (.T) an operand stored the other way round")
        if sb[-1] == sa[-1]:
            hint = "the right operand looks transposed; did you mean b.T (or b.transpose(-2, -1))?"
        elif sa[-2] == sb[-2]:
            hint = "the left operand looks transposed; did you mean a.T (or a.transpose(-2, -1))?"
        raise ShapeError("matmul", f"inner dimensions differ: {fmt_shape(sa)} @ {fmt_shape(sb)} "
                                   f"({sa[-1]} != {sb[-2]})", hint=hint)
    batch = broadcast_shapes("matmul", sa[:-2], sb[:-2])
    return tuple(batch) + (sa[-2], sb[-1]), dtype


@defop("matmul", kind=MATMUL, infer=_infer_matmul)
class Matmul:
    """Matrix product a @ b of 2-D or batched operands.   matmul([[1., 2.]], [[3.], [4.]]) -> [[11.]]"""
    impl = staticmethod(_matmul)   # np.matmul; small products on one BLAS thread (see graphc.threadpool)

    def vjp(g, ans, a, b, needs=(True, True)):
        # Batch dims that were broadcast are summed back by the autograd driver.
        return (g @ b.transpose(-1, -2) if needs[0] else None,
                a.transpose(-1, -2) @ g if needs[1] else None)
