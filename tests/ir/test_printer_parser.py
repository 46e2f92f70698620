"""The text form: golden texts, parse errors that name the line, and print(parse(print(g))) == print(g)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from graphc.errors import IRError
from graphc.ir import Graph, parse_graph, print_graph, verify
from graphc.ir.parser import parse_attr, parse_dtype

from .evaluate import random_graphs

GOLDEN = """\
graph mlp_step(%x: f32[4,6] data, %y: i64[4] data, %w: f32[6,3] param, %m: f32[6,3] state, %lr: f32[] scalar) {
  %0: f32[4,3] = matmul %x, %w                                # model.py:13
  %1: f32[4,3] = relu %0
  %2: f32[4] = sum %1 {axes=(1,), keepdim=False}              # model.py:15
  %3: f32[4,3] = one_hot %y {dtype=f32, num_classes=3}
  %4: f32[4,3] = mul %1, %3
  %5: f32[6,3] = full {dtype=f32, shape=(6, 3), value=0.9}
  %6: f32[6,3] = mul %m, %5
  %7: f32[6,3] = mul %6, %lr
  %8: f32[6,3] = sub %w, %7
  %9: f32[2,2] = const {value=array([[1.0, -inf], [nan, -0.0]], f32)}
  %10: f32[4,1] = getitem %4 {index=((0, 4, 1), (1, 2, 1))}
  %11: f32[3,6] = permute %8 {perm=(1, 0)}
  %12: f32[4,6] = concat %0, %0 {axis=1}
  %13: i64[4] = argmax %4 {axis=1, keepdim=False}
  %14: i64[4,3] = cast %1 {dtype=i64}
  return %2, %9, %10  updates %w <- %8, %m <- %6
}"""


def test_golden_text_round_trips_exactly():
    assert print_graph(parse_graph(GOLDEN)) == GOLDEN


def test_parsed_graph_has_types_kinds_attrs_and_locations():
    g = parse_graph(GOLDEN)
    assert [(v.name, v.kind, v.shape, v.dtype.name) for v in g.inputs] == [
        ("x", "data", (4, 6), "float32"), ("y", "data", (4,), "int64"), ("w", "param", (6, 3), "float32"),
        ("m", "state", (6, 3), "float32"), ("lr", "scalar", (), "float32")]
    matmul, relu, total = g.nodes[:3]
    assert matmul.loc == ("model.py", 13, "") and relu.loc is None
    assert total.attrs == {"axes": (1,), "keepdim": False}
    assert g.nodes[3].attrs["dtype"] == np.dtype(np.float32)
    const = g.nodes[9].attrs["value"]
    assert const.dtype == np.float32 and np.isnan(const[1, 0]) and np.signbit(const[1, 1])
    assert [g.nodes.index(v.node) for v in g.outputs] == [2, 9, 10]
    assert [(t.name, g.nodes.index(n.node)) for t, n in g.updates] == [("w", 8), ("m", 6)]
    verify(g)


def test_any_names_spacing_and_attribute_order_print_canonically():
    text = """
    graph f(%a: f32[2,3] data,%b: f32[3] param) {
        %t: f32[2,3] =   add %a,%b   {  }
        %u: f32[2] = sum %t {keepdim=False, axes=(1,)}     #   layer.py:7
        return %u   updates %b <- %b
    }
    """
    assert print_graph(parse_graph(text)) == """\
graph f(%a: f32[2,3] data, %b: f32[3] param) {
  %0: f32[2,3] = add %a, %b
  %1: f32[2] = sum %0 {axes=(1,), keepdim=False}              # layer.py:7
  return %1  updates %b <- %b
}"""


def test_updates_without_outputs_and_an_empty_graph():
    text = "graph g(%w: f32[2] param) {\n  %0: f32[2] = neg %w\n  return   updates %w <- %0\n}"
    assert print_graph(parse_graph(text)) == text
    assert print_graph(parse_graph(text.replace("return   updates", "return updates"))) == text
    empty = "graph e() {\n  return\n}"
    assert print_graph(parse_graph(empty)) == empty


def test_dumps_with_banner_comments_parse():
    g = parse_graph("// IR after fold (3 -> 1 nodes)\n" + GOLDEN)
    assert print_graph(g) == GOLDEN


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("-2", -2), ("0.5", 0.5), ("-0.0", -0.0), ("1e-07", 1e-07),
    ("True", True), ("False", False), ("None", None), ("'mean'", "mean"),
    ("(1,)", (1,)), ("()", ()), ("[1, [2, (3, None)]]", [1, [2, (3, None)]]),
    ("inf", float("inf")), ("-inf", float("-inf")),
    ("f32", np.dtype("float32")), ("i64", np.dtype("int64")), ("bool", np.dtype("bool")),
    ("uint64", np.dtype("uint64")), ("float64", np.dtype("float64")),
])
def test_attribute_literals(text, value):
    got = parse_attr(text)
    assert got == value and type(got) is type(value)
    if isinstance(value, float) and value == 0:
        assert np.signbit(got) == np.signbit(value)


def test_nan_and_array_literals():
    assert np.isnan(parse_attr("nan"))
    a = parse_attr("array([[1, 2], [3, 4]], i32)")
    assert a.dtype == np.int32 and a.tolist() == [[1, 2], [3, 4]]
    b = parse_attr("array([True, False], bool)")
    assert b.dtype == np.bool_ and b.tolist() == [True, False]
    s = parse_attr("array(2.5, f64)")
    assert s.shape == () and s.dtype == np.float64


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo pwned')", "(lambda: 1)()", "x.y", "1 + 2", "open('f')",
    "array([1], f32, copy=True)", "[i for i in range(3)]", "f", "b'x'", "-'a'",
])
def test_attribute_reader_never_evaluates(text):
    with pytest.raises(IRError, match="parse:"):
        parse_attr(text)


def test_dtype_names():
    assert parse_dtype("f16") == np.float16 and parse_dtype("u8") == np.uint8
    with pytest.raises(IRError, match="unknown dtype 'f'"):
        parse_dtype("f")


HEADER = "graph f(%x: f32[2,3] data) {"


@pytest.mark.parametrize("body, message", [
    ("  %0: f32[2,3] = frobnicate %x", "line 2: unknown op 'frobnicate'"),
    ("  %0: f32[2,3] = neg %y", "line 2: %y is used but never defined above"),
    ("  %0: f32[3,2] = neg %x", "line 2: declared type f32[3,2] but neg gives f32[2,3]"),
    ("  %0: f64[2,3] = neg %x", "line 2: declared type f64[2,3] but neg gives f32[2,3]"),
    ("  %0: f32[2,3] = matmul %x, %x", "line 2: matmul rejects its operands: inner dimensions differ"),
    ("  %0: f32[2,3] = neg %x {axes=(1,)}", "line 2: op 'neg' has no attribute axes"),
    ("  %0: f32[2] = sum %x {axes=os.system('x')}", "line 2: not an attribute literal: os.system('x')"),
    ("  %0: q9[2,3] = neg %x", "line 2: unknown dtype 'q9'"),
    ("  %0: f32[2,3] = neg %x\n  %0: f32[2,3] = neg %x", "line 3: %0 is defined twice"),
    ("  %0: f32[2,3] = neg %x junk", "line 2: unexpected text 'junk'"),
    ("  %0 = neg %x", "line 2: expected '%n: f32[2] = op %a, %b {k=v}'"),
    ("  return %x  updates %x <-", "line 2: expected '%target <- %value' in updates"),
])
def test_parse_errors_name_the_line_and_show_it(body, message):
    text = f"{HEADER}\n{body}\n  return %x\n}}"
    with pytest.raises(IRError) as info:
        parse_graph(text)
    shown = str(info.value)
    assert message in shown
    bad_line = text.splitlines()[int(message.split(":")[0].split()[1]) - 1].strip()
    assert bad_line in shown


@pytest.mark.parametrize("text, message", [
    ("", "empty text"),
    ("graf f() {\n  return\n}", "line 1: expected 'graph name("),
    ("graph f(%x: f32[2] weights) {\n  return\n}", "line 1: input %x has kind 'weights'"),
    ("graph f(%x: f32[2] data) {\n  %0: f32[2] = neg %x\n}", "line 3: the graph has no 'return' line"),
    ("graph f(%x: f32[2] data) {\n  return %x", "line 2: the graph is not closed"),
    ("graph f(%x: f32[2] data) {\n  return %x\n  %0: f32[2] = neg %x\n}", "line 3: only '}' may follow"),
    ("graph f(%x: f32[2] data, %x: f32[2] data) {\n  return\n}", "input %x is declared twice"),
])
def test_structure_errors(text, message):
    with pytest.raises(IRError, match="parse: ") as info:
        parse_graph(text)
    assert message in str(info.value)


def test_attribute_dtype_given_as_numpy_type_prints_and_parses_the_same():
    g = Graph("c")
    x = g.add_input((2,), np.float32, "data", "x")
    y = g.add_node("cast", [x], {"dtype": np.int64})
    z = g.add_node("full", [], {"shape": (2,), "value": np.float32(0.1), "dtype": np.float32})
    g.outputs = [y, z]
    text = print_graph(g)
    assert "cast %x {dtype=i64}" in text and "value=0.10000000149011612" in text
    assert print_graph(parse_graph(text)) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_round_trip_property(g):
    verify(g)
    text = print_graph(g)
    again = parse_graph(text)
    verify(again)
    assert print_graph(again) == text
