"""The layering, read from the source: which part of graphc may import which.

    ops <- ir <- passes <- backends          (the compiler, bottom to top)
    ops <- tensor/functional/autograd        (the eager core; the op table reaches functional only
                                              through ops.registry.fn, which functional fills in)

Every import counts, function-local ones included: a lazy import is still a dependency.  A module
may import another part only where ALLOWED says so; no import cycle may remain outside the
torch-shaped eager core; no module imports a private name (`_x`) from another package; and only
backends/ and eager_kernels/ import numba.
"""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import networkx as nx

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "graphc"

# Modules that stand below everything else: any module may import them.
BASE = {"errors", "config", "version", "fileio", "_context", "storage_version", "mpi_comm", "cpu", "threadpool",
        "allocator", "collector"}
# The torch-shaped eager core: these modules may import each other (Tensor methods call functional,
# functional builds Tensors, backward walks them), so they may form a cycle among themselves.
EAGER_CORE = {"tensor", "functional", "autograd", "random", "device",
              "indexing"}   # Tensor.__getitem__/__setitem__: split out of functional for size, not a layer

# part -> the parts it may import (besides BASE and itself).  A part is a top-level module or
# package of graphc, or one backend ("backends" alone is the registry of backend names).
ALLOWED = {
    "eager_kernels": set(),
    "ops": {"eager_kernels"},
    "ir": {"ops"},
    **{m: {"ops", "multiprocessing"} | EAGER_CORE for m in EAGER_CORE},   # share_memory_
    "builder": {"ops"} | EAGER_CORE,                 # runs Tensor code that appends IR nodes
    "passes": {"ops", "ir", "builder"},
    "backends": {"backends.interpreter", "backends.numba_cpu", "backends.numba_cuda"},
    "backends.interpreter": {"ops", "ir"},
    "backends.codegen": {"ops", "ir", "passes"},
    "backends.numba_cpu": {"ops", "ir", "passes", "backends.codegen", "eager_kernels"},
    "backends.numba_cuda": {"ops", "ir", "passes", "backends.codegen"},
    "threads": {"backends"},                          # numba's thread count, through the registry
    "nn": {"ops", "distributed"} | EAGER_CORE,       # nn.parallel.DistributedDataParallel
    "distributed": EAGER_CORE,
    "multiprocessing": set(),                        # the shared-memory blocks Tensor.share_memory_ uses
    "optim": {"ops"} | EAGER_CORE,
    "utils": EAGER_CORE | {"distributed"},           # DistributedSampler asks the group for rank and size
    "vision": EAGER_CORE | {"utils"},
    "serialization": EAGER_CORE | {"nn"},
    # The compile driver: traces with the frontend, runs the passes, picks a backend by name.
    "frontend": {"ops", "ir", "builder", "passes", "backends", "nn", "distributed"} | EAGER_CORE,
    # verify and detect_anomaly: numba_cpu only through the registry (get_backend), the interpreter's run_node.
    "debug": {"ops", "ir", "passes", "backends", "backends.interpreter", "frontend"} | EAGER_CORE,
    "cli": None,        # None: anything
    "graphc": None,     # the package itself (graphc/__init__.py, __main__.py): the public API
}
NUMBA_USERS = ("backends", "eager_kernels")


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def part_of(module):
    """graphc.passes.fusion -> 'passes'; graphc.backends.numba_cpu.emit -> 'backends.numba_cpu'."""
    parts = module.split(".")[1:]
    if not parts or parts[0] == "__main__":
        return "graphc"
    if parts[0] == "backends" and len(parts) > 1:
        return "backends." + parts[1]
    return parts[0]


def package_of(module):
    return module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def imports(module):
    """[(imported module, imported name or None, line)] of every import in a module, function-local ones too."""
    path = MODULES[module]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(module).split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None, node.lineno) if sub in MODULES else (target, alias.name, node.lineno))
    return found


def graphc_module(name):
    """The graphc module an import reaches (the deepest existing one), or None outside graphc."""
    while name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def import_graph():
    g = nx.DiGraph()
    for module in MODULES:
        g.add_node(module)
        for target, _, _ in imports(module):
            reached = graphc_module(target)
            if reached is not None and reached != module:
                g.add_edge(module, reached)
    return g


def backward_imports():
    """'a.py:12 imports b (part x -> part y)' for every import the allow-list does not permit."""
    bad = []
    for module in MODULES:
        part = part_of(module)
        allowed = ALLOWED.get(part, set())
        for target, _, line in imports(module):
            reached = graphc_module(target)
            if reached is None or allowed is None:
                continue
            other = part_of(reached)
            if other != part and other not in BASE and other not in allowed:
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {reached} ({part} -> {other})")
    return bad


def test_every_part_is_in_the_allow_list():
    parts = {part_of(m) for m in MODULES}
    assert parts - set(ALLOWED) - BASE == set(), "a new part of graphc: say in ALLOWED what it may import"


def test_imports_flow_one_way():
    assert backward_imports() == []


def test_no_import_cycle_outside_the_eager_core():
    core = {f"graphc.{m}" for m in EAGER_CORE}
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1 and not c <= core]
    assert cycles == []


def test_no_private_name_is_imported_from_another_package():
    bad = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        aliases = {}    # local name -> graphc module, for `module._name` attribute reads
        for target, name, line in imports(module):
            reached = graphc_module(target)
            if reached is None or package_of(reached) == package_of(module):
                continue
            if name is not None and name.startswith("_") and not name.startswith("__"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {reached}.{name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    full = graphc_module(_absolute(module, node, alias.name))
                    if full is not None and full.endswith("." + alias.name):
                        aliases[alias.asname or alias.name] = full
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and package_of(aliases[node.value.id]) != package_of(module)):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}")
    assert bad == []


def _absolute(module, node, name):
    if not node.level:
        return f"{node.module}.{name}"
    base = package_of(module).split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []) + [name])


# Imports by name (importlib.import_module) that the checks above cannot see, each with its reason.
BY_NAME = {
    "graphc": "the public API loads subpackages on first use, so `import graphc` stays light",
    "graphc.autograd": "torch.autograd's detect_anomaly names, implemented by graphc.debug, which sits above autograd",
}


def test_imports_by_name_are_the_known_ones():
    """An importlib call would hide a dependency from the allow-list: only the listed modules may use one."""
    users = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                    "import_module", "__import__"):
                users.add(module)
    assert users == set(BY_NAME)


def test_only_backends_and_eager_kernels_import_numba():
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line}" for m in MODULES for target, _, line in imports(m)
           if target.split(".")[0] in ("numba", "numba_cuda")
           and not part_of(m).startswith(NUMBA_USERS)]
    assert bad == []


def test_the_checks_catch_a_backward_import(monkeypatch):
    """The allow-list and the cycle check see a lazy import added where it must not be."""
    real = imports

    def with_one_more(module):
        found = real(module)
        if module == "graphc.ops.elementwise":
            found.append(("graphc.functional", None, 1))       # ops -> the function layer above it
        if module == "graphc.ir.graph":
            found.append(("graphc.passes.fusion", "unfused", 2))   # ir -> passes, inside a function
        return found

    monkeypatch.setitem(globals(), "imports", with_one_more)
    bad = backward_imports()
    assert any("ops/elementwise.py:1 imports graphc.functional (ops -> functional)" in b for b in bad)
    assert any("ir/graph.py:2 imports graphc.passes.fusion (ir -> passes)" in b for b in bad)
    core = {f"graphc.{m}" for m in EAGER_CORE}
    assert any(len(c) > 1 and not c <= core for c in nx.strongly_connected_components(import_graph()))


def test_the_reader_sees_function_local_imports():
    """Graph.__str__ imports the printer inside the method: that import is an edge too."""
    assert ("graphc.ir.printer", "print_graph") in [(t, n) for t, n, _ in imports("graphc.ir.graph")]
    assert import_graph().has_edge("graphc.ir.graph", "graphc.ir.printer")


def test_graphc_backends_is_the_backend_package_and_answers_torch_backends():
    """`import graphc.backends.numba_cpu as m` works after `import graphc` (a torch-style class named
    `backends` once replaced the package), and graphc.backends.mps / .cudnn still answer as torch's do."""
    code = ("import graphc\nimport graphc.backends.numba_cpu as m\n"
            "assert m.__name__ == 'graphc.backends.numba_cpu'\n"
            "assert graphc.backends.get_backend('interpreter') is not None\n"
            "assert graphc.backends.mps.is_available() is False and graphc.backends.cudnn.deterministic is False\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
