"""Parity checks of the numba_cuda backend, runnable on a GPU, under the simulator, or (PTX) on neither.

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/cuda_selftest.py kinds   # every kernel kind vs the interpreter
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/cuda_selftest.py mlp     # two seed-MLP steps vs eager
    python benchmarks/cuda_selftest.py cnn --batch 16 --dropout       # on a GPU: the seed CNN too
    python benchmarks/cuda_selftest.py ptx --cc 80 90                 # every kernel -> PTX (+ ptxas)

Prints one line per check and a closing 'N passed, M failed' line; exits 1 when a check fails.
The simulator must be switched on before numba is imported, hence a separate process: the test
suite (tests/cuda) runs this script in subprocesses.  It lives outside the package because it
builds whole models (graphc.nn, graphc.cli.models): the backend itself never imports them.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:    # run as a script from a checkout: this checkout's graphc
    sys.path.insert(0, ROOT)

RTOL = 1e-5
SKIPPED = 3     # exit status: the check could not run here (reason printed)


# --- the cases: each builds fresh state from a seed and returns (fn, args, state tensors) -------
def _rand(rng, *shape, grad=False, scale=1.0):
    import graphc
    return graphc.tensor((rng.standard_normal(shape) * scale).astype(np.float32), requires_grad=grad)


def case_elementwise(rng):
    """Broadcasting, every math template (erf, isnan, isinf too), comparisons, casts, a 0-d result."""
    import graphc
    b = _rand(rng, 3)

    def fn(x):
        y = (x + b).exp() * x.sigmoid() - x.tanh() + (x.abs() + 1).sqrt() + (x.abs() + 0.5).log()
        z = graphc.where(x > 0, graphc.maximum(x, b), graphc.minimum(x, -b)) + x.clamp(-0.5, 0.5) ** 2
        s = x.sign() * (x >= b).float() + (x != 0).logical_and(x < 1).float() + x.relu() / (1 + x * x)
        big = x * float("inf")          # +-inf, and inf - inf = nan (the simulator raises on log(-1) or 1 / 0)
        s = s + x.erf() + graphc.isnan(big - big).float() - (big * (x > 0).float()).isinf().float()
        return y, z + s, (y * z).sum() / 6.0
    return fn, [_rand(rng, 2, 3)], [b]


def case_reduce(rng):
    """sum / max / argmax over several axes, keepdim, prologues fused into the reduction."""
    import graphc

    def fn(x):
        return (x.sum(dim=(0, 2)), x.amax(dim=1, keepdim=True), x.argmax(dim=2), x.argmax(),
                (x * x + 1).sum(), graphc.logsumexp(x, dim=-1), x.mean(dim=0))
    return fn, [_rand(rng, 2, 3, 5)], []


def case_matmul(rng):
    """Direct (skinny) and tiled products, transposed operands read in place, a batched product."""
    w = _rand(rng, 3, 5)
    big = _rand(rng, 6, 5)
    w4 = _rand(rng, 5, 4)

    def fn(a, c, bt):
        return (a @ w.T,                       # 4x5 @ (3x5).T: a transposed right operand, direct
                c @ big @ big.T,               # 5x6 @ 6x5 @ 5x6 tiled (simulator tiles are 2x2)
                c.T @ c,                       # a transposed left operand, tiled
                bt @ w.T,                      # batched [2,4,5] @ [5,3], direct
                bt @ w4,                       # batched [2,4,5] @ [5,4], tiled
                w4.T @ bt.transpose(1, 2))     # [4,5] @ [2,5,4]: batch from the right operand, a 3-D view
    return fn, [_rand(rng, 4, 5), _rand(rng, 5, 6), _rand(rng, 2, 4, 5)], [w, big, w4]


def case_conv(rng):
    """conv2d with stride/padding, its two gradients, overlapping max-pool windows."""
    import graphc.nn.functional as F
    w1 = _rand(rng, 3, 2, 3, 3, grad=True)
    w2 = _rand(rng, 2, 3, 2, 2, grad=True)

    def fn(x):
        w1.grad = None
        w2.grad = None
        y = F.relu(F.conv2d(x, w1, stride=2, padding=1))
        y = F.conv2d(y, w2)
        p = F.max_pool2d(y, 2, stride=1)
        loss = (p * p).sum()
        loss.backward()
        return loss, w1.grad, w2.grad
    return fn, [_rand(rng, 2, 2, 7, 7)], [w1, w2]


def case_pool(rng):
    """Non-overlapping 2x2 pooling with padding, its gradient (the scatter), argmax ties."""
    import graphc
    import graphc.nn.functional as F
    w = _rand(rng, 1, 3, 1, 1, grad=True)

    def fn(x):
        w.grad = None
        p = F.max_pool2d(x * w, 2, stride=2, padding=1)
        loss = (p * p).sum() + F.max_pool2d(graphc.relu(x), 3).sum()
        loss.backward()
        return loss, p, w.grad
    return fn, [_rand(rng, 2, 3, 5, 6)], [w]


def case_indexing(rng):
    """getitem (ints, slices, negative steps, None), its gradient, concat."""
    import graphc
    w = _rand(rng, 3, 4, grad=True)

    def fn(x):
        w.grad = None
        y = x * w
        a = y[:, 1:3]
        b = y[::-1, ::2]
        c = y[1, None, :2]
        z = graphc.cat([a, b], dim=0)
        loss = (z * z).sum() + c.sum() * 3 + y[2, 3]
        loss.backward()
        return loss, z, w.grad
    return fn, [_rand(rng, 3, 4)], [w]


def case_training(rng):
    """A tiny MLP with dropout (the counter-based RNG), cross_entropy (one_hot), SGD with momentum."""
    import graphc
    import graphc.nn as nn
    import graphc.nn.functional as F
    graphc.manual_seed(int(rng.integers(1 << 30)))
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 3))
    opt = graphc.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def fn(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss
    y = graphc.tensor(rng.integers(0, 3, 4).astype(np.int64))
    return fn, [_rand(rng, 4, 5), y], list(net.parameters()), (net, opt)


def case_adam(rng):
    """Adam: scalar inputs by value (lr, step counts), sqrt/div/pow in the update, optimizer state."""
    import graphc
    import graphc.nn as nn
    net = nn.Linear(3, 2)
    opt = graphc.optim.Adam(net.parameters(), lr=0.01)

    def fn(x):
        opt.zero_grad()
        loss = (net(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    return fn, [_rand(rng, 4, 3)], list(net.parameters()), (net, opt)


def case_store(rng):
    """An update whose new value comes from a matmul: not computed in place, stored after the step."""
    import graphc
    m = _rand(rng, 4, 4)
    v = _rand(rng, 4, 4)

    def fn(a):
        with graphc.no_grad():
            v.copy_(a @ m)
        return v.sum()
    return fn, [_rand(rng, 4, 4)], [m, v]


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


def _state_arrays(state):
    out = []
    for t in state:
        out.append(np.array(t.detach().numpy()))
        if getattr(t, "grad", None) is not None:
            out.append(np.array(t.grad.numpy()))
    return out


def _flatten(result):
    import graphc
    if isinstance(result, graphc.Tensor):
        return [np.array(result.detach().numpy())]
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _flatten(r)]
    return [] if result is None else [np.asarray(result)]


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    if a.dtype.kind in "iub":
        return None if np.array_equal(a, b) else f"integers differ: {a.ravel()[:6]} vs {b.ravel()[:6]}"
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    err = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
    return None if err <= RTOL * scale + 1e-6 else f"max abs error {err:.3g} (scale {scale:.3g})"


def run_case(name, backend="numba_cuda", calls=2, options=None):
    """Run case `name` compiled on `backend` and on the interpreter from the same seed; compare everything."""
    import graphc
    results = {}
    kinds = set()
    for be in ("interpreter", backend):
        rng = np.random.default_rng(sum(map(ord, name)))
        graphc.manual_seed(sum(map(ord, name)))
        made = CASES[name](rng)
        fn, args, state = made[0], made[1], made[2]
        compiled = graphc.compile(fn, backend=be, options=options if be == backend else None)
        outs = []
        for call in range(calls):
            outs.append(_flatten(compiled(*args)))
            if be == backend and options and options.get("sync") == "lazy":
                from graphc.backends.numba_cuda import sync
                sync(compiled)
            outs.append(_state_arrays(state))
        results[be] = outs
        if be == backend:
            fused = compiled.last.run_graph.fused
            kinds = {k.kind for k in fused.kernels}
            src = compiled.source("python")
            if "store_" in src:
                kinds.add("store")
            if "np.uint64(" in src:
                kinds.add("uniform")
            if "one_hot" in src:
                kinds.add("one_hot")
            if "tiles of" in src:
                kinds.add("matmul_tiled")
            if "too small a dim" in src:
                kinds.add("matmul_direct")
    for i, (got, want) in enumerate(zip(results[backend], results["interpreter"])):
        if len(got) != len(want):
            return f"call {i // 2}: {len(got)} results vs {len(want)}", kinds
        for j, (a, b) in enumerate(zip(got, want)):
            problem = _close(a, b)
            if problem:
                what = "output" if i % 2 == 0 else "state"
                return f"call {i // 2}, {what} {j}: {problem}", kinds
    return None, kinds


def check_one_hot_error():
    """An out-of-range class index raises graphc's ShapeError, not a silent zero row."""
    import graphc
    import graphc.nn.functional as F
    logits = graphc.tensor(np.zeros((2, 3), np.float32))

    def fn(x, y):
        return F.cross_entropy(x, y)
    compiled = graphc.compile(fn, backend="numba_cuda")
    try:
        compiled(logits, graphc.tensor(np.array([0, 7], np.int64)))
    except graphc.ShapeError as exc:
        return None if "out of range" in str(exc) else f"unexpected message: {exc}"
    return "no error raised"


def main_kinds(args):
    failed = passed = 0
    covered = set()
    for name in CASES:
        t = time.perf_counter()
        try:
            problem, kinds = run_case(name)
        except Exception:
            problem, kinds = traceback.format_exc(), set()
        covered |= kinds
        tag = f"[{time.perf_counter() - t:.1f}s] kinds: {' '.join(sorted(kinds))}"
        if problem:
            failed += 1
            print(f"FAIL {name}: {problem} {tag}")
        else:
            passed += 1
            print(f"ok   {name} {tag}")
    for label, check in (("lazy-sync", lambda: run_case("training", options={"sync": "lazy"})[0]),
                         ("one_hot-error", check_one_hot_error)):
        try:
            problem = check()
        except Exception:
            problem = traceback.format_exc()
        failed, passed = (failed + 1, passed) if problem else (failed, passed + 1)
        print(f"FAIL {label}: {problem}" if problem else f"ok   {label}")
    print("covered kinds: " + " ".join(sorted(covered)))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main_seed(args):
    """Compiled seed-model steps (the MLP, batch 2, by default) against eager: losses, parameters, grads."""
    import graphc
    sys.path.insert(0, _repo_root())
    from graphc.cli.models import build
    nets = []
    for _ in range(2):
        graphc.manual_seed(1234)
        nets.append(build(args.model, graphc, dropout=args.dropout))
    (net_c, _, _, step_c), (net_e, _, _, step_e) = nets
    compiled = graphc.compile(step_c, backend="numba_cuda")
    rng = np.random.default_rng(7)
    failed = 0
    for i in range(args.steps):
        x = graphc.tensor(((rng.random((args.batch, 1, 28, 28)) - 0.1307) / 0.3081).astype(np.float32))
        graphc.manual_seed(100 + i)      # the same dropout masks for both (counter-based RNG)
        y = graphc.tensor(rng.integers(0, 10, args.batch).astype(np.int64))
        t = time.perf_counter()
        lc = float(compiled(x, y))
        dt = time.perf_counter() - t
        graphc.manual_seed(100 + i)
        le = float(step_e(x, y))
        rel = abs(lc - le) / max(abs(le), 1e-12)
        bad = rel > RTOL
        failed += bad
        print(f"{'FAIL' if bad else 'ok  '} step {i}: loss compiled {lc:.7f} eager {le:.7f} (rel {rel:.1e}, {dt:.2f}s)")
    for (name, pc), (_, pe) in zip(net_c.named_parameters(), net_e.named_parameters()):
        for what, a, b in (("param", pc.detach().numpy(), pe.detach().numpy()),
                           ("grad", pc.grad.numpy(), pe.grad.numpy())):
            rel = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
            bad = rel > RTOL
            failed += bad
            print(f"{'FAIL' if bad else 'ok  '} {what} {name}: max rel error {rel:.1e}")
    stats = compiled.stats()
    print(f"launches per step: {stats['launches_per_step']}, device: {stats['device']}, "
          f"copies per step: {stats['h2d_per_step']} in, {stats['d2h_per_step']} out")
    total = args.steps + 2 * len(list(net_c.parameters()))
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


# --- PTX ----------------------------------------------------------------------------------------
def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def ptxas_path():
    """ptxas from the nvidia-cuda-nvcc wheel (the NVVM that made the PTX ships with it), else PATH."""
    try:
        import nvidia.cuda_nvcc as nvcc
        for base in list(getattr(nvcc, "__path__", [])):
            cand = os.path.join(base, "bin", "ptxas")
            if os.path.exists(cand):
                return cand
    except ImportError:
        pass
    return shutil.which("ptxas")


def seed_graphs(batch):
    """The final IR graphs of the seed MLP and CNN training steps (traced on the interpreter)."""
    import graphc
    sys.path.insert(0, _repo_root())
    from graphc.cli.models import build
    rng = np.random.default_rng(0)
    out = {}
    for model in ("mlp", "cnn"):
        graphc.manual_seed(0)
        _, _, _, step = build(model, graphc, dropout=True)
        c = graphc.compile(step, backend="interpreter")
        x = graphc.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
        y = graphc.tensor(rng.integers(0, 10, batch).astype(np.int64))
        c(x, y)
        out[f"{model}_b{batch}"] = c.graph()
    return out


def case_graphs():
    """The cases' graphs; the matmul case also with GPU tiles forced on its small matrices."""
    import dataclasses

    import graphc
    from graphc.backends.numba_cuda.layout import GPU
    out = {}
    for name in CASES:
        made = CASES[name](np.random.default_rng(0))
        c = graphc.compile(made[0], backend="interpreter")
        c(*made[1])
        out[f"case_{name}"] = (c.graph(), GPU)
        if name == "matmul":
            out["case_matmul_tiled"] = (c.graph(), dataclasses.replace(GPU, tiled_min=1))
    return out


def main_ptx(args):
    from numba import config
    if config.ENABLE_CUDASIM:
        print("FAIL: PTX needs the real numba-cuda target: unset NUMBA_ENABLE_CUDASIM")
        return 1
    from numba.cuda.cudadrv import nvvm
    if not nvvm.is_available():
        print("SKIP: NVVM (libnvvm, the compiler behind compile_ptx) was not found: "
              "pip install 'numba-cuda[cu12]' or nvidia-cuda-nvcc-cu12")
        return SKIPPED
    from graphc.backends.codegen.loader import load_module
    from graphc.backends.numba_cuda import generate, ptx_of
    from graphc.backends.numba_cuda.layout import GPU
    ccs = [(int(c) // 10, int(c) % 10) for c in args.cc]
    ptxas = None if args.no_ptxas else ptxas_path()
    graphs = {}
    if "seed" in args.graphs:
        graphs.update({name: (g, GPU) for name, g in seed_graphs(args.batch).items()})
    if "cases" in args.graphs:
        graphs.update(case_graphs())
    cache = tempfile.mkdtemp(prefix="graphc-ptx-")
    passed = failed = 0
    try:
        for gname, (graph, target) in graphs.items():
            gen = generate(graph, target)
            module = load_module(gen.source, cache)
            for cc in ccs:
                t = time.perf_counter()
                try:
                    ptx = ptx_of(module, gen, cc)
                except Exception as exc:
                    failed += 1
                    print(f"FAIL ptx {gname} sm_{cc[0]}{cc[1]}: {type(exc).__name__}: {str(exc)[:2000]}")
                    continue
                note = ""
                if ptxas:
                    problem, regs = _assemble(ptxas, ptx, cc, cache)
                    if problem:
                        failed += 1
                        print(f"FAIL ptxas {gname} sm_{cc[0]}{cc[1]}: {problem}")
                        continue
                    note = f", ptxas ok (at most {max(regs.values()) if regs else '?'} registers/thread)"
                passed += 1
                print(f"ok   ptx {gname} sm_{cc[0]}{cc[1]}: {len(ptx)} kernels{note} "
                      f"[{time.perf_counter() - t:.1f}s]")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if not ptxas and not args.no_ptxas:
        print("note: ptxas not found (pip install nvidia-cuda-nvcc-cu12): PTX was generated but not assembled")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _assemble(ptxas, ptx, cc, workdir):
    regs = {}
    for name, text in ptx.items():
        path = os.path.join(workdir, f"{name}.ptx")
        with open(path, "w") as f:
            f.write(text)
        proc = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", path, "-o", os.devnull],
                              capture_output=True, text=True)
        if proc.returncode:
            return f"{name}: {proc.stderr.strip()[:1000]}", regs
        found = re.findall(r"Used (\d+) registers", proc.stderr)
        if found:
            regs[name] = max(int(r) for r in found)
    return None, regs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/cuda_selftest.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("kinds", help="every kernel kind on tiny shapes vs the interpreter")
    for name in ("mlp", "cnn"):
        seed = sub.add_parser(name, help=f"compiled seed-{name.upper()} training steps vs eager")
        seed.add_argument("--batch", type=int, default=2)
        seed.add_argument("--steps", type=int, default=2)
        seed.add_argument("--dropout", action="store_true", help="keep the seed model's dropout layers")
        seed.set_defaults(model=name)
    ptx = sub.add_parser("ptx", help="compile every generated kernel to PTX (no GPU needed)")
    ptx.add_argument("--cc", nargs="+", default=["80", "90"], help="compute capabilities, e.g. 80 90")
    ptx.add_argument("--batch", type=int, default=64)
    ptx.add_argument("--graphs", nargs="+", default=["seed", "cases"], choices=["seed", "cases"])
    ptx.add_argument("--no-ptxas", action="store_true")
    args = parser.parse_args(argv)
    return {"kinds": main_kinds, "mlp": main_seed, "cnn": main_seed, "ptx": main_ptx}[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
