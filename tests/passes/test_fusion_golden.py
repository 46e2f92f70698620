"""fusion and memory planning: golden text of the annotated graph, as ir("fused") / ir("planned") print it."""
import textwrap

from graphc.ir import parse_graph
from graphc.passes.fusion import fuse_pass
from graphc.passes.memplan import plan_pass


def annotated(src, *passes):
    graph = parse_graph(textwrap.dedent(src))
    for p in passes:
        graph = p(graph)
    return str(graph)


def below_graph(text):
    """The annotation lines the printer adds under the graph's closing brace."""
    return text[text.index("\n}\n") + 3:].strip()


MLP_LAYER = """
    graph f(%x: f32[4,3] data, %w: f32[5,3] param, %b: f32[5] param) {
      %0: f32[3,5] = permute %w {perm=(1, 0)}
      %1: f32[4,5] = matmul %x, %0
      %2: f32[4,5] = add %1, %b
      %3: f32[4,5] = relu %2
      %4: f32[] = sum %3 {axes=(0, 1), keepdim=False}
      return %4, %3
    }"""


def test_elementwise_chain_fuses_and_library_calls_stand_alone():
    assert below_graph(annotated(MLP_LAYER, fuse_pass)) == textwrap.dedent("""\
        // 4 kernels
        kernel permute_0 (view [3, 5]) (%w) -> (%0) { %0 = permute }
        kernel matmul_1 (matmul [4, 5]) (%x, %0) -> (%1) { %1 = matmul }
        kernel fused_add_relu_2 (elementwise [4, 5]) (%1, %b) -> (%3) { %2 = add; %3 = relu }
        kernel sum_3 (reduce [4, 5]) (%3) -> (%4) { %4 = sum }""")


def test_a_reduction_swallows_the_elementwise_group_only_it_reads():
    text = annotated("""
        graph f(%x: f32[4,3] data) {
          %0: f32[4,3] = exp %x
          %1: f32[4,3] = mul %0, %0
          %2: f32[4] = sum %1 {axes=(1,), keepdim=False}
          return %2
        }""", fuse_pass)
    assert below_graph(text) == textwrap.dedent("""\
        // 1 kernels
        kernel fused_exp_mul_sum_0 (reduce [4, 3]) (%x) -> (%2) { %0 = exp; %1 = mul; %2 = sum }""")


def test_shapes_that_differ_split_kernels():
    text = annotated("""
        graph f(%x: f32[4,3] data, %y: f32[3] data) {
          %0: f32[3] = neg %y
          %1: f32[4,3] = add %x, %0
          return %1
        }""", fuse_pass)
    assert below_graph(text) == textwrap.dedent("""\
        // 2 kernels
        kernel neg_0 (elementwise [3]) (%y) -> (%0) { %0 = neg }
        kernel add_1 (elementwise [4, 3]) (%x, %0) -> (%1) { %1 = add }""")


def test_plan_reuses_a_dead_buffer_and_views_alias_their_base():
    text = annotated(MLP_LAYER, fuse_pass, plan_pass())
    assert below_graph(text).split("// memory plan")[1].splitlines() == [
        ": 2 pools, 0.2 KiB",
        "pool0: float32[20] <- %1, %4",    # %1 is dead once fused_add_relu_2 has read it
        "pool1: float32[20] <- %3",
        "view: %0 -> %w"]


def test_plan_computes_an_update_in_place_and_inlines_literals():
    text = annotated("""
        graph f(%w: f32[3] param, %g: f32[3] data) {
          %0: f32[] = const {value=array(0.5, f32)}
          %1: f32[3] = mul %g, %0
          %2: f32[3] = sub %w, %1
          %3: f32[3] = mul %2, %2
          %4: f32[] = sum %3 {axes=(0,), keepdim=False}
          return %4  updates %w <- %2
        }""", fuse_pass, plan_pass())
    plan = below_graph(text).split("// memory plan")[1]
    assert plan.splitlines() == [
        ": 2 pools, 0.0 KiB",
        "pool0: float32[3] <- %3",
        "pool1: float32[1] <- %4",
        "in place: %2 -> input 0",       # w - 0.5 * g is written into %w's own storage
        "inlined literals: %0"]


SOFTMAX = """
    graph f(%x: f32[4,3] data) {
      %0: f32[4,1] = max %x {axes=(1,), keepdim=True}
      %1: f32[4,3] = sub %x, %0
      %2: f32[4,3] = exp %1
      %3: f32[4,1] = sum %2 {axes=(1,), keepdim=True}
      %4: f32[4,3] = div %2, %3
      return %4
    }"""


def test_softmax_is_one_rowwise_kernel():
    # before: max_0 (reduce), fused_sub_exp_1, sum_2 (reduce), div_3: four kernels, three [4,3] arrays
    assert below_graph(annotated(SOFTMAX, fuse_pass)) == textwrap.dedent("""\
        // 1 kernels
        kernel fused_max_sub_exp_sum_etc_0 (rowwise [4, 3]) (%x) -> (%4) { %0 = max; %1 = sub; %2 = exp; %3 = sum; %4 = div }""")


def test_log_softmax_keeps_the_values_backward_reads_and_plans_them():
    text = annotated("""
        graph f(%x: f32[4,3] data) {
          %0: f32[4,1] = max %x {axes=(1,), keepdim=True}
          %1: f32[4,3] = sub %x, %0
          %2: f32[4,3] = exp %1
          %3: f32[4,1] = sum %2 {axes=(1,), keepdim=True}
          %4: f32[4,1] = log %3
          %5: f32[4,3] = sub %1, %4
          return %5, %2
        }""", fuse_pass, plan_pass())
    lines = below_graph(text).splitlines()
    assert lines[:3] == [
        "// 1 kernels",
        "kernel fused_max_sub_exp_sum_etc_0 (rowwise [4, 3]) (%x) -> (%2, %5) "
        "{ %0 = max; %1 = sub; %2 = exp; %3 = sum; %4 = log; %5 = sub }",
        "// memory plan: 2 pools, 0.1 KiB"]


def test_square_rows_are_not_fused_row_wise():
    # [3, 3]: a [3] value would broadcast along the columns, so the row-wise reading would be wrong
    text = annotated("""
        graph f(%x: f32[3,3] data) {
          %0: f32[3,1] = max %x {axes=(1,), keepdim=True}
          %1: f32[3,3] = sub %x, %0
          return %1
        }""", fuse_pass)
    assert "rowwise" not in text and "// 2 kernels" in text


def test_mlp_step_loss_takes_one_kernel_each_way(monkeypatch):
    """The seed MLP step: 41 kernels before row-wise fusion, 33 after; the loss is one kernel each way."""
    import graphc
    from graphc.cli.models import build
    from graphc.passes import fusion
    graphc.manual_seed(0)
    _, _, _, step = build("mlp", graphc, lr=0.05, momentum=0.9)
    compiled = graphc.compile(step, backend="interpreter")
    compiled(graphc.rand(64, 1, 28, 28), graphc.randint(0, 10, (64,)))
    after = fusion.fuse(compiled.graph()).kernels
    monkeypatch.setattr(fusion, "_fuse_rows", lambda kernels: kernels)
    before = fusion.fuse(compiled.graph()).kernels
    assert (len(before), len(after)) == (41, 33)
    rowwise = [k for k in after if k.kind == "rowwise"]
    assert [[n.op for n in k.nodes if n.op in ("max", "exp", "log")] for k in rowwise] == [["max", "exp", "log"], []]
    assert not [k for k in after if k.kind == "reduce" and k.shape == (64, 10) and k.nodes[-1].attrs["axes"] == (1,)]
