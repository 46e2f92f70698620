"""The bad-input battery: every way a user can hand graphc something wrong, each with its message pinned.

Shapes and dtypes (eager, and at trace time naming the user's line), NaN/inf under detect_anomaly
(eager forward, eager backward, compiled), code that cannot be traced, ops a backend cannot lower,
corrupt MNIST files, state_dicts that do not fit, truncated checkpoints, corrupt compile-cache
entries and a cache directory that cannot be written.
"""
from __future__ import annotations

import gzip
import os
import re
import warnings

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc import config
from graphc.errors import BackendError, DataError, DTypeError, GraphcError, ShapeError, TraceError

HERE = os.path.basename(__file__)
# numpy's own "invalid value encountered in log" warnings from the NaN cases: the tests check graphc's errors.
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def line_of(marker):
    """The line number in this file of the line ending with `# <marker>`."""
    with open(__file__) as fh:
        for i, line in enumerate(fh, 1):
            if line.rstrip().endswith(f"# {marker}"):
                return i
    raise AssertionError(marker)


def at(marker):
    return re.escape(f"at {HERE}:{line_of(marker)}")


# --- shapes and dtypes ---------------------------------------------------------------------------

def test_eager_shape_mismatch_names_op_shapes_and_line():
    a, b = graphc.randn(2, 3), graphc.randn(4)
    with pytest.raises(ShapeError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast") as info:
        a + b  # eager-broadcast
    assert re.search(at("eager-broadcast"), str(info.value))
    with pytest.raises(ShapeError, match=r"matmul: inner dimensions differ: \(2, 3\) @ \(4, 2\)"):
        graphc.randn(2, 3) @ graphc.randn(4, 2)


def test_eager_dtype_mismatch():
    with pytest.raises(DTypeError, match=r"matmul: expected a floating-point tensor, got int64"):
        graphc.tensor([1, 2]) @ graphc.tensor([[1], [2]])
    with pytest.raises(DTypeError, match=r"cross_entropy: expected class-index targets of an integer dtype"):
        F.cross_entropy(graphc.randn(3, 4), graphc.randn(3))


@pytest.mark.parametrize("backend", ["interpreter", "numba_cpu"])
def test_trace_time_shape_error_names_the_users_line(backend):
    w = graphc.ones(3, 2)

    def f(x):
        h = x * 2.0
        return h @ w  # trace-shape

    with pytest.raises(ShapeError, match=r"matmul: inner dimensions differ: \(2, 4\) @ \(3, 2\)") as info:
        graphc.compile(f, backend=backend)(graphc.randn(2, 4))
    assert re.search(at("trace-shape"), str(info.value))
    assert "return h @ w" in str(info.value)


def test_trace_time_dtype_error_names_the_users_line():
    def f(x, y):
        return F.cross_entropy(x, y)  # trace-dtype

    with pytest.raises(DTypeError, match="expected class-index targets") as info:
        graphc.compile(f, backend="interpreter")(graphc.randn(3, 4), graphc.randn(3))
    assert re.search(at("trace-dtype"), str(info.value))


def test_compiled_gather_index_out_of_range_names_the_users_line():
    def f(x, i):
        return x.gather(1, i)  # compiled-gather

    with pytest.raises(ShapeError, match=r"gather: index 5 is out of bounds for dimension 1 with size 3") as info:
        graphc.compile(f, backend="interpreter")(graphc.randn(2, 3), graphc.tensor([[0], [5]]))
    assert re.search(at("compiled-gather"), str(info.value)) and "help: valid indices are 0 .. 2" in str(info.value)


def test_trace_time_einsum_mismatch_names_the_users_line():
    def f(x):
        return graphc.einsum("ij,jk->ik", x, x)  # trace-einsum

    with pytest.raises(ShapeError, match=r"einsum: subscript 'j' has size 3 and 2 in 'ij,jk->ik'") as info:
        graphc.compile(f, backend="interpreter")(graphc.randn(2, 3))
    assert re.search(at("trace-einsum"), str(info.value))


# --- NaN / inf under detect_anomaly ------------------------------------------------------------------

def test_anomaly_eager_forward_names_op_and_line():
    x = graphc.tensor([1.0, -1.0, 2.0], requires_grad=True)
    with pytest.raises(GraphcError, match=r"log: produced NaN \(1 of 3\) from finite inputs") as info:
        with graphc.detect_anomaly():
            graphc.log(x)  # anomaly-forward
    text = str(info.value)
    assert re.search(at("anomaly-forward"), text)
    assert "inputs: f32[3]" in text and "help: log of zero or of a negative number" in text


def test_anomaly_eager_backward_names_the_vjp_and_the_forward_line():
    z = graphc.tensor([0.0, 1.0, 4.0], requires_grad=True)
    with graphc.autograd.detect_anomaly():
        s = graphc.sqrt(z).sum()  # anomaly-backward-forward
        with pytest.raises(GraphcError, match=r"sqrt backward: the gradient became inf \(1 of 3\) in backward: "
                                              r"op 'div' of the VJP of 'sqrt'") as info:
            s.backward()  # anomaly-backward-call
    text = str(info.value)
    assert re.search(at("anomaly-backward-forward"), text)
    assert f"backward called at {HERE}:{line_of('anomaly-backward-call')}" in text


def test_anomaly_input_already_bad_says_it_came_from_outside():
    x = graphc.tensor([1.0, float("nan")])
    with pytest.raises(GraphcError, match="its input 0 already holds non-finite values"):
        with graphc.detect_anomaly():
            x * 2.0


def test_anomaly_is_off_outside_the_block_and_with_check_nan_false():
    x = graphc.tensor([-1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(graphc.log(x).numpy()).all()
        with graphc.detect_anomaly(check_nan=False):
            assert np.isnan(graphc.log(x).numpy()).all()
    assert not graphc.debug.is_anomaly_enabled()


def test_set_detect_anomaly_switches_on_and_off():
    x = graphc.tensor([0.0])
    graphc.autograd.set_detect_anomaly(True)
    try:
        with pytest.raises(GraphcError, match=r"div: produced NaN \(1 of 1\) from finite inputs"):
            x / x
    finally:
        graphc.autograd.set_detect_anomaly(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan((x / x).numpy()).all()
    with graphc.autograd.set_detect_anomaly(True):
        assert graphc.debug.is_anomaly_enabled()
    assert not graphc.debug.is_anomaly_enabled()


@pytest.mark.parametrize("backend", ["interpreter", "numba_cpu"])
def test_anomaly_compiled_names_the_first_node(backend):
    w = nn.Parameter(graphc.tensor([1.0, 2.0]))

    def f(x):
        h = x * w
        return (graphc.log(h) * 2.0).sum()  # anomaly-compiled

    step = graphc.compile(f, backend=backend)
    assert np.isfinite(step(graphc.tensor([1.0, 1.0])).numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(step(graphc.tensor([-1.0, 1.0])).numpy())      # no check outside the block
        with pytest.raises(GraphcError, match=r"log: produced NaN \(1 of 2\) in compiled graph `f`") as info:
            with graphc.detect_anomaly():
                step(graphc.tensor([-1.0, 1.0]))
    text = str(info.value)
    assert re.search(at("anomaly-compiled"), text)
    assert "= log %" in text


def test_anomaly_compiled_input_that_is_already_nan():
    w = nn.Parameter(graphc.tensor([1.0, float("nan")]))
    step = graphc.compile(lambda x: (x * w).sum(), backend="interpreter")
    with pytest.raises(GraphcError, match=r"graph input %.* \(param\) already holds NaN"):
        with graphc.detect_anomaly():
            step(graphc.tensor([1.0, 1.0]))


# --- code that cannot be traced -------------------------------------------------------------------

@pytest.mark.parametrize("body, what", [
    (lambda x: x.sum().item() * x, r"\.item\(\)"),
    (lambda x: x.numpy(), r"\.numpy\(\)"),
    (lambda x: float(x.sum()) * x, r"float\(tensor\)"),
])
def test_untraceable_reads(body, what):
    with pytest.raises(TraceError, match=what + ": cannot read a tensor's value inside @graphc.compile"):
        graphc.compile(body, backend="interpreter", fullgraph=True)(graphc.randn(2, 2))


def test_python_branch_on_a_tensor_names_line_and_way_out():
    def f(x):
        if x.sum() > 0:  # untraceable-if
            return x
        return -x

    with pytest.raises(TraceError, match=r"bool\(tensor\)") as info:
        graphc.compile(f, backend="interpreter", fullgraph=True)(graphc.randn(2, 2))
    assert re.search(at("untraceable-if"), str(info.value))
    assert "graphc.where(cond, a, b)" in str(info.value)


def test_a_failed_trace_leaves_parameters_untouched():
    net = nn.Linear(2, 2)
    before = net.weight.detach().numpy().copy()

    def f(x):
        y = net(x)
        return y.sum().item()

    with pytest.raises(TraceError):
        graphc.compile(f, backend="interpreter", fullgraph=True)(graphc.randn(3, 2))
    assert isinstance(net.weight._value, np.ndarray)
    np.testing.assert_array_equal(net.weight.detach().numpy(), before)


# --- ops a backend cannot lower ---------------------------------------------------------------------

def test_integer_matmul_is_refused_by_numba_cpu_naming_op_and_backend():
    from graphc.backends import get_backend
    from graphc.ir import Graph
    g = Graph("int_mm")
    a = g.add_input((2, 3), np.int64, "data", "a")
    b = g.add_input((3, 2), np.int64, "data", "b")
    g.outputs.append(g.add_node("matmul", [a, b], shape=(2, 2), dtype=np.int64))
    with pytest.raises(BackendError, match=r"matmul: numba_cpu lowers float matmuls only, got int64 @ int64"):
        get_backend("numba_cpu").compile(g)


def test_an_op_without_a_numba_kernel_runs_as_an_extern(monkeypatch):
    """An op with only an impl runs on numba_cpu as an extern kernel: its impl on the host."""
    from graphc.ops import OPAQUE, OPS, OpDef
    from graphc.tensor import apply
    fake = OpDef(name="fake_softsign", kind=OPAQUE, infer=lambda x: (tuple(x.shape), x.dtype),
                 impl=lambda x: x / (1 + np.abs(x)), nondiff=True, doc="x / (1 + |x|)")
    monkeypatch.setitem(OPS, "fake_softsign", fake)

    def f(x):
        return apply("fake_softsign", x) * 2.0  # fake-op

    x = graphc.tensor([1.0, -3.0])
    np.testing.assert_allclose(graphc.compile(f, backend="interpreter")(x).numpy(), [1.0, -1.5])
    compiled = graphc.compile(f, backend="numba_cpu")
    np.testing.assert_allclose(compiled(x).numpy(), [1.0, -1.5])
    assert "def extern_fake_softsign_" in compiled.source()


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown backend 'tpu'"):
        graphc.compile(lambda x: x * 2, backend="tpu")(graphc.randn(2))


# --- MNIST files --------------------------------------------------------------------------------------

def _idx(array, ndim):
    array = np.asarray(array, dtype=np.uint8)
    header = (0x0800 | ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _mnist_root(tmp_path, images=None, labels=None, gz_images=True):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = _idx(np.zeros((3, 28, 28)), 3) if images is None else images
    labels = _idx([1, 2, 3], 1) if labels is None else labels
    if gz_images:
        (raw / "train-images-idx3-ubyte.gz").write_bytes(images)
    else:
        (raw / "train-images-idx3-ubyte").write_bytes(images)
    (raw / "train-labels-idx1-ubyte").write_bytes(labels)
    return str(tmp_path)


@pytest.mark.parametrize("images, labels, gz, message", [
    (gzip.compress(_idx(np.random.default_rng(0).integers(0, 256, (3, 28, 28)), 3))[:1000], None, True,
     "the gzip stream is truncated"),
    (b"this is not gzip at all", None, True, "not a valid gzip file"),
    (gzip.compress(_idx(np.zeros(4), 1)), None, True, r"wrong IDX magic number 0x00000801, expected 0x00000803"),
    (b"", None, False, r"wrong IDX magic number missing \(the file is shorter than 4 bytes\)"),
    (_idx(np.zeros((3, 28, 28)), 3)[:-100], None, False, r"truncated: the header's sizes \[3, 28, 28\] need 2352"),
    (_idx(np.zeros((3, 28, 28)), 3)[:10], None, False, r"the IDX header is truncated \(10 bytes"),
    (_idx(np.zeros((2, 28, 28)), 3), None, False, "holds 2 images but .* holds 3 labels"),
    (_idx(np.zeros((3, 20, 20)), 3), None, False, "images are 20x20, expected 28x28"),
    (None, _idx([1, 12, 3], 1), False, "label 12 is out of range for 10 classes"),
], ids=["truncated-gz", "not-gzip", "wrong-magic", "empty", "short-data", "short-header", "count-mismatch",
        "wrong-size", "label-range"])
def test_corrupt_or_truncated_mnist_files(tmp_path, images, labels, gz, message):
    root = _mnist_root(tmp_path, images, labels, gz_images=gz)
    with pytest.raises(DataError, match=message):
        graphc.vision.datasets.MNIST(root=root, train=True)


# --- state_dicts and checkpoints -------------------------------------------------------------------------

def test_state_dict_with_wrong_keys_or_shapes():
    net = nn.Sequential(nn.Linear(3, 2))
    sd = net.state_dict()
    with pytest.raises(DataError, match=r'Missing key\(s\) in state_dict: "0.bias"'):
        net.load_state_dict({"0.weight": sd["0.weight"]})
    with pytest.raises(DataError, match=r'Unexpected key\(s\) in state_dict: "0.extra"'):
        net.load_state_dict({**sd, "0.extra": sd["0.bias"]})
    before = net[0].weight.detach().numpy().copy()
    with pytest.raises(DataError, match=r"size mismatch for 0.weight: copying a param with shape "
                                        r"graphc.Size\(\[3, 3\]\) from checkpoint"):
        net.load_state_dict({"0.weight": graphc.randn(3, 3), "0.bias": sd["0.bias"]})
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), before)
    result = net.load_state_dict({"0.weight": sd["0.weight"]}, strict=False)
    assert list(result.missing_keys) == ["0.bias"]


def test_optimizer_state_dict_that_does_not_fit():
    a = nn.Linear(3, 2)
    opt = graphc.optim.SGD(a.parameters(), lr=0.1)
    other = graphc.optim.SGD(nn.Linear(3, 2).parameters(), lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0]["params"] = [0]
    with pytest.raises(GraphcError, match="different number of parameter groups or parameters"):
        other.load_state_dict(sd)


def test_truncated_and_garbage_checkpoints(tmp_path):
    path = tmp_path / "ckpt.pt"
    graphc.save({"w": graphc.randn(64, 64), "step": 3}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"the file is truncated or corrupt \(its zip directory cannot be read\)"):
        graphc.load(str(path))
    path.write_bytes(b"")
    with pytest.raises(DataError, match="the file is empty"):
        graphc.load(str(path))
    path.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(DataError, match="not a graphc checkpoint"):
        graphc.load(str(path))
    with pytest.raises(DataError, match="no such file"):
        graphc.load(str(tmp_path / "missing.pt"))


# --- the compile cache ------------------------------------------------------------------------------------

def _tiny(x):
    return graphc.tanh(x) * 3.0 + 1.0


def test_corrupt_compile_cache_entry_is_rebuilt_and_logged(tmp_path, capsys):
    import sys
    from graphc.backends.codegen import loader
    x = graphc.tensor([0.5, -0.5])
    want = np.tanh([0.5, -0.5]) * 3 + 1
    with config.override(cache_dir=str(tmp_path), log="cache"):
        step = graphc.compile(_tiny, backend="numba_cpu")
        np.testing.assert_allclose(step(x).numpy(), want, rtol=1e-6)
        [entry] = [p for p in tmp_path.iterdir() if p.name.startswith("graphc_") and p.suffix == ".py"]
        source = entry.read_text()
        entry.write_text(source[: len(source) // 3])            # a crash mid-write of an older graphc
        sys.modules.pop(loader.module_path(source, str(tmp_path))[1], None)   # as in a new process
        capsys.readouterr()
        again = graphc.compile(_tiny, backend="numba_cpu")
        np.testing.assert_allclose(again(x).numpy(), want, rtol=1e-6)
    err = capsys.readouterr().err
    assert re.search(r"\[graphc:cache\] cache entry .*graphc_\w+\.py is corrupt or truncated; rebuilding it", err)
    assert entry.read_text() == source


def test_corrupt_numba_cache_files_are_dropped_and_rebuilt(tmp_path, capsys):
    import sys
    from graphc.backends.codegen import loader
    x = graphc.tensor([0.25])
    with config.override(cache_dir=str(tmp_path), log="cache"):
        step = graphc.compile(_tiny, backend="numba_cpu")
        step(x)
        [entry] = [p for p in tmp_path.iterdir() if p.name.startswith("graphc_") and p.suffix == ".py"]
        cached = [p for p in (tmp_path / "__pycache__").iterdir() if p.name.startswith(entry.stem + ".")]
        assert cached, "numba wrote no cache files"
        for p in cached:
            p.write_bytes(b"\x00garbage" * 3)
        sys.modules.pop(loader.module_path(entry.read_text(), str(tmp_path))[1], None)
        capsys.readouterr()
        again = graphc.compile(_tiny, backend="numba_cpu")
        np.testing.assert_allclose(again(x).numpy(), np.tanh([0.25]) * 3 + 1, rtol=1e-6)
    assert re.search(r"\[graphc:cache\] loading cached kernels failed \(\w+: .*\); rebuilding", capsys.readouterr().err)


def test_unwritable_cache_directory_falls_back_and_warns_once(tmp_path, monkeypatch):
    from graphc.backends.codegen import loader
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(loader, "_fallback_warned", False)
    # A directory below a regular file can never be created, even by root (for whom chmod 0o555 stops nothing).
    with config.override(cache_dir=str(blocker / "cache")):
        with pytest.warns(UserWarning, match=r"the kernel cache directory .* is not writable .*; caching in .* "
                                             r"instead\. Set GRAPHC_CACHE_DIR") as record:
            a = graphc.compile(_tiny, backend="numba_cpu")(graphc.tensor([0.0]))
            b = graphc.compile(lambda x: x * 2.0 + 1.0, backend="numba_cpu")(graphc.tensor([1.0]))
    assert len([w for w in record if "not writable" in str(w.message)]) == 1
    np.testing.assert_allclose(a.numpy(), [1.0])
    np.testing.assert_allclose(b.numpy(), [3.0])
