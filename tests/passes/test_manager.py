"""PassManager: stages, timings, node counts, banners, dumps, and the verifier naming a broken pass."""
import os

import pytest
from hypothesis import HealthCheck, given, settings

from graphc.errors import IRError
from graphc.ir import parse_graph, print_graph
from graphc.passes import PassManager, cse, dce, fold_constants, simplify
from ir.evaluate import assert_same_results, copy, random_graphs

PIPELINE = [("fold", fold_constants), ("simplify", simplify), ("cse", cse), ("dce", dce)]

TEXT = """
graph step(%x: f32[2,3] data) {
  %0: f32[] = full {dtype=f32, shape=(), value=1.0}
  %1: f32[] = full {dtype=f32, shape=(), value=1.0}
  %2: f32[] = add %0, %1
  %3: f32[2,3] = mul %x, %2
  %4: f32[2,3] = neg %x
  %5: f32[2,3] = neg %4
  %6: f32[2,3] = exp %x
  %7: f32[2,3] = exp %5
  %8: f32[2,3] = add %6, %7
  %9: f32[2,3] = add %8, %3
  return %9
}"""

FINAL = """\
graph step(%x: f32[2,3] data) {
  %0: f32[] = full {dtype=f32, shape=(), value=2.0}
  %1: f32[2,3] = mul %x, %0
  %2: f32[2,3] = exp %x
  %3: f32[2,3] = add %2, %2
  %4: f32[2,3] = add %3, %1
  return %4
}"""


def test_runs_the_list_in_order_and_records_every_stage():
    pm = PassManager(PIPELINE)
    g = pm.run(parse_graph(TEXT))
    assert print_graph(g) == FINAL
    assert list(pm.stages) == ["trace", "fold", "simplify", "cse", "dce"]
    assert pm.stages["trace"] == print_graph(parse_graph(TEXT))
    assert pm.stages["dce"] == FINAL
    assert list(pm.timings) == ["fold", "simplify", "cse", "dce"]
    assert all(t >= 0 for t in pm.timings.values())
    assert dict(pm.node_counts) == {"fold": (10, 8), "simplify": (8, 6), "cse": (6, 5), "dce": (5, 5)}
    assert "fold" in pm.summary() and "10 -> 8" in pm.summary()


def test_log_receives_one_banner_per_pass():
    seen = []
    PassManager(PIPELINE, log=seen.append, first_stage="input").run(parse_graph(TEXT))
    assert seen == ["// IR after input (10 nodes)", "// IR after fold (10 -> 8 nodes)",
                    "// IR after simplify (8 -> 6 nodes)", "// IR after cse (6 -> 5 nodes)",
                    "// IR after dce (5 -> 5 nodes)"]
    seen.clear()
    PassManager(PIPELINE[-1:], log=seen.append, print_ir=True).run(parse_graph(TEXT))
    assert seen[-1].startswith("// IR after dce (10 -> 10 nodes)\ngraph step(")


def test_dumps_one_file_per_stage_that_parses_back(tmp_path):
    pm = PassManager(PIPELINE + [("dce", dce)])
    pm.run(parse_graph(TEXT), dump_dir=str(tmp_path / "ir"))
    files = sorted(os.listdir(tmp_path / "ir"))
    assert files == ["step.00.trace.ir", "step.01.fold.ir", "step.02.simplify.ir", "step.03.cse.ir",
                     "step.04.dce.ir", "step.05.dce.ir"]
    text = (tmp_path / "ir" / "step.04.dce.ir").read_text()
    assert text.startswith("// IR after dce (5 -> 5 nodes)\n")
    assert print_graph(parse_graph(text)) == FINAL
    assert list(pm.stages)[-2:] == ["dce", "dce#2"]


def test_a_pass_that_breaks_the_graph_is_named():
    def shuffle(g):
        g.nodes.reverse()
        return g

    pm = PassManager([("fold", fold_constants), ("shuffle", shuffle), ("dce", dce)])
    with pytest.raises(IRError) as info:
        pm.run(parse_graph(TEXT))
    text = str(info.value)
    assert text.startswith("pass manager: pass 'shuffle' left an invalid graph: ")
    assert "is used before its definition" in text
    assert "  IR after shuffle:\n    graph step(" in text
    assert list(pm.stages) == ["trace", "fold"]


def test_an_invalid_input_is_reported_before_any_pass():
    g = parse_graph(TEXT)
    g.nodes[2].out.shape = (5,)
    with pytest.raises(IRError, match=r"the input \(trace\) left an invalid graph: .*%2 = add %0, %1"):
        PassManager(PIPELINE).run(g)
    PassManager(PIPELINE[:1], verify_each=False).run(parse_graph(TEXT))


def test_in_place_passes_that_return_nothing_keep_the_graph():
    def nothing(g):
        g.nodes = g.nodes[:]

    g = PassManager([("nothing", nothing)]).run(parse_graph(TEXT))
    assert len(g.nodes) == 10


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_the_whole_pipeline_keeps_results(g):
    out = PassManager(PIPELINE).run(copy(g))
    assert_same_results(g, out)


def test_dump_dir_can_be_set_once_in_the_constructor(tmp_path):
    PassManager(PIPELINE[:1], dump_dir=str(tmp_path)).run(parse_graph(TEXT))
    assert sorted(os.listdir(tmp_path)) == ["step.00.trace.ir", "step.01.fold.ir"]
