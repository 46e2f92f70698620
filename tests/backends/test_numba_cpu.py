"""The numba CPU backend: fusion, the generated source, steady-state memory, the disk cache, op parity.

    relu(x @ w.T + b)          -> kernels: matmul, fused_add_relu          (fusion counts, like tinygrad's)
    compiled.source()          -> @njit kernels named after what they hold, IR lines as comments
    200 more training steps    -> no new arrays: parameters and pools stay where they are
    a second process           -> loads the kernels from GRAPHC_CACHE_DIR instead of compiling them
    a corrupt cache entry      -> logged under GRAPHC_LOG=cache and rebuilt

numba compiles cost seconds per graph: the tests share graphs (the session's seed MLP step, one tiny
linear function) and batch the op cases into a few graphs.
"""
import gc
import glob
import json
import os
import re
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import graphc
from graphc.backends.codegen import loader
from graphc.config import override
from graphc.passes.fusion import fuse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.basename(__file__)


def compute_kernels(fused):
    """Kernels that do work: views are strides and consts are literals, neither becomes a loop."""
    return [k for k in fused.kernels if k.kind not in ("view", "const")]


def traced_graph(fn, *args):
    compiled = graphc.compile(fn, backend="interpreter")
    compiled(*args)
    return compiled.graph()


# --- fusion counts ---------------------------------------------------------------------------------------

def linear_relu(x, w, b):
    return graphc.relu(x @ w.T + b)  # <- linear_relu


def five_ops(x):
    return (((x * 2.0 + 1.0).exp() - 3.0) / 4.0).tanh()


def softmax_like(x):
    e = (x - x.amax(1, keepdim=True)).exp()
    return e / e.sum(1, keepdim=True)


def linear_args():
    rng = np.random.default_rng(0)
    return [graphc.tensor(rng.standard_normal(s).astype(np.float32)) for s in ((4, 5), (3, 5), (3,))]


def test_linear_relu_is_a_matmul_and_one_fused_elementwise_kernel():
    kernels = compute_kernels(fuse(traced_graph(linear_relu, *linear_args())))
    assert [k.kind for k in kernels] == ["matmul", "elementwise"], kernels
    assert [n.op for n in kernels[1].nodes] == ["add", "relu"]
    assert kernels[1].name.startswith("fused_add_relu")


def test_a_chain_of_elementwise_ops_is_one_kernel():
    kernels = compute_kernels(fuse(traced_graph(five_ops, graphc.randn(4, 5))))
    assert len(kernels) == 1, kernels
    assert [n.op for n in kernels[0].nodes] == ["mul", "add", "exp", "sub", "div", "tanh"]
    assert kernels[0].kind == "elementwise"


def test_softmax_is_one_rowwise_kernel_and_fusion_says_so(capfd):
    graph = traced_graph(softmax_like, graphc.randn(4, 5))
    with override(log="fusion"):
        kernels = compute_kernels(fuse(graph))
    assert [k.kind for k in kernels] == ["rowwise"], kernels
    assert sum(len(k.nodes) for k in kernels) == len(graph.nodes)
    # exp feeds both the sum and the division: the elementwise rule refuses, the row-wise rule merges.
    log = capfd.readouterr().err
    assert "[graphc:fusion] not fusing" in log and "row-wise kernel over [4, 5]" in log, log


def test_training_step_kernels_cover_every_node_once(seed_steps):
    """On the seed MLP step: every node is in exactly one kernel, and fusion cuts the count well below."""
    net, opt, compiled, x, y = seed_steps.mlp_numba()
    graph = compiled.graph()
    fused = fuse(graph)
    ids = [id(n) for k in fused.kernels for n in k.nodes]
    assert sorted(ids) == sorted(id(n) for n in graph.nodes)
    assert len(compute_kernels(fused)) < len(graph.nodes) / 2
    assert compiled.stats()["kernels"] == len(fused.kernels)


# --- the generated source ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def linear_numba():
    compiled = graphc.compile(linear_relu, backend="numba_cpu")
    args = linear_args()
    out = compiled(*args)
    return compiled, args, out


def test_linear_relu_on_numba_matches_numpy(linear_numba):
    compiled, (x, w, b), out = linear_numba
    want = np.maximum(x.numpy() @ w.numpy().T + b.numpy(), 0)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6, atol=1e-6)
    x2 = graphc.tensor(np.ones((4, 5), dtype=np.float32))
    np.testing.assert_allclose(compiled(x2, w, b).numpy(), np.maximum(x2.numpy() @ w.numpy().T + b.numpy(), 0),
                               rtol=1e-6, atol=1e-6)
    assert compiled.stats()["compiles"] == 1


def test_source_has_njit_kernels_named_after_their_ops_with_ir_comments(linear_numba):
    compiled = linear_numba[0]
    src = compiled.source()
    assert src == compiled.source("python")
    compile(src, "<generated>", "exec")      # valid Python
    kernels = re.findall(r"@njit\(([^)]*)\)\s*\ndef (\w+)\(", src)
    names = [name for _, name in kernels]
    assert "driver" in names
    assert any(re.fullmatch(r"fused_add_relu_\d+", n) for n in names), names
    assert any(re.fullmatch(r"matmul_\d+", n) for n in names), names
    assert all("cache=True" in flags for flags, _ in kernels)
    # Each kernel lists the IR lines it implements, with the user's file:line.
    line = next(i for i, text in enumerate(open(__file__), 1) if "# <- linear_relu" in text)
    body = src[src.index("def fused_add_relu_"):]
    body = body[:body.index("\n\n")]
    assert re.search(rf"# %\d+: f32\[4,3\] = add %\d+, %b\s+\({re.escape(HERE)}:{line}\)", body), body
    assert re.search(rf"# %\d+: f32\[4,3\] = relu %\d+\s+\({re.escape(HERE)}:{line}\)", body), body
    assert "generated by graphc" in src and "numba" in src.splitlines()[2]


def test_source_llvm_and_asm(linear_numba):
    compiled = linear_numba[0]
    llvm = compiled.source("llvm")
    asm = compiled.source("asm")
    assert llvm.strip() and asm.strip()
    assert "define " in llvm
    assert "driver" in llvm and "driver" in asm
    assert compiled.source("fused").count("kernel ") >= 2
    assert "pool" in compiled.source("plan")
    with pytest.raises(graphc.GraphcError, match="unknown source kind"):
        compiled.source("ptx")


# --- steady-state memory ---------------------------------------------------------------------------------

def test_steady_state_step_allocates_no_arrays(seed_steps):
    net, opt, compiled, x, y = seed_steps.mlp_numba()
    for _ in range(3):
        compiled(x, y)
    runner = compiled.last.run_graph
    tensors = list(net.parameters()) + [v for s in opt.state.values() for v in s.values()]
    where = [(id(t), id(t._value), t._value.__array_interface__["data"][0]) for t in tensors]
    pools = [(id(p), p.__array_interface__["data"][0]) for p in runner.pools]
    before = [t._value.copy() for t in tensors]
    numpy_only = [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]
    tracemalloc.start()
    try:
        # Arrays alive after 200 steps: none more than before (numpy's allocations, cyclic garbage collected).
        gc.collect()
        start = sum(t.size for t in tracemalloc.take_snapshot().filter_traces(numpy_only).traces)
        for _ in range(200):
            compiled(x, y)
        gc.collect()
        end = sum(t.size for t in tracemalloc.take_snapshot().filter_traces(numpy_only).traces)
        # The peak of one step, everything included (the frontend's few Python objects: ~6 KiB).
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        gc.disable()
        try:
            compiled(x, y)
        finally:
            gc.enable()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert end - start <= 0, f"numpy arrays alive grew by {end - start} bytes over 200 steps"
    assert peak < 32 * 1024, f"one steady-state step peaks at {peak} bytes (fc1.weight alone is 392 KiB)"
    assert [(id(t), id(t._value), t._value.__array_interface__["data"][0]) for t in tensors] == where, \
        "a parameter or optimizer state array was replaced instead of updated in place"
    assert [(id(p), p.__array_interface__["data"][0]) for p in runner.pools] == pools
    assert all(not np.array_equal(t._value, b) for t, b in zip(tensors, before)), "the steps did update"
    assert compiled.stats()["compiles"] == 1


# --- the disk cache ---------------------------------------------------------------------------------------

def run_python(code, env_extra=None, timeout=240):
    env = dict(os.environ)
    env.update(env_extra or {})
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONWARNINGS", "ignore")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


SEED_MLP_IN_ANOTHER_PROCESS = """
import json
from tests.conftest import SeedSteps
net, opt, compiled, x, y = SeedSteps().mlp_numba()
s = compiled.stats()
print(json.dumps({"cache": s["cache"], "numba_compile": s["phases"]["numba_compile"],
                  "fc2": net.fc2.bias.detach().numpy().tolist()}))
"""


def test_a_second_process_loads_the_step_from_the_disk_cache(seed_steps, cache_dir):
    net, opt, compiled, x, y = seed_steps.mlp_numba()
    first = compiled.last.run_stats
    files = glob.glob(os.path.join(cache_dir, "graphc_*.py"))
    assert files, "no generated module in GRAPHC_CACHE_DIR"
    assert glob.glob(os.path.join(cache_dir, "__pycache__", "graphc_*.nbi")), "numba wrote no cache index"
    other, _ = run_python(SEED_MLP_IN_ANOTHER_PROCESS)
    assert other["cache"] == "hit", other
    if first["cache"] == "miss":
        assert other["numba_compile"] < first["phases"]["numba_compile"] / 2, (other, first["phases"])
    # The other process ran the same graph from the same weights: its first step gives the same parameters
    # as this process's first step did (the session fixture's batch and initial weights).
    ref_net, _, ref_opt, ref_step = seed_steps.build("mlp", "sgd", lr=0.05, momentum=0.9)
    ref_step(x, y)
    np.testing.assert_allclose(other["fc2"], ref_net.fc2.bias.detach().numpy(), rtol=1e-5, atol=1e-7)


TINY = """
import json, sys
import numpy as np
import graphc

def tiny(x, w):
    return graphc.relu(x @ w.T + 1.0).sum(1)

x = graphc.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
w = graphc.tensor(np.ones((4, 3), dtype=np.float32))
compiled = graphc.compile(tiny, backend="numba_cpu")
out = compiled(x, w)
print(json.dumps({"out": out.numpy().tolist(), "cache": compiled.stats()["cache"]}))
"""
TINY_OUT = [16.0, 52.0]


def corrupt(path, how):
    if how == "truncate":
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 3])
    else:
        with open(path, "wb") as f:
            f.write(b"garbage\n")


def test_corrupt_cache_entries_are_detected_and_rebuilt(tmp_path):
    cache = str(tmp_path / "cache")
    env = {"GRAPHC_CACHE_DIR": cache, "GRAPHC_LOG": "cache"}
    first, err = run_python(TINY, env)
    assert first == {"out": TINY_OUT, "cache": "miss"}
    assert "[graphc:cache]" not in err
    (module,) = glob.glob(os.path.join(cache, "graphc_*.py"))
    numba_files = glob.glob(os.path.join(cache, "__pycache__", "graphc_*.nb[ic]"))
    assert len(numba_files) >= 2, numba_files
    steps = [
        ("a truncated generated module", lambda: corrupt(module, "truncate"), "corrupt or truncated"),
        ("garbage numba index and data files", lambda: [corrupt(p, "garbage") for p in numba_files], "rebuilding"),
    ]
    for what, damage, message in steps:
        damage()
        result, err = run_python(TINY, env)
        assert result["out"] == TINY_OUT, what
        lines = [ln for ln in err.splitlines() if ln.startswith("[graphc:cache]")]
        assert lines, f"{what}: nothing logged under GRAPHC_LOG=cache:\n{err}"
        assert message in err, f"{what}:\n{err}"
        assert result["cache"] == "miss", f"{what}: the kernels were not rebuilt"
    again, err = run_python(TINY, env)
    assert again == {"out": TINY_OUT, "cache": "hit"}, "the rebuilt entry is not a cache hit"
    assert "[graphc:cache]" not in err


@pytest.mark.parametrize("how", ["path_through_a_file", "read_only_dir"])
def test_unwritable_cache_dir_falls_back_with_one_warning(tmp_path, monkeypatch, how):
    if how == "path_through_a_file":
        (tmp_path / "a_file").write_text("not a directory")
        bad = str(tmp_path / "a_file" / "cache")
    else:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        bad = str(tmp_path / "ro")
        os.mkdir(bad, 0o500)
    monkeypatch.setattr(loader, "_fallback_warned", False)
    monkeypatch.setattr(loader, "_fallback_dir", None)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = []
        for fn in (linear_relu, linear_relu):
            compiled = graphc.compile(fn, backend="numba_cpu", options={"cache_dir": bad})
            outs.append(compiled(*linear_args()).numpy())
    ours = [w for w in caught if "cache directory" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert bad in str(ours[0].message) and "GRAPHC_CACHE_DIR" in str(ours[0].message)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert os.listdir(tmp_path / "tmp"), "the fallback cache directory was not used"


# --- op parity: the forward cases on numba_cpu vs the interpreter -----------------------------------------------

cases_module = pytest.importorskip("tests.ops.cases", reason="the op table tests/ops/cases/ is not there")

# Advanced indexing (the `index` and `index_put` ops) has no numba kernel of its own: these cases join
# the parity run once the backend runs kernel-less ops through their table impl on the host.
FORWARD = [c for c in cases_module.CASES if c.traceable]
BATCHED = FORWARD
GROUPS = 3   # a few graphs rather than one: a failure points at a third of the table, compile time is the same


def batched_forward(cases):
    counts = [len(c.shapes) for c in cases]

    def all_cases(*flat):
        outs, k = [], 0
        for c, n in zip(cases, counts):
            outs.append(c.fn(*flat[k:k + n]))
            k += n
        return outs
    return all_cases


def run_forward(cases, backend):
    arrays = [a for c in cases for a in c.inputs(np.float32)]
    compiled = graphc.compile(batched_forward(cases), backend=backend)
    outs = compiled(*[graphc.tensor(a) for a in arrays])
    return [o.detach().numpy() for o in outs], compiled


def compare(cases, got, want):
    bad = []
    for case, g, w in zip(cases, got, want):
        if g.dtype != w.dtype or g.shape != w.shape:
            bad.append(f"{case.name}: {g.dtype}{list(g.shape)} vs interpreter {w.dtype}{list(w.shape)}")
        elif g.dtype.kind in "biu":
            if not np.array_equal(g, w):
                bad.append(f"{case.name}: {g.ravel()[:6]} vs interpreter {w.ravel()[:6]}")
        elif not np.allclose(g, w, rtol=max(case.rtol, 1e-5), atol=max(case.atol, 1e-6), equal_nan=True):
            bad.append(f"{case.name}: {g.ravel()[:6]} vs interpreter {w.ravel()[:6]}")
    return bad


@pytest.mark.parametrize("group", range(GROUPS))
def test_forward_cases_match_the_interpreter(group):
    cases = BATCHED[group::GROUPS]
    got, compiled = run_forward(cases, "numba_cpu")
    want, _ = run_forward(cases, "interpreter")
    assert compiled.stats()["compiles"] == 1
    bad = compare(cases, got, want)
    assert not bad, f"{len(bad)} of {len(cases)} cases differ on numba_cpu:\n" + "\n".join(bad)



CACHED_STEP = """
import numpy as np
import graphc
import graphc.nn.functional as F
rng = np.random.default_rng(0)
w = graphc.nn.Parameter(graphc.tensor(rng.standard_normal((2, 1, 3, 3)).astype(np.float32)))
big = graphc.nn.Parameter(graphc.tensor(rng.standard_normal((500, 600)).astype(np.float32) * 0.01))

def step(x, z, u):
    h = F.max_pool2d(F.relu(F.conv2d(x, w)), 2)      # the max-pool loops split the batch (prange)
    y = z @ big.t()                                   # 600 x 500: a host matmul in row blocks
    v = F.relu(u * 2.0 - 1.0)                         # 1M elements: a prange kernel of the module itself
    loss = h.sum() + (y * y).mean() + v.mean(dim=1).sum()
    loss.backward()
    return loss, w.grad, big.grad

x = graphc.tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))
z = graphc.tensor(rng.standard_normal((32, 600)).astype(np.float32))
u = graphc.tensor(rng.standard_normal((1024, 1024)).astype(np.float32))
compiled = graphc.compile(step, backend="numba_cpu")
got = [t.detach().numpy().copy() for t in compiled(x, z, u)]
for p in (w, big):
    p.grad = None
want = [t.detach().numpy() for t in step(x, z, u)]
for g, e in zip(got, want):
    np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
print(compiled.stats()["cache"])
"""


def test_a_step_with_parallel_loops_reloads_from_the_disk_cache(tmp_path):
    """Compiled in one process, loaded from numba's disk cache in the next: a cached @njit kernel that
    called a parallel numba function of another module (the max-pool loops, GEMM row blocks) segfaulted
    on that load, so such work is called from the host driver; the module's own prange kernels load fine."""
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", CACHED_STEP], env=env, capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    assert [r.stdout.split()[-1] for r in runs] == ["miss", "hit"]
    source = next(p for p in tmp_path.glob("graphc_*.py")).read_text()
    assert "_graphc_matmul_into(" in source and "argmax" in source and "in prange(" in source
