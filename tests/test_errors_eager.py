"""Eager error messages: what failed, the shapes/dtypes involved, the user's line, and a hint.

    graphc.ShapeError: matmul: inner dimensions differ: (64, 784) @ (128, 10) (784 != 128)
      at test_errors_eager.py:41   x @ w
      help: ...

Each test pins the important text; `raises` also checks that the message points at the line in
this file that made the bad call (graphc records the first stack frame outside the package).
"""
import os

import numpy as np
import pytest

import graphc
from graphc.errors import DTypeError, GradError, GraphcError, ShapeError
from graphc.functional import apply_op


class raises:
    """pytest.raises plus: the message names this file and the failing line, with its source text."""

    def __init__(self, error, *fragments):
        self.error, self.fragments = error, fragments

    def __enter__(self):
        self.ctx = pytest.raises(self.error)
        self.info = self.ctx.__enter__()
        return self.info

    def __exit__(self, *exc):
        suppressed = self.ctx.__exit__(*exc)
        err = self.info.value
        text = str(err)
        for fragment in self.fragments:
            assert fragment in text, f"{fragment!r} not in the message:\n{text}"
        assert isinstance(err, GraphcError)
        line = self.info.traceback[0].lineno + 1          # pytest counts from 0
        source = self.info.traceback[0].statement.lines[0].strip()
        assert err.loc is not None and os.path.basename(err.loc[0]) == "test_errors_eager.py", err.loc
        assert f"at test_errors_eager.py:{line}   {source}" in text, text
        return suppressed


def x_(*shape, dtype=np.float32):
    return graphc.zeros(*shape, dtype=dtype)


# --- matmul ---------------------------------------------------------------------------------------

def test_matmul_inner_dimension_mismatch_names_both_shapes():
    x, w = x_(64, 784), x_(128, 10)
    with raises(ShapeError, "matmul: inner dimensions differ: (64, 784) @ (128, 10)", "784 != 128", "help:"):
        x @ w


def test_matmul_inner_dimension_mismatch_hints_at_transposing():
    x, w = x_(64, 784), x_(128, 10)
    with raises(ShapeError, "(64, 784) @ (128, 10)") as info:
        x @ w
    hint = str(info.value).split("help:")[1].lower()
    assert "transpose" in hint or ".t" in hint


def test_matmul_transposed_weight_hint():
    x, w = x_(64, 784), x_(128, 784)
    with raises(ShapeError, "(64, 784) @ (128, 784)", "help: the right operand looks transposed; did you mean b.T"):
        graphc.matmul(x, w)


def test_matmul_of_a_0d_operand():
    with raises(ShapeError, "matmul: both operands need at least one dimension, got () @ (3,)", "help: use *"):
        x_() @ x_(3)


def test_matmul_dtype_mismatch():
    with raises(DTypeError, "matmul", "float32 @ float64", "help:"):
        x_(2, 3) @ x_(3, 2, dtype=np.float64)


def test_matmul_batch_dims_do_not_broadcast():
    with raises(ShapeError, "matmul", "(2,) and (3,) cannot be broadcast"):
        x_(2, 3, 4) @ x_(3, 4, 5)


# --- conv2d / pool --------------------------------------------------------------------------------

def test_conv2d_channel_mismatch():
    x, w = x_(2, 3, 5, 5), x_(4, 2, 3, 3)
    with raises(ShapeError, "conv2d: input has 3 channels but the weight expects 2",
                "input (2, 3, 5, 5), weight (4, 2, 3, 3)", "help: in_channels"):
        apply_op("conv2d", x, w, stride=(1, 1), padding=(0, 0))


def test_conv2d_input_without_batch_dim():
    with raises(ShapeError, "conv2d: expected input [N,C,H,W]", "(3, 5, 5)", "help: add a batch dimension"):
        apply_op("conv2d", x_(3, 5, 5), x_(4, 3, 3, 3), stride=(1, 1), padding=(0, 0))


def test_conv2d_kernel_larger_than_input():
    with raises(ShapeError, "conv2d: kernel (5, 5) is larger than the padded input (3, 3)", "help:"):
        apply_op("conv2d", x_(1, 1, 3, 3), x_(1, 1, 5, 5), stride=(1, 1), padding=(0, 0))


def test_conv2d_int_input():
    with raises(DTypeError, "conv2d", "int64", "float32", "help:"):
        apply_op("conv2d", x_(1, 1, 3, 3, dtype=np.int64), x_(1, 1, 2, 2), stride=(1, 1), padding=(0, 0))


def test_max_pool_input_without_batch_dim():
    with raises(ShapeError, "max_pool2d: expected input [N,C,H,W], got (3, 4)", "help:"):
        apply_op("maxpool2d_argmax", x_(3, 4), kernel=(2, 2), stride=(2, 2), padding=(0, 0))


# --- broadcasting, shapes ---------------------------------------------------------------------------

def test_add_broadcast_mismatch():
    a, b = x_(3, 4), x_(5)
    with raises(ShapeError, "add: shapes (3, 4) and (5,) cannot be broadcast together", "dimension -1: 4 vs 5",
                "help: broadcasting matches trailing dimensions"):
        a + b


def test_where_broadcast_mismatch_names_the_op():
    with raises(ShapeError, "where: shapes (3,) and (2,) and () cannot be broadcast together"):
        graphc.where(x_(3) > 0, x_(2), 0.0)


def test_where_condition_must_be_bool():
    with raises(DTypeError, "where: condition must be a bool tensor, got float32", "help: build the condition"):
        graphc.where(x_(3), x_(3), x_(3))


def test_reshape_to_a_wrong_element_count():
    with raises(ShapeError, "reshape: cannot reshape a tensor of shape (3, 4) (12 elements) to (5, 2)",
                "help: the number of elements must stay the same"):
        x_(3, 4).reshape(5, 2)


def test_reshape_with_minus_one_that_does_not_divide():
    with raises(ShapeError, "reshape: shape (5, -1) is invalid for a tensor of shape (3, 4) (12 elements)", "help:"):
        x_(3, 4).view(5, -1)


def test_expand_to_an_incompatible_shape():
    with raises(ShapeError, "broadcast_to", "(3,)", "(2, 4)"):
        x_(3).expand(2, 4)


def test_permute_that_is_not_a_permutation():
    with raises(ShapeError, "permute: (0, 0) is not a permutation of the 2 dims", "help: name every dimension"):
        x_(3, 4).permute(0, 0)


def test_cat_shape_mismatch():
    with raises(ShapeError, "cat: tensors must have the same shape except in the concatenated dim; "
                            "got (2, 3), (2, 4)"):
        graphc.cat([x_(2, 3), x_(2, 4)], 0)


# --- dtypes -----------------------------------------------------------------------------------------

def test_one_hot_of_float_labels():
    labels = graphc.tensor([0.0, 2.0])
    with raises(DTypeError, "one_hot: class labels must be an integer tensor, got float32", "help:", ".long()"):
        apply_op("one_hot", labels, num_classes=3, dtype=np.dtype(np.float32))


def test_one_hot_label_out_of_range():
    with raises(ShapeError, "one_hot: class index 5 is out of range for 3 classes", "help: targets must lie in 0 .. 2"):
        apply_op("one_hot", graphc.tensor([0, 5]), num_classes=3, dtype=np.dtype(np.float32))


def test_cross_entropy_like_use_with_float_targets():
    logits, targets = x_(4, 3), graphc.tensor([0.0, 1.0, 2.0, 1.0])
    with raises(DTypeError, "one_hot", "float32", ".long()"):
        -(logits.log_softmax(1) * apply_op("one_hot", targets, num_classes=3, dtype=logits.dtype)).sum(1).mean()


def test_div_primitive_on_ints():
    with raises(DTypeError, "div: expected a floating-point tensor, got int64", "help: convert with .float()"):
        apply_op("div", graphc.tensor([1, 2]), graphc.tensor([3, 4]))


def test_uniform_seed_must_be_an_int():
    with raises(DTypeError, "uniform: seed must be a 0-d integer tensor, got float32"):
        apply_op("uniform", x_(), graphc.tensor(0), shape=(2,))


# --- indexing, dims ----------------------------------------------------------------------------------

def test_index_out_of_range():
    x = x_(3, 4)
    with raises(ShapeError, "getitem: index 5 is out of bounds for dimension 0 with size 3"):
        x[5]


def test_index_out_of_range_shows_shape_and_hint():
    x = x_(3, 4)
    with raises(ShapeError, "(3, 4)", "help:"):
        x[1, -5]


def test_too_many_indices():
    with raises(ShapeError, "getitem: too many indices for a tensor of shape (3,)",
                "help: the tensor has 1 dimensions"):
        x_(3)[0, 1]


def test_unsupported_index_type():
    with raises(ShapeError, "getitem: unsupported index 1.5 of type float", "help:"):
        x_(3)[1.5]


def test_sum_dim_out_of_range():
    x = x_(3, 4)
    with raises(ShapeError, "sum: dim 2 is out of range for a tensor with 2 dimensions",
                "help: valid dims are -2 .. 1"):
        x.sum(2)


def test_softmax_dim_out_of_range_names_the_reduction():
    with raises(ShapeError, "dim -3 is out of range for a tensor with 2 dimensions"):
        x_(3, 4).softmax(-3)


WRAPS_DIM = ("graphc bug: the composite takes dim % ndim without a range check, so an out-of-range dim silently "
             "picks another dim (PyTorch raises)")


def test_cat_dim_out_of_range():
    with raises(ShapeError, "cat: dim 1 is out of range", "help:"):
        graphc.cat([x_(2), x_(2)], 1)


def test_unsqueeze_dim_out_of_range():
    with raises(ShapeError, "unsqueeze: dim 3 is out of range", "help:"):
        x_(2).unsqueeze(3)


def test_permute_dim_out_of_range():
    with raises(ShapeError, "permute: dim 2 is out of range", "help:"):
        x_(2, 3).permute(0, 2)


# --- gather / scatter / index_select / sort / einsum ------------------------------------------------

def idx(*rows):
    return graphc.tensor(list(rows))


def test_gather_dim_out_of_range_names_the_shape():
    with raises(ShapeError, "gather: dim 2 is out of range for a tensor with 2 dimensions (shape (3, 4))",
                "help: valid dims are -2 .. 1"):
        x_(3, 4).gather(2, idx([0], [1], [2]))


def test_gather_index_out_of_range():
    with raises(ShapeError, "gather: index 4 is out of bounds for dimension 1 with size 4 (a tensor of shape (2, 4))",
                "help: valid indices are 0 .. 3"):
        x_(2, 4).gather(1, idx([0, 4], [1, 2]))


def test_gather_negative_index_is_out_of_range_as_in_torch():
    with raises(ShapeError, "gather: index -1 is out of bounds for dimension 0 with size 3", "help:"):
        graphc.gather(x_(3), 0, idx(-1))


def test_gather_wrong_index_dtype():
    with raises(DTypeError, "gather: expected an index of dtype int64, got float32", "help: convert the index with .long()"):
        x_(2, 3).gather(1, x_(2, 1))


def test_gather_index_rank_and_size():
    with raises(ShapeError, "gather: index (2,) and input (2, 3) must have the same number of dimensions", "help:"):
        x_(2, 3).gather(1, idx(0, 1))
    with raises(ShapeError, "gather: index (3, 1) is larger than input (2, 3) in dimension 0 (3 > 2)", "help:"):
        x_(2, 3).gather(1, idx([0], [1], [2]))


def test_scatter_src_dtype_and_size():
    with raises(DTypeError, "scatter: src has dtype float64 but the tensor has float32", "help:"):
        x_(2, 3).scatter(1, idx([0], [1]), x_(2, 1, dtype=np.float64))
    with raises(ShapeError, "scatter_add: index (2, 2) is larger than src (2, 1) in dimension 1 (2 > 1)", "help:"):
        x_(2, 3).scatter_add(1, idx([0, 1], [1, 2]), x_(2, 1))


def test_scatter_add_index_out_of_range():
    with raises(ShapeError, "scatter_add: index 3 is out of bounds for dimension 1 with size 3", "help:"):
        x_(2, 3).scatter_add(1, idx([0], [3]), x_(2, 1))


def test_index_select_errors():
    with raises(ShapeError, "index_select: index 7 is out of bounds for dimension 0 with size 4 (a tensor of shape (4, 2))",
                "help: valid indices are 0 .. 3"):
        x_(4, 2).index_select(0, idx(1, 7))
    with raises(DTypeError, "index_select: expected an index of dtype int64 or int32, got float32", "help:"):
        x_(4, 2).index_select(0, x_(2))
    with raises(ShapeError, "index_select: dim -3 is out of range for a tensor with 2 dimensions (shape (4, 2))", "help:"):
        x_(4, 2).index_select(-3, idx(0))


def test_sort_topk_cumsum_dims_and_k():
    with raises(ShapeError, "sort: dim 1 is out of range for a tensor with 1 dimensions (shape (5,))", "help:"):
        x_(5).sort(1)
    with raises(ShapeError, "topk: k (6) is out of range for dimension 0 of size 5 (a tensor of shape (5,))",
                "help: k must lie in 0 .. 5"):
        x_(5).topk(6)
    with raises(ShapeError, "cumsum: dim 2 is out of range for a tensor with 2 dimensions (shape (2, 3))", "help:"):
        graphc.cumsum(x_(2, 3), 2)


def test_split_and_chunk_errors():
    with raises(ShapeError, "split: split sizes [2, 2] do not add up to the size 5 of dim 0 (a tensor of shape (5,))",
                "help:"):
        x_(5).split([2, 2])
    with raises(ShapeError, "chunk: chunks must be positive, got 0", "help:"):
        x_(5).chunk(0)


def test_einsum_shape_mismatch_names_subscript_equation_and_shapes():
    with raises(ShapeError, "einsum: subscript 'j' has size 4 and 3 in 'ij,jk->ik' with operands (3, 4), (3, 2)",
                "help: dimensions that share a subscript must have equal sizes"):
        graphc.einsum("ij,jk->ik", x_(3, 4), x_(3, 2))


def test_einsum_bad_equations():
    with raises(ShapeError, "einsum: the equation 'ij,jk' has 2 operand(s) but 1 tensor(s) were given", "help:"):
        graphc.einsum("ij,jk", x_(3, 4))
    with raises(ShapeError, "einsum: the subscripts 'ijk' name 3 dimension(s) but the operand has shape (3, 4)", "help:"):
        graphc.einsum("ijk->i", x_(3, 4))
    with raises(ShapeError, "einsum: the output subscripts 'iz' of 'ij->iz' must be distinct and appear in the inputs",
                "help:"):
        graphc.einsum("ij->iz", x_(3, 4))
    with raises(DTypeError, "einsum: operands have different dtypes: float32, float64", "help:"):
        graphc.einsum("i,i", x_(3), x_(3, dtype=np.float64))


def test_bmm_and_mm_take_only_their_ranks():
    with raises(ShapeError, "bmm: expected two 3-D tensors with the same batch size, got (2, 3, 4) @ (3, 4, 5)",
                "help: use matmul"):
        graphc.bmm(x_(2, 3, 4), x_(3, 4, 5))
    with raises(ShapeError, "mm: expected two matrices, got (2, 3, 4) @ (4, 5)", "help: use matmul"):
        x_(2, 3, 4).mm(x_(4, 5))


def test_masked_fill_needs_a_bool_mask():
    with raises(DTypeError, "masked_fill: expected a bool mask, got float32", "help:"):
        x_(2, 3).masked_fill(x_(2, 3), 1.0)


def test_tril_and_repeat_ranks():
    with raises(ShapeError, "tril: expected a tensor of 2 or more dimensions, got shape (3,)", "help:"):
        x_(3).tril()
    with raises(ShapeError, "repeat: 1 repeat counts for a tensor of 2 dimensions (shape (2, 3))", "help:"):
        x_(2, 3).repeat(2)


# --- backward --------------------------------------------------------------------------------------

def test_backward_on_a_non_scalar_without_gradient():
    y = graphc.ones(2, 3, requires_grad=True) * 2.0
    with raises(GradError, "backward: grad can be implicitly created only for scalar outputs, got a tensor of shape "
                           "(2, 3)", "help: reduce it first (loss.sum() or loss.mean())"):
        y.backward()


def test_backward_without_requires_grad():
    with raises(GradError, "backward: the tensor does not require grad", "help:"):
        x_(3).sum().backward()


# --- error types are the built-in ones PyTorch users catch ----------------------------------------------

def test_error_types_subclass_builtins():
    assert issubclass(ShapeError, ValueError) and issubclass(DTypeError, TypeError)
    assert issubclass(GradError, RuntimeError)


def test_message_layout():
    """First line `op: message`, then `  at file:line   source`, last `  help: hint`."""
    with raises(ShapeError) as info:
        x_(3, 4) + x_(5)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("add: ")
    assert lines[1].startswith("  at test_errors_eager.py:")
    assert lines[-1].startswith("  help: ")
