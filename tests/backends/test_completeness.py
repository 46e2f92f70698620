"""Every op of the table runs on every backend: as generated code, or as an extern (its impl on the host).

    numba_cpu: relu -> loop, matmul -> kernel, reshape -> driver, a new op without a lowering -> extern
"""
from graphc.backends.numba_cpu.emit import lowering_of
from graphc.ops import OPS


def test_numba_cpu_runs_every_op():
    lowering = {op: lowering_of(op) for op in OPS}
    extern = sorted(op for op, how in lowering.items() if how == "extern")
    print("numba_cpu extern ops (the op table's impl on the host):", ", ".join(extern) or "none")
    for op in extern:
        assert OPS[op].impl is not None, f"{op} has neither a numba_cpu lowering nor an impl to run as extern"
    for op, how in lowering.items():
        if how == "loop" and OPS[op].kind == "elementwise" and op != "one_hot":   # one_hot: a compare on the index
            assert OPS[op].scalar is not None, f"elementwise {op} has no scalar template for the loop body"


def test_numba_cpu_generates_the_seed_models_ops():
    """The ops of the seed models keep generated kernels (an extern there would cost speed, silently)."""
    for op in ("matmul", "conv2d", "conv2d_grad_input", "conv2d_grad_weight", "maxpool2d_argmax",
               "maxpool2d_gather", "maxpool2d_scatter", "sum", "max", "argmax", "getitem", "concat"):
        assert lowering_of(op) == "kernel", op
    for op in ("add", "relu", "broadcast_to", "full", "uniform", "one_hot", "where"):
        assert lowering_of(op) == "loop", op
