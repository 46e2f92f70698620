"""Test helpers: a tiny evaluator (each node's OPS impl, in order) and random small graphs.

    outs = evaluate(g, random_inputs(g, seed=0))   # [output values..., update values...]
    assert_same_results(g_before, g_after)          # the two graphs compute the same
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from graphc.errors import GraphcError
from graphc.ir import Graph, clone_graph
from graphc.ops import OPS


def evaluate(graph, inputs):
    """Run `graph` on input arrays (one per graph input); returns outputs then update values."""
    env = {id(v): np.asarray(a) for v, a in zip(graph.inputs, inputs, strict=True)}
    with np.errstate(all="ignore"):
        for node in graph.nodes:
            args = [env[id(v)] for v in node.inputs]
            out = np.asarray(OPS[node.op].impl(*args, **node.attrs))
            assert out.shape == node.out.shape and out.dtype == node.out.dtype, \
                f"{node.op}: impl gave {out.dtype}{out.shape}, the IR says {node.out.type_str()}"
            env[id(node.out)] = out
    return [env[id(v)] for v in graph.live_roots()]


def random_inputs(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        if v.dtype.kind == "f":
            out.append(rng.uniform(-1.5, 1.5, v.shape).astype(v.dtype))
        elif v.dtype.kind == "b":
            out.append(rng.random(v.shape) < 0.5)
        else:
            out.append(rng.integers(-3, 4, v.shape).astype(v.dtype))
    return out


def assert_same_results(before, after, seed=0):
    """`before` and `after` give the same outputs and updates on the same random inputs."""
    inputs = random_inputs(before, seed)
    want, got = evaluate(before, inputs), evaluate(after, inputs)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert w.shape == g.shape and w.dtype == g.dtype, (w.dtype, w.shape, g.dtype, g.shape)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True)


def copy(graph):
    return clone_graph(graph)[0]


# --- random small graphs ----------------------------------------------------------------------------

F32 = np.dtype(np.float32)
shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)
UNARY = ["neg", "exp", "abs", "relu", "tanh", "sigmoid", "stop_gradient"]
BINARY = ["add", "sub", "mul", "maximum", "div"]
CHOICES = ["unary", "binary", "literal_binary", "reduce", "reshape", "permute", "matmul", "broadcast",
           "cast", "where", "repeat", "neg_neg"]


@st.composite
def random_graphs(draw, max_nodes=10):
    """A small, valid float32 graph of elementwise/reduce/reshape/permute/matmul nodes over literals
    and inputs, with patterns the passes rewrite (x*1, x+0, neg(neg x), repeated nodes...)."""
    g = Graph("g")
    pool = []
    for i in range(draw(st.integers(1, 3))):
        pool.append(g.add_input(draw(shapes), F32, draw(st.sampled_from(["data", "param", "state"])), f"x{i}"))
    line = iter(range(1, 1000))

    def loc():
        return ("model.py", next(line), "") if draw(st.booleans()) else None

    def literal(shape):
        value = draw(st.sampled_from([0.0, 1.0, 2.0, -0.5]))
        if draw(st.booleans()) or not shape:
            return g.add_node("full", [], {"shape": shape, "value": value, "dtype": F32}, loc())
        arr = np.full(shape, value, F32)
        if draw(st.booleans()):
            arr = arr + np.arange(arr.size, dtype=F32).reshape(shape)
        return g.add_node("const", [], {"value": arr}, loc())

    def pick():
        return draw(st.sampled_from(pool))

    for _ in range(draw(st.integers(1, max_nodes))):
        choice = draw(st.sampled_from(CHOICES))
        x = pick()
        try:
            if choice == "unary":
                new = g.add_node(draw(st.sampled_from(UNARY)), [x], loc=loc())
            elif choice == "binary":
                op, y = draw(st.sampled_from(BINARY)), pick()
                if op == "div":
                    y = literal(y.shape)
                    if y.node.op == "full" and y.node.attrs["value"] == 0.0:
                        y.node.attrs["value"] = 2.0
                new = g.add_node(op, [x, y], loc=loc())
            elif choice == "literal_binary":
                shape = draw(st.sampled_from([x.shape, (), x.shape[1:], (2,) + x.shape]))
                lit = literal(shape)
                args = [x, lit] if draw(st.booleans()) else [lit, x]
                new = g.add_node(draw(st.sampled_from(["add", "sub", "mul"])), args, loc=loc())
            elif choice == "reduce":
                axes = tuple(sorted(draw(st.sets(st.integers(0, max(len(x.shape) - 1, 0)), max_size=len(x.shape)))))
                new = g.add_node(draw(st.sampled_from(["sum", "max"])), [x],
                                 {"axes": axes, "keepdim": draw(st.booleans())}, loc())
            elif choice == "reshape":
                target = draw(st.sampled_from([(x.size,), x.shape, (1,) + x.shape, tuple(reversed(x.shape))]))
                new = g.add_node("reshape", [x], {"shape": target}, loc())
                if draw(st.booleans()):
                    new = g.add_node("reshape", [new], {"shape": x.shape}, loc())
            elif choice == "permute":
                perm = tuple(draw(st.permutations(range(len(x.shape)))))
                new = g.add_node("permute", [x], {"perm": perm}, loc())
            elif choice == "matmul":
                a = x if len(x.shape) == 2 else g.add_node("reshape", [x], {"shape": (1, x.size)})
                b = literal((a.shape[1], draw(st.integers(1, 3)))) if draw(st.booleans()) else \
                    g.add_node("permute", [a], {"perm": (1, 0)})
                new = g.add_node("matmul", [a, b], loc=loc())
            elif choice == "broadcast":
                new = g.add_node("broadcast_to", [x], {"shape": (2,) + x.shape}, loc())
            elif choice == "cast":
                new = g.add_node("cast", [x], {"dtype": F32}, loc())
            elif choice == "where":
                c = g.add_node("gt", [x, literal(())])
                new = g.add_node("where", [c, x, x if draw(st.booleans()) else pick()], loc=loc())
            elif choice == "neg_neg":
                new = g.add_node("neg", [g.add_node("neg", [x])], loc=loc())
            else:   # "repeat": the same computation twice, for CSE
                node = draw(st.sampled_from(g.nodes)) if g.nodes else None
                if node is None or node.op in ("const", "full"):
                    continue
                new = g.add_node(node.op, node.inputs, node.attrs, loc())
        except GraphcError:      # operands that do not fit (e.g. shapes that do not broadcast): skip
            continue
        pool.append(new)
    nodes = [v for v in pool if v.node is not None] or [g.add_node("neg", [pool[0]])]
    g.outputs = [nodes[-1]] + draw(st.lists(st.sampled_from(nodes), max_size=2))
    for v in g.inputs:
        if v.kind in ("param", "state") and draw(st.booleans()):
            same = [n for n in nodes if (n.shape, n.dtype) == (v.shape, v.dtype)]
            if same:
                g.updates.append((v, draw(st.sampled_from(same))))
    return g


# --- golden pass tests --------------------------------------------------------------------------------

def check_pass(fn, before, after):
    """Golden test of a pass (MLIR's FileCheck, in one assert): parse `before`, run `fn`, compare the
    printed result with `after`; the result verifies and, when it can be run, computes the same."""
    import textwrap

    from graphc.ir import parse_graph, print_graph, verify

    g = parse_graph(textwrap.dedent(before))
    verify(g)
    result = fn(copy(g))
    verify(result)
    got, want = print_graph(result), textwrap.dedent(after).strip()
    assert got == want, f"the pass printed\n{got}\nbut the expected text is\n{want}"
    if all(OPS[n.op].impl is not None for n in g.nodes):
        assert_same_results(g, result)
    return result
