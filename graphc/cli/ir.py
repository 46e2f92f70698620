"""Compile a seed model's training step once and show what the compiler made of it.

The step is the seed's: zero_grad, forward, loss, backward, SGD step (momentum 0.9), traced on a
random batch of MNIST's shape. Without options this prints the final IR. --stage picks the IR
after one pass (trace, autodiff, simplify, fold, simplify#2, cse, dce, final) or `all` of them,
each under a banner; --source prints what the backend generated: the Python/Numba module
(python), the IR grouped into kernels (fused), the memory plan (plan), or numba's LLVM IR
(llvm) or assembly (asm). --dot writes the final graph in Graphviz DOT, one colour per fused
kernel (render it with `dot -Tsvg step.dot -o step.svg`).

--backend defaults to numba_cpu when --source asks for generated code, and to the interpreter
otherwise: the IR stages are the same for both, and the interpreter needs no numba compile.
"""
from __future__ import annotations

import sys

from ..fileio import write_atomic
from .common import (BACKENDS, CLIError, call_as_user, check_backend, check_writable_file, positive_int,
                     quiet_numba_warnings)
from .models import DEFAULTS, MODELS, build

NAME = "ir"
HELP = "print the IR or generated source of a compiled training step"
SOURCE_KINDS = ("python", "fused", "plan", "llvm", "asm")


def add_arguments(p):
    p.add_argument("--model", choices=MODELS, default="mlp", metavar="{mlp,cnn}",
                   help="which seed model's training step")
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="B",
                   help="batch size of the traced step (small keeps the compile quick)")
    p.add_argument("--stage", default=None, metavar="NAME|all",
                   help="print the IR after this stage (trace, a pass name, final) or after every stage (all); "
                        "default: final, unless --source or --dot alone is given")
    p.add_argument("--source", nargs="?", const="python", default=None, choices=SOURCE_KINDS,
                   metavar="{" + ",".join(SOURCE_KINDS) + "}",
                   help="print the generated source of this kind (python when no kind is given)")
    p.add_argument("--dot", default=None, metavar="FILE",
                   help="write the final graph as Graphviz DOT, nodes coloured by fused kernel")
    p.add_argument("--backend", choices=BACKENDS, default=None, metavar="{" + ",".join(BACKENDS) + "}",
                   help="graphc.compile backend; default: numba_cpu with --source, otherwise interpreter")


def run(args):
    backend = args.backend or ("numba_cpu" if args.source else "interpreter")
    if args.source and backend == "interpreter":
        raise CLIError("--source: the interpreter backend generates no source; use --backend numba_cpu")
    if args.dot:
        check_writable_file(args.dot, "--dot")
    check_backend(backend)
    quiet_numba_warnings()
    compiled = compile_step(args.model, args.batch_size, backend)

    stages = compiled.stages()
    stage = args.stage
    if stage is None and not args.source and not args.dot:
        stage = "final"
    if stage is not None and stage != "all" and stage not in stages:
        raise CLIError(f"--stage {stage}: no such stage; the stages are {', '.join(stages)} (or all)")
    if stage == "all":
        for name in stages:
            print(f"// ---- IR after {name} ----")
            print(compiled.ir(name))
            print()
    elif stage is not None:
        print(compiled.ir(stage))
    if args.source:
        if stage is not None:
            print()
        print(compiled.source(args.source))
    if args.dot:
        from ..passes.fusion import fuse
        fused = fuse(compiled.graph())
        write_text(args.dot, to_dot(compiled.graph(), fused))
        print(f"graphc ir: wrote {args.dot} ({len(compiled.graph().nodes)} nodes, {len(fused.kernels)} kernels)",
              file=sys.stderr)
    return 0


def compile_step(model, batch_size, backend):
    """The seed training step of `model`, compiled with `backend` and called once on a random batch."""
    import graphc
    d = DEFAULTS[model]
    graphc.manual_seed(0)
    _, _, _, step = build(model, graphc, lr=d["lr"], momentum=d["momentum"])
    compiled = graphc.compile(step, backend=backend)
    x = graphc.rand(batch_size, 1, 28, 28)
    y = graphc.randint(0, 10, (batch_size,))
    call_as_user(compiled, x, y)
    return compiled


# --- DOT ---------------------------------------------------------------------------------------------

# Pastel fills that stay readable with black text; kernels cycle through them.
PALETTE = ("#a6cee3", "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99", "#8dd3c7", "#bebada", "#fb8072",
           "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5")
INPUT_COLOURS = {"data": "#ffffff", "param": "#e8e8e8", "state": "#f4f4f4", "scalar": "#fafafa"}


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph, fused=None):
    """The graph in Graphviz DOT: inputs as ellipses, nodes as boxes `%i = op` + type, one colour per kernel.

    to_dot(g) -> 'digraph "mlp_step" {\\n  rankdir=TB; ...'
    """
    kernel_of = {}
    if fused is not None:
        for k in fused.kernels:
            for node in k.nodes:
                kernel_of[id(node)] = k
    colour = {}
    if fused is not None:
        for i, k in enumerate(fused.kernels):
            colour[id(k)] = PALETTE[i % len(PALETTE)]
    ids = {}
    lines = [f"digraph {_quote(graph.name)} {{",
             "  rankdir=TB;",
             '  node [fontname="monospace", fontsize=10];',
             '  edge [color="#555555", arrowsize=0.6];']
    for i, v in enumerate(graph.inputs):
        ids[id(v)] = f"in{i}"
        lines.append(f"  in{i} [shape=ellipse, style=filled, fillcolor={_quote(INPUT_COLOURS.get(v.kind, '#ffffff'))}, "
                     f"label={_quote(f'%{v.name}' + chr(10) + f'{v.type_str()} {v.kind}')}];")
    for i, node in enumerate(graph.nodes):
        ids[id(node.out)] = f"n{i}"
        k = kernel_of.get(id(node))
        label = f"%{i} = {node.op}\n{node.out.type_str()}"
        attrs = [f"label={_quote(label)}", "shape=box", 'style="rounded,filled"']
        if k is not None:
            attrs.append(f"fillcolor={_quote(colour[id(k)])}")
            attrs.append(f"tooltip={_quote(f'kernel {k.name} ({k.kind})')}")
        else:
            attrs.append('fillcolor="#ffffff"')
        lines.append(f"  n{i} [{', '.join(attrs)}];")
    if fused is not None:   # a kernel of several ops also gets a labelled box around them
        index = {id(node): i for i, node in enumerate(graph.nodes)}
        for j, k in enumerate(fused.kernels):
            if len(k.nodes) > 1:
                members = " ".join(f"n{index[id(node)]};" for node in k.nodes if id(node) in index)
                lines.append(f"  subgraph cluster_{j} {{ label={_quote(k.name)}; style=dashed; color=\"#888888\"; "
                             f"fontname=\"monospace\"; fontsize=9; {members} }}")
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            src = ids.get(id(v))
            if src is not None:
                lines.append(f"  {src} -> n{i};")
    # What the step hands back: its outputs, and the state it writes (params, momentum buffers, grads).
    lines.append('  out [shape=doubleoctagon, label="return / updates"];')
    for v in graph.outputs:
        if id(v) in ids:
            lines.append(f"  {ids[id(v)]} -> out;")
    for target, new in graph.updates:
        if id(new) in ids:
            lines.append(f"  {ids[id(new)]} -> out [style=dashed, label={_quote('%' + str(target.name))}];")
    if fused is not None:
        lines.append(f'  label="{graph.name}: {len(graph.nodes)} nodes in {len(fused.kernels)} kernels '
                     f'(colour = kernel; dashed box = a fused kernel of several ops)";')
        lines.append("  labelloc=t;")
        lines.extend(f"  // kernel {k.name}: {k.kind}, {len(k.nodes)} op{'s' if len(k.nodes) != 1 else ''}"
                     for k in fused.kernels)
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_text(path, text):
    """Write a text file atomically."""
    write_atomic(path, text)
