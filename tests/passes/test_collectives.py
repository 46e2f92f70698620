"""Collectives have an effect: DCE keeps them, CSE never merges two, and every pass keeps their order."""
import pytest

import graphc
import graphc.distributed as dist
from graphc import nn
from graphc.cli.models import make_step
from graphc.ir import parse_graph, verify
from graphc.passes import cse, dce
from graphc.passes.pipeline import default_passes
from ir.evaluate import check_pass

TWO_STARTS = """
    graph f(%g: f32[4] data) {
      %0: i64[] = collective_token
      %1: i64[] = allreduce_start %g, %0 {index=0, reduce='avg'}
      %2: i64[] = allreduce_start %g, %0 {index=0, reduce='avg'}
      %3: f32[4] = allreduce_wait %1 {dtype=f32, reduce='avg', shape=(4,)}
      %4: f32[4] = allreduce_wait %2 {dtype=f32, reduce='avg', shape=(4,)}
      %5: f32[4] = add %3, %4
      return %5
    }"""


@pytest.fixture(autouse=True)
def group():
    """A process group of one (no mpiexec): the op impls run, so check_pass can compare results."""
    dist.init_process_group(backend="mpi")
    yield
    dist.destroy_process_group()


def test_cse_never_merges_two_collectives():
    check_pass(cse, TWO_STARTS, TWO_STARTS)


def test_dce_keeps_a_collective_nobody_reads():
    check_pass(dce, """
        graph f(%g: f32[4] data) {
          %0: i64[] = collective_token
          %1: i64[] = allreduce_start %g, %0 {index=0, reduce='sum'}
          %2: f32[4] = allreduce_wait %1 {dtype=f32, reduce='sum', shape=(4,)}
          %3: f32[4] = neg %g
          %4: f32[4] = exp %g
          return %3
        }""", """
        graph f(%g: f32[4] data) {
          %0: i64[] = collective_token
          %1: i64[] = allreduce_start %g, %0 {index=0, reduce='sum'}
          %2: f32[4] = allreduce_wait %1 {dtype=f32, reduce='sum', shape=(4,)}
          %3: f32[4] = neg %g
          return %3
        }""")


def _collectives(graph):
    return [(n.op, n.attrs.get("index")) for n in graph.nodes if n.op.startswith(("allreduce", "collective"))]


def test_every_pass_of_the_pipeline_keeps_the_collectives_in_order():
    g = parse_graph("""
        graph f(%a: f32[4] data, %b: f32[4] data) {
          %0: i64[] = collective_token
          %1: f32[4] = mul %a, %b
          %2: i64[] = allreduce_start %1, %0 {index=0, reduce='avg'}
          %3: f32[4] = mul %a, %b
          %4: i64[] = allreduce_start %3, %2 {index=1, reduce='avg'}
          %5: f32[4] = allreduce_wait %4 {dtype=f32, reduce='avg', shape=(4,)}
          %6: f32[4] = allreduce_wait %2 {dtype=f32, reduce='avg', shape=(4,)}
          return %1
        }""")
    want = _collectives(g)
    for name, pass_ in default_passes():
        g = pass_(g)
        verify(g)
        assert _collectives(g) == want, f"after {name}"


def test_a_compiled_ddp_step_is_one_graph_with_its_allreduce_after_every_pass():
    graphc.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model = nn.parallel.DistributedDataParallel(net)
    step = make_step(model, nn.CrossEntropyLoss(), graphc.optim.SGD(model.parameters(), lr=0.1))
    compiled = graphc.compile(step, backend="interpreter")
    compiled(graphc.randn(5, 3), graphc.tensor([0, 1, 1, 0, 1]))
    for stage in compiled.stages():
        text = compiled.ir(stage)
        assert text.count("allreduce_start") == 1 and text.count("allreduce_wait") == 1, stage
    final = compiled.ir()
    # forward (matmul), backward, the allreduce and the update (the parameters' updates) in one graph
    assert "matmul" in final and "updates %module.0.weight" in final
    assert final.index("allreduce_wait") < final.index("return")
    assert "allreduce_start" in compiled.source()
    assert {n.op for n in compiled.graph().nodes} >= {"collective_token", "allreduce_start", "allreduce_wait"}
    assert sum(1 for n in compiled.graph().nodes if n.op == "allreduce_start") == 1
