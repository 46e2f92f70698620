"""cse: golden IR in -> IR out for what merges and what must not, and a property test."""
import numpy as np
from hypothesis import HealthCheck, given, settings

from graphc.ir import print_graph, verify
from graphc.passes import cse
from graphc.passes.cse import attr_key
from ir.evaluate import assert_same_results, check_pass, copy, random_graphs


def test_merges_equal_nodes_and_rewires_their_users():
    check_pass(cse, """
        graph f(%x: f32[2] data) {
          %0: f32[2] = exp %x
          %1: f32[2] = exp %x
          %2: f32[2] = add %0, %1
          return %2
        }""", """
        graph f(%x: f32[2] data) {
          %0: f32[2] = exp %x
          %1: f32[2] = add %0, %0
          return %1
        }""")


def test_merges_cascade_and_reach_outputs_and_updates():
    check_pass(cse, """
        graph f(%x: f32[2] data, %w: f32[2] param) {
          %0: f32[2] = mul %x, %w
          %1: f32[2] = neg %0
          %2: f32[2] = mul %x, %w
          %3: f32[2] = neg %2
          return %1, %3  updates %w <- %3
        }""", """
        graph f(%x: f32[2] data, %w: f32[2] param) {
          %0: f32[2] = mul %x, %w
          %1: f32[2] = neg %0
          return %1, %1  updates %w <- %1
        }""")


def test_different_attributes_do_not_merge():
    text = """
        graph f(%x: f32[2,3] data) {
          %0: f32[3] = sum %x {axes=(0,), keepdim=False}
          %1: f32[2] = sum %x {axes=(1,), keepdim=False}
          %2: f32[1,3] = sum %x {axes=(0,), keepdim=True}
          return %0, %1, %2
        }"""
    check_pass(cse, text, text)


def test_commutative_operands_merge_but_sub_does_not():
    check_pass(cse, """
        graph f(%a: f32[2] data, %b: f32[2] data) {
          %0: f32[2] = add %a, %b
          %1: f32[2] = add %b, %a
          %2: f32[2] = sub %a, %b
          %3: f32[2] = sub %b, %a
          return %0, %1, %2, %3
        }""", """
        graph f(%a: f32[2] data, %b: f32[2] data) {
          %0: f32[2] = add %a, %b
          %1: f32[2] = sub %a, %b
          %2: f32[2] = sub %b, %a
          return %0, %0, %1, %2
        }""")


def test_array_attributes_compare_by_value_with_nan_equal_and_signed_zeros_apart():
    check_pass(cse, """
        graph f() {
          %0: f32[2] = const {value=array([1.0, nan], f32)}
          %1: f32[2] = const {value=array([1.0, nan], f32)}
          %2: f32[2] = const {value=array([1.0, 2.0], f32)}
          %3: f64[2] = const {value=array([1.0, 2.0], f64)}
          %4: f32[2] = const {value=array([0.0, 2.0], f32)}
          %5: f32[2] = const {value=array([-0.0, 2.0], f32)}
          return %0, %1, %2, %3, %4, %5
        }""", """
        graph f() {
          %0: f32[2] = const {value=array([1.0, nan], f32)}
          %1: f32[2] = const {value=array([1.0, 2.0], f32)}
          %2: f64[2] = const {value=array([1.0, 2.0], f64)}
          %3: f32[2] = const {value=array([0.0, 2.0], f32)}
          %4: f32[2] = const {value=array([-0.0, 2.0], f32)}
          return %0, %0, %1, %2, %3, %4
        }""")


def test_full_values_compare_as_the_dtype_holds_them():
    # nan matches nan, -0.0 stays apart from 0.0, and value=0 of an f32 full is the same as 0.0.
    check_pass(cse, """
        graph f() {
          %0: f32[2] = full {dtype=f32, shape=(2,), value=nan}
          %1: f32[2] = full {dtype=f32, shape=(2,), value=nan}
          %2: f32[2] = full {dtype=f32, shape=(2,), value=0.0}
          %3: f32[2] = full {dtype=f32, shape=(2,), value=-0.0}
          %4: f32[2] = full {dtype=f32, shape=(2,), value=0}
          %5: f64[2] = full {dtype=f64, shape=(2,), value=0.0}
          %6: f32[2] = full {dtype=f32, shape=(2,), value=0.1}
          %7: f32[2] = full {dtype=f32, shape=(2,), value=0.10000000149011612}
          return %0, %1, %2, %3, %4, %5, %6, %7
        }""", """
        graph f() {
          %0: f32[2] = full {dtype=f32, shape=(2,), value=nan}
          %1: f32[2] = full {dtype=f32, shape=(2,), value=0.0}
          %2: f32[2] = full {dtype=f32, shape=(2,), value=-0.0}
          %3: f64[2] = full {dtype=f64, shape=(2,), value=0.0}
          %4: f32[2] = full {dtype=f32, shape=(2,), value=0.1}
          return %0, %0, %1, %2, %1, %3, %4, %4
        }""")


def test_uniform_is_a_function_of_seed_and_offset_so_equal_draws_merge():
    check_pass(cse, """
        graph f(%seed: i64[] data, %offset: i64[] data) {
          %0: f32[4] = uniform %seed, %offset {shape=(4,)}
          %1: f32[4] = uniform %seed, %offset {shape=(4,)}
          %2: f32[2,2] = uniform %seed, %offset {shape=(2, 2)}
          %3: f32[4] = uniform %offset, %seed {shape=(4,)}
          return %0, %1, %2, %3
        }""", """
        graph f(%seed: i64[] data, %offset: i64[] data) {
          %0: f32[4] = uniform %seed, %offset {shape=(4,)}
          %1: f32[2,2] = uniform %seed, %offset {shape=(2, 2)}
          %2: f32[4] = uniform %offset, %seed {shape=(4,)}
          return %0, %0, %1, %2
        }""")


def test_grad_requests_merge_only_with_the_same_loss_wrt_and_seed():
    check_pass(cse, """
        graph f(%x: f32[2] data, %w: f32[2] param, %v: f32[2] param) {
          %0: f32[2] = mul %x, %w
          %1: f32[2] = mul %0, %v
          %2: f32[] = sum %1 {axes=(0,), keepdim=False}
          %3: f32[2] = grad %2, %w
          %4: f32[2] = grad %2, %v
          %5: f32[2] = grad %2, %w
          %6: f32[] = full {dtype=f32, shape=(), value=2.0}
          %7: f32[2] = grad %2, %w, %6
          return %3, %4, %5, %7
        }""", """
        graph f(%x: f32[2] data, %w: f32[2] param, %v: f32[2] param) {
          %0: f32[2] = mul %x, %w
          %1: f32[2] = mul %0, %v
          %2: f32[] = sum %1 {axes=(0,), keepdim=False}
          %3: f32[2] = grad %2, %w
          %4: f32[2] = grad %2, %v
          %5: f32[] = full {dtype=f32, shape=(), value=2.0}
          %6: f32[2] = grad %2, %w, %5
          return %3, %4, %3, %6
        }""")


def test_attr_key():
    assert attr_key(float("nan")) == attr_key(float("nan"))
    assert attr_key(0.0) != attr_key(-0.0)
    assert attr_key(1) != attr_key(1.0) != attr_key(True)
    assert attr_key((1, 2)) != attr_key([1, 2])
    assert attr_key(np.dtype("float32")) == attr_key(np.float32)
    assert attr_key(np.zeros((2, 1))) != attr_key(np.zeros((1, 2)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_cse_keeps_results_and_is_idempotent(g):
    out = cse(copy(g))
    verify(out)
    assert_same_results(g, out)
    assert print_graph(cse(copy(out))) == print_graph(out)


def test_equal_literals_that_are_grad_variables_stay_apart():
    # Two equal ones(3, requires_grad=True) are two variables; the plain literals 2.0 still merge.
    check_pass(cse, """
        graph f() {
          %0: f32[3] = full {dtype=f32, shape=(3,), value=1.0}
          %1: f32[3] = full {dtype=f32, shape=(3,), value=1.0}
          %2: f32[3] = full {dtype=f32, shape=(3,), value=2.0}
          %3: f32[3] = full {dtype=f32, shape=(3,), value=2.0}
          %4: f32[3] = mul %0, %2
          %5: f32[3] = add %4, %1
          %6: f32[3] = add %5, %3
          %7: f32[] = sum %6 {axes=(0,), keepdim=False}
          %8: f32[3] = grad %7, %0
          %9: f32[3] = grad %7, %1
          return %8, %9
        }""", """
        graph f() {
          %0: f32[3] = full {dtype=f32, shape=(3,), value=1.0}
          %1: f32[3] = full {dtype=f32, shape=(3,), value=1.0}
          %2: f32[3] = full {dtype=f32, shape=(3,), value=2.0}
          %3: f32[3] = mul %0, %2
          %4: f32[3] = add %3, %1
          %5: f32[3] = add %4, %2
          %6: f32[] = sum %5 {axes=(0,), keepdim=False}
          %7: f32[3] = grad %6, %0
          %8: f32[3] = grad %6, %1
          return %7, %8
        }""")
