"""The verifier: each rule it holds, pinned by the text of its message (which names the node)."""
import numpy as np
import pytest

from graphc.errors import IRError
from graphc.ir import Graph, Node, Value, parse_graph, verify

F32 = np.float32


def matmul_graph():
    g = parse_graph("""
    graph f(%a: f32[2,3] data, %b: f32[3,4] param) {
      %0: f32[2,3] = neg %a
      %1: f32[2,3] = exp %0            # model.py:7
      %2: f32[3,4] = neg %b
      %3: f32[2,4] = matmul %1, %2     # model.py:9
      return %3  updates %b <- %2
    }""")
    return g


def check(g, *fragments):
    with pytest.raises(IRError) as info:
        verify(g)
    text = str(info.value)
    assert text.startswith("verify: ")
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_a_valid_graph_is_returned():
    g = matmul_graph()
    assert verify(g) is g


def test_wrong_shape_names_the_node_and_its_source_line():
    g = matmul_graph()
    g.nodes[3].out.shape = (2, 5)
    text = check(g, "%3 = matmul %1, %2: declared type f32[2,5] but matmul gives f32[2,4]")
    assert "at model.py:9" in text


def test_wrong_dtype():
    g = matmul_graph()
    g.nodes[1].out.dtype = np.dtype(np.float64)
    check(g, "%1 = exp %0: declared type f64[2,3] but exp gives f32[2,3]")


def test_use_before_definition():
    g = matmul_graph()
    g.nodes[0], g.nodes[1] = g.nodes[1], g.nodes[0]
    check(g, "%0 = exp %1: operand 0 (%1) is used before its definition", "help: nodes must be in")


def test_value_from_another_graph():
    g, other = matmul_graph(), matmul_graph()
    g.nodes[1].inputs = [other.nodes[0].out]
    check(g, "%1 = exp %<undefined>: operand 0 (<Value ?: f32[2,3]>) is not defined in this graph")


def test_input_of_another_graph():
    g, other = matmul_graph(), matmul_graph()
    g.nodes[0].inputs = [other.inputs[0]]
    check(g, "%0 = neg %<undefined>: operand 0 (<Value a: f32[2,3]>) is not defined in this graph")


def test_unknown_op():
    g = matmul_graph()
    g.nodes[0].op = "frobnicate"
    check(g, "%0 = frobnicate %a: unknown op 'frobnicate'")


def test_result_that_is_not_the_nodes_own():
    g = matmul_graph()
    g.nodes[0].out.node = g.nodes[1]
    check(g, "%0 = neg %a: its result value belongs to another exp node (out.node is not this node)")


def test_same_node_twice():
    g = matmul_graph()
    g.nodes.insert(2, g.nodes[0])
    check(g, "%2 = neg %a: its result is defined twice (first by %0)")


def test_two_nodes_sharing_a_result():
    g = matmul_graph()
    a = g.nodes[0]
    g.nodes[2] = Node("neg", [g.inputs[0]], {}, a.out)
    check(g, "%2 = neg %a: its result is defined twice (first by %0)")


def test_node_result_that_is_a_graph_input():
    g = matmul_graph()
    g.nodes[0].out = g.inputs[0]
    check(g, "%0 = neg %a: its result is a graph input")


def test_output_not_defined():
    g, other = matmul_graph(), matmul_graph()
    g.outputs.append(other.nodes[3].out)
    check(g, "output 1 (<Value ?: f32[2,4]>) is not defined in this graph")


def test_update_value_not_defined():
    g, other = matmul_graph(), matmul_graph()
    g.updates = [(g.inputs[1], other.nodes[2].out)]
    check(g, "update %b <- <Value ?: f32[3,4]>: the new value is not defined in this graph")


def test_update_target_must_be_an_input():
    g = matmul_graph()
    g.updates = [(g.nodes[2].out, g.nodes[2].out)]
    check(g, "update %2 <- %2: the target is not an input of this graph")


def test_update_target_of_scalar_kind():
    g = parse_graph("graph f(%lr: f32[] scalar) {\n  %0: f32[] = neg %lr\n  return %0  updates %lr <- %0\n}")
    check(g, "update %lr <- %0: the target is a scalar input; only data, param, state inputs can be updated")


def test_update_type_must_match_the_target():
    g = matmul_graph()
    g.updates = [(g.inputs[1], g.nodes[3].out)]
    check(g, "update %b <- %3: the new value has type f32[2,4] but the target is f32[3,4]")


def test_update_written_twice():
    g = matmul_graph()
    g.updates.append((g.inputs[1], g.nodes[2].out))
    check(g, "update %b <- %2: %b is updated twice")


def test_unknown_attribute():
    g = matmul_graph()
    g.nodes[0].attrs["alpha"] = 2
    check(g, "%0 = neg %a {alpha=2}: op 'neg' has no attribute alpha (its attributes: none)")


def test_op_rule_rejecting_operands():
    g = matmul_graph()
    g.nodes[3].inputs = [g.nodes[1].out, g.nodes[1].out]
    check(g, "%3 = matmul %1, %1: matmul rejects its operands: inner dimensions differ: (2, 3) @ (2, 3)")


def test_wrong_operand_count():
    g = matmul_graph()
    g.nodes[0].inputs.append(g.inputs[0])
    check(g, "%0 = neg %a, %a: neg rejects its operands")


def test_variadic_concat_and_its_attribute_verify():
    g = Graph("cat")
    xs = [g.add_input((2, k), F32, "data", f"x{k}") for k in (1, 2, 3)]
    g.outputs = [g.add_node("concat", xs, {"axis": 1})]
    assert verify(g) is g
    assert g.outputs[0].shape == (2, 6)
    g.nodes[0].attrs["dim"] = 1
    check(g, "op 'concat' has no attribute dim (its attributes: axis)")


def test_grad_with_and_without_seed():
    g = Graph("g")
    w = g.add_input((3,), F32, "param", "w")
    loss = g.add_node("sum", [w], {"axes": (0,), "keepdim": False})
    seed = g.add_node("full", [], {"shape": (), "value": 1.0, "dtype": np.dtype(F32)})
    g.outputs = [g.add_node("grad", [loss, w]), g.add_node("grad", [loss, w, seed])]
    verify(g)


def test_bad_input_kind_and_duplicate_input_names():
    g = Graph("k")
    g.inputs.append(Value((2,), F32, None, "x", "weights"))
    check(g, "input %x has kind 'weights'")
    g = Graph("n")
    g.add_input((2,), F32, "data", "x")
    g.add_input((2,), F32, "data", "x")
    check(g, "two graph inputs are named %x")
