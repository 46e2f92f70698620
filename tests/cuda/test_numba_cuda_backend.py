"""The numba_cuda backend on a machine without a GPU.

NUMBA_ENABLE_CUDASIM must be set before numba is imported, and the rest of the suite imports numba
normally, so the simulator and PTX checks run `python benchmarks/cuda_selftest.py ...`
in subprocesses (as many at a time as there are cores, all started when the first test runs):

* kinds  (simulator): every kernel kind the backend emits, on tiny shapes, against the interpreter;
* mlp    (simulator): two compiled seed-MLP steps at batch 2 against eager (losses, params, grads);
* ptx    (no simulator, no GPU): every kernel of the seed MLP and CNN steps (batch 64) compiled to
  PTX for sm_80 and sm_90 and assembled by ptxas; the kinds' graphs for sm_80.

Code generation and the error messages are checked in-process.
"""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:         # benchmarks.seed_models
    sys.path.insert(0, ROOT)
HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
needs_numba_cuda = pytest.mark.skipif(not HAVE_NUMBA_CUDA, reason="numba-cuda is not installed "
                                      "(pip install -r .ci/cuda-requirements.txt)")
SKIPPED = 3     # selftest's exit status for 'cannot run here'
SELFTEST = os.path.join(ROOT, "benchmarks", "cuda_selftest.py")
TIMEOUT = 900

NO_GPU_SCRIPT = r"""
import numpy as np, graphc
from graphc.backends.numba_cuda.device import why_unavailable
from numba import cuda
if why_unavailable(cuda) is None:
    print("GPU-PRESENT")
else:
    try:
        graphc.compile(lambda x: x * 2, backend="numba_cuda")(graphc.tensor(np.ones(2, np.float32)))
    except graphc.GraphcError as exc:
        print(type(exc).__name__)
        print(exc)
"""

LATE_SIM_SCRIPT = r"""
import os, numba, numpy as np
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
import graphc
try:
    graphc.compile(lambda x: x * 2, backend="numba_cuda")(graphc.tensor(np.ones(2, np.float32)))
except graphc.GraphcError as exc:
    print(type(exc).__name__)
    print(exc)
"""

JOBS = {    # the longest first
    "ptx_seed_80": (False, [SELFTEST, "ptx", "--cc", "80", "--graphs", "seed"]),
    "ptx_seed_90": (False, [SELFTEST, "ptx", "--cc", "90", "--graphs", "seed"]),
    "ptx_cases": (False, [SELFTEST, "ptx", "--cc", "80", "--graphs", "cases"]),
    "kinds": (True, [SELFTEST, "kinds"]),
    "mlp": (True, [SELFTEST, "mlp", "--batch", "2", "--steps", "2"]),
    "no_gpu": (False, ["-c", NO_GPU_SCRIPT]),
    "late_sim": (False, ["-c", LATE_SIM_SCRIPT]),
}


def _env(simulator):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONWARNINGS"] = "ignore"
    return env


class Jobs:
    """Runs the subprocess checks, as many at a time as there are cores (the longest first);
    `result(name)` waits for one and returns (exit status, output)."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor
        self.pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        self.futures = {name: self.pool.submit(self._run, sim, args) for name, (sim, args) in JOBS.items()}

    @staticmethod
    def _run(simulator, args):
        try:
            proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(simulator), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
            return proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as exc:
            out = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else (exc.output or "")
            return -1, f"{out}\n(timed out after {TIMEOUT}s)"

    def result(self, name):
        return self.futures[name].result()

    def close(self):
        for future in self.futures.values():
            future.cancel()
        self.pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def jobs():
    if not HAVE_NUMBA_CUDA:
        pytest.skip("numba-cuda is not installed (pip install -r .ci/cuda-requirements.txt)")
    j = Jobs()
    yield j
    j.close()


def _check(jobs, name):
    rc, out = jobs.result(name)
    if rc == SKIPPED:
        pytest.skip(out.strip().splitlines()[-1] if out.strip() else "skipped")
    assert rc == 0, out
    return out


# --- simulator ------------------------------------------------------------------------------------
@needs_numba_cuda
def test_every_kernel_kind_matches_the_interpreter_under_the_simulator(jobs):
    out = _check(jobs, "kinds")
    covered = set(next(ln for ln in out.splitlines() if ln.startswith("covered kinds:")).split(":")[1].split())
    expected = {"elementwise", "reduce", "matmul_direct", "matmul_tiled", "conv2d", "conv2d_grad_input",
                "conv2d_grad_weight", "maxpool2d_argmax", "maxpool2d_gather", "maxpool2d_scatter", "getitem",
                "getitem_grad", "concat", "view", "const", "store", "uniform", "one_hot"}
    assert expected <= covered, f"not exercised: {sorted(expected - covered)}\n{out}"
    assert "ok   lazy-sync" in out and "ok   one_hot-error" in out, out


@needs_numba_cuda
def test_seed_mlp_two_steps_match_eager_under_the_simulator(jobs):
    out = _check(jobs, "mlp")
    assert out.count("ok   step") == 2, out
    assert "launches per step: " in out, out


# --- PTX ------------------------------------------------------------------------------------------
@needs_numba_cuda
def test_seed_mlp_and_cnn_kernels_compile_to_ptx_for_sm80_and_sm90(jobs):
    for cc in ("80", "90"):
        out = _check(jobs, f"ptx_seed_{cc}")
        for graph in ("mlp_b64", "cnn_b64"):
            assert f"ok   ptx {graph} sm_{cc}" in out, out


@needs_numba_cuda
def test_every_kernel_kind_compiles_to_ptx(jobs):
    out = _check(jobs, "ptx_cases")
    assert "0 failed" in out, out


# --- errors ---------------------------------------------------------------------------------------
@needs_numba_cuda
def test_no_gpu_gives_a_backend_error_naming_what_is_missing(jobs):
    rc, out = jobs.result("no_gpu")
    if "GPU-PRESENT" in out:
        pytest.skip("this machine has a GPU")
    assert rc == 0, out
    assert out.startswith("BackendError"), out
    assert "no CUDA driver found" in out or "no GPU found" in out, out
    assert "backend='numba_cpu'" in out and "NUMBA_ENABLE_CUDASIM=1" in out, out
    assert "Traceback" not in out, out


@needs_numba_cuda
def test_simulator_switched_on_too_late_is_explained(jobs):
    rc, out = jobs.result("late_sim")
    assert rc == 0, out
    assert "NUMBA_ENABLE_CUDASIM=1 was set after numba had been imported" in out, out


def test_missing_numba_cuda_package_is_explained(monkeypatch):
    import graphc
    from graphc.backends.numba_cuda import device
    real = importlib.util.find_spec
    monkeypatch.setattr(device.importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    with pytest.raises(graphc.errors.BackendError) as info:
        graphc.compile(lambda x: x * 2, backend="numba_cuda")(graphc.tensor(np.ones(2, np.float32)))
    text = str(info.value)
    assert "numba-cuda package is not installed" in text
    assert "pip install 'numba-cuda[cu12]'" in text and "backend='numba_cpu'" in text


# --- code generation (no device) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp_generated():
    import graphc
    from benchmarks.seed_models import build
    from graphc.backends.numba_cuda import generate
    graphc.manual_seed(0)
    _, _, _, step = build("mlp", graphc)
    compiled = graphc.compile(step, backend="interpreter")
    rng = np.random.default_rng(3)
    compiled(graphc.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32)),
             graphc.tensor(rng.integers(0, 10, 64).astype(np.int64)))
    return generate(compiled.graph())


def test_generated_module_is_readable_and_self_contained(mlp_generated):
    src = mlp_generated.source
    ast.parse(src)
    assert "device=True" not in src                      # a device function would need a GPU to compile
    assert "from numba.cuda import" not in src           # cuda.grid etc. through the module
    assert src.count("@cuda.jit(cache=True)") == len(mlp_generated.kernels)
    assert "def fused_add_relu_gt_" in src
    assert "# %3: f32[64,128] = add %2, %fc1.bias" in src
    assert "cuda.shared.array((16, 17), np.float32)" in src      # the tiled matmul (batch 64)
    assert "cuda.syncthreads()" in src and "cuda.grid(1)" in src


def test_driver_launches_every_kernel_once_in_order(mlp_generated):
    src = mlp_generated.source
    run = src[src.index("    def run("):]
    launched = [ln.strip().split("(")[0][len("launch_"):] for ln in run.splitlines() if ln.strip().startswith("launch_")]
    assert launched == [k.name for k in mlp_generated.kernels]
    assert len(launched) == 29         # 43 fused kernels of the CPU backend less views and consts
    # the learning rate is a by-value kernel argument: no copy per step, no recompile when it changes
    assert "def run(s" in run


def test_transposed_weights_are_read_in_place(mlp_generated):
    """fc1's w.T is a view: the kernels index the [128,784] weight with swapped strides, no copy kernel."""
    src = mlp_generated.source
    assert "transpose" not in src.split("def bind")[1]
    assert "sb[tx, ty] = b[kl + n * 784] if kl < 784 and n < 128" in src
