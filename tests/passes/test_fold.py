"""fold_constants: golden IR in -> IR out, and interpret(g) == interpret(fold(g)) on random graphs."""
from hypothesis import HealthCheck, given, settings

from graphc.ir import parse_graph, verify
from graphc.passes import fold_constants
from graphc.passes.fold import MAX_CONST_ELEMENTS
from ir.evaluate import assert_same_results, check_pass, copy, random_graphs


def test_folds_a_chain_of_literals_into_one_full():
    check_pass(fold_constants, """
        graph f(%x: f32[2] data) {
          %0: f32[2] = full {dtype=f32, shape=(2,), value=2.0}
          %1: f32[2] = mul %0, %0            # model.py:4
          %2: f32[2] = exp %1
          %3: f32[2] = add %x, %2
          return %3
        }""", """
        graph f(%x: f32[2] data) {
          %0: f32[2] = full {dtype=f32, shape=(2,), value=54.598148345947266}
          %1: f32[2] = add %x, %0
          return %1
        }""")


def test_mixed_literals_fold_to_a_const_and_keep_the_location():
    check_pass(fold_constants, """
        graph f() {
          %0: f32[2] = const {value=array([1.0, 2.0], f32)}
          %1: f32[] = full {dtype=f32, shape=(), value=0.5}
          %2: f32[2] = mul %0, %1            # model.py:3
          return %2
        }""", """
        graph f() {
          %0: f32[2] = const {value=array([0.5, 1.0], f32)}           # model.py:3
          return %0
        }""")


def test_broadcast_of_a_full_stays_a_full_at_any_size():
    check_pass(fold_constants, """
        graph f() {
          %0: f32[] = full {dtype=f32, shape=(), value=0.0}
          %1: f32[512,512] = broadcast_to %0 {shape=(512, 512)}
          %2: f32[512,512] = neg %1
          %3: f32[262144] = reshape %2 {shape=(262144,)}
          return %3
        }""", """
        graph f() {
          %0: f32[262144] = full {dtype=f32, shape=(262144,), value=-0.0}
          return %0
        }""")


def test_results_bigger_than_the_const_limit_are_not_folded():
    assert MAX_CONST_ELEMENTS == 4096
    text = """
        graph f() {
          %0: i64[65] = const {value=array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64], i64)}
          %1: i64[64,65] = broadcast_to %0 {shape=(64, 65)}
          return %1
        }"""
    check_pass(fold_constants, text, text)


def test_reductions_matmul_and_one_hot_of_literals():
    check_pass(fold_constants, """
        graph f() {
          %0: f32[2,2] = const {value=array([[1.0, 2.0], [3.0, 4.0]], f32)}
          %1: f32[2] = sum %0 {axes=(0,), keepdim=False}
          %2: f32[2,2] = matmul %0, %0
          %3: i64[2] = const {value=array([1, 0], i64)}
          %4: f32[2,2] = one_hot %3 {dtype=f32, num_classes=2}
          %5: f32[3,3] = full {dtype=f32, shape=(3, 3), value=1.0}
          %6: f32[] = sum %5 {axes=(0, 1), keepdim=False}
          return %1, %2, %4, %6
        }""", """
        graph f() {
          %0: f32[2] = const {value=array([4.0, 6.0], f32)}
          %1: f32[2,2] = const {value=array([[7.0, 10.0], [15.0, 22.0]], f32)}
          %2: f32[2,2] = const {value=array([[0.0, 1.0], [1.0, 0.0]], f32)}
          %3: f32[] = full {dtype=f32, shape=(), value=9.0}
          return %0, %1, %2, %3
        }""")


def test_casts_comparisons_nan_and_signed_zero():
    check_pass(fold_constants, """
        graph f() {
          %0: f32[2] = full {dtype=f32, shape=(2,), value=2.75}
          %1: i64[2] = cast %0 {dtype=i64}
          %2: f32[] = full {dtype=f32, shape=(), value=-1.0}
          %3: f32[] = log %2
          %4: f32[] = full {dtype=f32, shape=(), value=0.0}
          %5: f32[] = neg %4
          %6: bool[2] = gt %0, %2
          return %1, %3, %5, %6
        }""", """
        graph f() {
          %0: i64[2] = full {dtype=i64, shape=(2,), value=2}
          %1: f32[] = full {dtype=f32, shape=(), value=nan}
          %2: f32[] = full {dtype=f32, shape=(), value=-0.0}
          %3: bool[2] = full {dtype=bool, shape=(2,), value=True}
          return %0, %1, %2, %3
        }""")


def test_uniform_grad_and_nodes_with_live_operands_stay():
    text = """
        graph f(%x: f32[2] data, %w: f32[2] param) {
          %0: i64[] = full {dtype=i64, shape=(), value=7}
          %1: i64[] = full {dtype=i64, shape=(), value=0}
          %2: f32[2] = uniform %0, %1 {shape=(2,)}
          %3: f32[2] = add %x, %2
          %4: f32[2] = mul %3, %w
          %5: f32[] = sum %4 {axes=(0,), keepdim=False}
          %6: f32[2] = grad %5, %w
          return %6
        }"""
    check_pass(fold_constants, text, text)


def test_empty_results_become_an_empty_full():
    check_pass(fold_constants, """
        graph f() {
          %0: f32[0,3] = full {dtype=f32, shape=(0, 3), value=1.0}
          %1: f32[3,0] = permute %0 {perm=(1, 0)}
          %2: f32[3] = sum %1 {axes=(1,), keepdim=False}
          return %2, %1
        }""", """
        graph f() {
          %0: f32[3,0] = full {dtype=f32, shape=(3, 0), value=1.0}
          %1: f32[3] = full {dtype=f32, shape=(3,), value=0.0}
          return %1, %0
        }""")


def test_out_of_range_one_hot_is_left_for_the_runtime_to_report():
    text = """
        graph f() {
          %0: i64[2] = const {value=array([1, 5], i64)}
          %1: f32[2,2] = one_hot %0 {dtype=f32, num_classes=2}
          return %1
        }"""
    g = fold_constants(parse_graph(text))
    assert [n.op for n in g.nodes] == ["const", "one_hot"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_fold_keeps_results(g):
    out = fold_constants(copy(g))
    verify(out)
    assert_same_results(g, out)


def test_a_literal_that_a_grad_differentiates_is_a_variable():
    # ones(3, requires_grad=True) inside the step: folding c * 2 would cut the loss off from c.
    check_pass(fold_constants, """
        graph f() {
          %0: f32[3] = full {dtype=f32, shape=(3,), value=1.0}
          %1: f32[3] = full {dtype=f32, shape=(3,), value=2.0}
          %2: f32[3] = neg %1
          %3: f32[3] = mul %0, %2
          %4: f32[] = sum %3 {axes=(0,), keepdim=False}
          %5: f32[3] = grad %4, %0
          return %5
        }""", """
        graph f() {
          %0: f32[3] = full {dtype=f32, shape=(3,), value=1.0}
          %1: f32[3] = full {dtype=f32, shape=(3,), value=-2.0}
          %2: f32[3] = mul %0, %1
          %3: f32[] = sum %2 {axes=(0,), keepdim=False}
          %4: f32[3] = grad %3, %0
          return %4
        }""")
