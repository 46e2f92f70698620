"""dce: golden IR in -> IR out, and interpret(g) == interpret(dce(g)) on random graphs."""
from hypothesis import HealthCheck, given, settings

from graphc.ir import print_graph, verify
from graphc.passes import dce
from ir.evaluate import assert_same_results, check_pass, copy, random_graphs


def test_removes_what_no_output_needs():
    check_pass(dce, """
        graph f(%x: f32[2] data) {
          %0: f32[2] = exp %x
          %1: f32[2] = neg %x
          %2: f32[2] = log %0
          return %1
        }""", """
        graph f(%x: f32[2] data) {
          %0: f32[2] = neg %x
          return %0
        }""")


def test_keeps_update_sources_and_their_operands():
    check_pass(dce, """
        graph step(%x: f32[2] data, %w: f32[2] param, %seed: i64[] data) {
          %0: f32[2] = mul %x, %w                # model.py:3
          %1: f32[] = sum %0 {axes=(0,), keepdim=False}
          %2: f32[2] = grad %1, %w
          %3: f32[2] = sub %w, %2                # sgd.py:9
          %4: i64[] = full {dtype=i64, shape=(), value=0}
          %5: f32[2] = uniform %seed, %4 {shape=(2,)}
          return %1  updates %w <- %3
        }""", """
        graph step(%x: f32[2] data, %w: f32[2] param, %seed: i64[] data) {
          %0: f32[2] = mul %x, %w                                     # model.py:3
          %1: f32[] = sum %0 {axes=(0,), keepdim=False}
          %2: f32[2] = grad %1, %w
          %3: f32[2] = sub %w, %2                                     # sgd.py:9
          return %1  updates %w <- %3
        }""")


def test_a_graph_without_dead_nodes_is_unchanged():
    text = """
        graph f(%x: f32[2] data) {
          %0: f32[2] = exp %x
          %1: f32[2] = add %0, %x
          return %1, %0
        }"""
    check_pass(dce, text, text)


def test_graph_that_returns_only_inputs_loses_every_node():
    check_pass(dce, """
        graph f(%x: f32[2] data) {
          %0: f32[2] = exp %x
          return %x
        }""", """
        graph f(%x: f32[2] data) {
          return %x
        }""")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_dce_keeps_results_and_leaves_no_dead_node(g):
    out = dce(copy(g))
    verify(out)
    assert_same_results(g, out)
    used = {id(v) for n in out.nodes for v in n.inputs} | {id(v) for v in out.live_roots()}
    assert all(id(n.out) in used for n in out.nodes)
    assert print_graph(dce(copy(out))) == print_graph(out)
