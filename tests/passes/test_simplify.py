"""simplify: one golden case per rewrite (and per rewrite that must NOT fire), plus a property test."""
import pytest
from hypothesis import HealthCheck, given, settings

from graphc.errors import IRError
from graphc.ir import parse_graph, print_graph, verify
from graphc.passes import simplify
from graphc.passes.simplify import REWRITES, rewrite
from ir.evaluate import assert_same_results, check_pass, copy, random_graphs


def test_docstring_example():
    check_pass(simplify, """
        graph f(%x: f32[2,3] data) {
          %0: f32[] = full {dtype=f32, shape=(), value=1.0}
          %1: f32[2,3] = mul %x, %0
          %2: f32[6] = reshape %1 {shape=(6,)}
          %3: f32[2,3] = reshape %2 {shape=(2, 3)}
          %4: f32[3,2] = permute %3 {perm=(1, 0)}
          return %4
        }""", """
        graph f(%x: f32[2,3] data) {
          %0: f32[3,2] = permute %x {perm=(1, 0)}
          return %0
        }""")


def test_add_sub_mul_div_by_identity_on_either_side():
    check_pass(simplify, """
        graph f(%x: f32[2,3] data) {
          %0: f32[3] = full {dtype=f32, shape=(3,), value=0.0}
          %1: f32[2,3] = add %0, %x
          %2: f32[2,3] = sub %1, %0
          %3: f32[2,3] = const {value=array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], f32)}
          %4: f32[2,3] = mul %3, %2
          %5: f32[] = full {dtype=f32, shape=(), value=1.0}
          %6: f32[2,3] = div %4, %5
          %7: f32[2,3] = add %6, %0
          return %7
        }""", """
        graph f(%x: f32[2,3] data) {
          return %x
        }""")


def test_an_identity_literal_that_is_bigger_becomes_a_broadcast():
    check_pass(simplify, """
        graph f(%x: f32[3] data) {
          %0: f32[2,3] = full {dtype=f32, shape=(2, 3), value=0.0}
          %1: f32[2,3] = add %x, %0          # model.py:5
          return %1
        }""", """
        graph f(%x: f32[3] data) {
          %0: f32[2,3] = broadcast_to %x {shape=(2, 3)}               # model.py:5
          return %0
        }""")


def test_what_does_not_simplify():
    # x * 0 for floats (nan * 0 is nan), 0 - x, x / 2, x + 1, casts that change the dtype, an int
    # sum (it widens to i64), sums over real axes, where with two different branches.
    text = """
        graph f(%x: f32[2] data, %i: i32[2] data, %c: bool[2] data) {
          %0: f32[] = full {dtype=f32, shape=(), value=0.0}
          %1: f32[2] = mul %x, %0
          %2: f32[2] = sub %0, %x
          %3: f32[] = full {dtype=f32, shape=(), value=2.0}
          %4: f32[2] = div %x, %3
          %5: f32[2] = const {value=array([1.0, 0.0], f32)}
          %6: f32[2] = mul %x, %5
          %7: i64[2] = cast %i {dtype=i64}
          %8: i64[2] = sum %i {axes=(), keepdim=False}
          %9: f32[] = sum %x {axes=(0,), keepdim=False}
          %10: f32[2] = where %c, %x, %1
          return %1, %2, %4, %6, %7, %8, %9, %10
        }"""
    check_pass(simplify, text, text)


def test_integer_and_bool_times_zero_is_zero():
    check_pass(simplify, """
        graph f(%i: i64[2,2] data) {
          %0: i64[2] = full {dtype=i64, shape=(2,), value=0}
          %1: i64[2,2] = mul %0, %i          # model.py:2
          return %1
        }""", """
        graph f(%i: i64[2,2] data) {
          %0: i64[2,2] = full {dtype=i64, shape=(2, 2), value=0}      # model.py:2
          return %0
        }""")


def test_double_negation_in_a_fixpoint():
    check_pass(simplify, """
        graph f(%x: f32[2] data) {
          %0: f32[2] = neg %x
          %1: f32[2] = neg %0
          %2: f32[2] = neg %1
          %3: f32[2] = neg %2
          %4: f32[2] = neg %3
          return %4, %3
        }""", """
        graph f(%x: f32[2] data) {
          %0: f32[2] = neg %x
          return %0, %x
        }""")


def test_reshapes():
    check_pass(simplify, """
        graph f(%x: f32[2,3] data) {
          %0: f32[2,3] = reshape %x {shape=(2, 3)}
          %1: f32[6] = reshape %0 {shape=(6,)}
          %2: f32[3,2] = reshape %1 {shape=(3, 2)}
          %3: f32[1,6] = reshape %2 {shape=(1, 6)}
          return %3, %1
        }""", """
        graph f(%x: f32[2,3] data) {
          %0: f32[6] = reshape %x {shape=(6,)}
          %1: f32[1,6] = reshape %x {shape=(1, 6)}
          return %1, %0
        }""")


def test_permutes_compose_or_cancel():
    check_pass(simplify, """
        graph f(%x: f32[2,3,4] data) {
          %0: f32[3,4,2] = permute %x {perm=(1, 2, 0)}
          %1: f32[4,3,2] = permute %0 {perm=(1, 0, 2)}
          %2: f32[2,3,4] = permute %0 {perm=(2, 0, 1)}
          %3: f32[2,3,4] = permute %x {perm=(0, 1, 2)}
          return %1, %2, %3
        }""", """
        graph f(%x: f32[2,3,4] data) {
          %0: f32[4,3,2] = permute %x {perm=(2, 1, 0)}
          return %0, %x, %x
        }""")


def test_broadcasts():
    check_pass(simplify, """
        graph f(%x: f32[3] data) {
          %0: f32[3] = broadcast_to %x {shape=(3,)}
          %1: f32[1,3] = broadcast_to %0 {shape=(1, 3)}
          %2: f32[2,4,3] = broadcast_to %1 {shape=(2, 4, 3)}
          return %2
        }""", """
        graph f(%x: f32[3] data) {
          %0: f32[2,4,3] = broadcast_to %x {shape=(2, 4, 3)}
          return %0
        }""")


def test_cast_to_the_same_dtype_and_stop_gradient_vanish():
    # stop_gradient goes: simplify runs after autodiff, when it no longer means anything.
    check_pass(simplify, """
        graph f(%x: f32[2] data) {
          %0: f32[2] = cast %x {dtype=f32}
          %1: f32[2] = stop_gradient %0
          %2: f32[2] = exp %1
          return %2
        }""", """
        graph f(%x: f32[2] data) {
          %0: f32[2] = exp %x
          return %0
        }""")


def test_reductions_over_nothing():
    check_pass(simplify, """
        graph f(%x: f32[2,1] data) {
          %0: f32[2,1] = sum %x {axes=(), keepdim=False}
          %1: f32[2] = sum %0 {axes=(1,), keepdim=False}
          %2: f32[2,1] = max %x {axes=(1,), keepdim=True}
          %3: f32[2] = add %1, %1
          return %3, %2
        }""", """
        graph f(%x: f32[2,1] data) {
          %0: f32[2] = reshape %x {shape=(2,)}
          %1: f32[2] = add %0, %0
          return %1, %x
        }""")


def test_where_with_equal_branches_or_a_known_condition():
    check_pass(simplify, """
        graph f(%c: bool[2,2] data, %x: f32[2] data, %y: f32[2] data) {
          %0: f32[2,2] = where %c, %x, %x
          %1: bool[] = full {dtype=bool, shape=(), value=True}
          %2: f32[2] = where %1, %x, %y
          %3: bool[2] = const {value=array([False, False], bool)}
          %4: f32[2] = where %3, %x, %y
          return %0, %2, %4
        }""", """
        graph f(%c: bool[2,2] data, %x: f32[2] data, %y: f32[2] data) {
          %0: f32[2,2] = broadcast_to %x {shape=(2, 2)}
          return %0, %x, %y
        }""")


def test_updates_are_rewired():
    check_pass(simplify, """
        graph f(%w: f32[2] param) {
          %0: f32[2] = neg %w
          %1: f32[2] = neg %0
          %2: f32[2] = exp %1
          return %1  updates %w <- %2
        }""", """
        graph f(%w: f32[2] param) {
          %0: f32[2] = exp %w
          return %w  updates %w <- %0
        }""")


def test_a_rewrite_that_changes_the_type_is_caught():
    @rewrite("exp")
    def bad(node, rw):
        return rw.emit("sum", node.inputs, axes=(0,), keepdim=False)
    try:
        g = parse_graph("graph f(%x: f32[2] data) {\n  %0: f32[2] = exp %x\n  return %0\n}")
        with pytest.raises(IRError, match="rewrite bad replaced a f32\\[2\\] exp by a f32\\[\\] value"):
            simplify(g)
    finally:
        REWRITES["exp"].remove(bad)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_simplify_keeps_results_and_reaches_a_fixpoint(g):
    out = simplify(copy(g))
    verify(out)
    assert_same_results(g, out)
    assert print_graph(simplify(copy(out))) == print_graph(out)


def test_grad_variables_are_neither_rewritten_nor_read_as_literals():
    text = """
        graph f(%x: f32[3] data) {
          %0: f32[3] = full {dtype=f32, shape=(3,), value=1.0}
          %1: f32[3] = neg %x
          %2: f32[3] = neg %1
          %3: f32[3] = mul %2, %0
          %4: f32[] = sum %3 {axes=(0,), keepdim=False}
          %5: f32[3] = grad %4, %0
          %6: f32[3] = grad %4, %2
          return %5, %6
        }"""
    check_pass(simplify, text, text)


def transposed_product(returns):
    """(x^T @ g)^T, returning `returns`: a linear layer's weight gradient as autodiff writes it."""
    return """
        graph f(%x: f32[4,3] data, %g: f32[4,5] data) {
          %0: f32[3,4] = permute %x {perm=(1, 0)}
          %1: f32[3,5] = matmul %0, %g
          %2: f32[5,3] = permute %1 {perm=(1, 0)}
          return """ + returns + """
        }"""


def test_a_transposed_product_is_computed_transposed():
    # (x^T @ g)^T -> g^T @ x, which the optimizer update reads row-major
    check_pass(simplify, transposed_product("%2"), """
        graph f(%x: f32[4,3] data, %g: f32[4,5] data) {
          %0: f32[5,4] = permute %g {perm=(1, 0)}
          %1: f32[5,3] = matmul %0, %x
          return %1
        }""")


def test_a_product_read_twice_is_not_transposed():
    # computing the product both ways would double its cost
    check_pass(simplify, transposed_product("%2, %1"), transposed_product("%2, %1"))
