"""A walk through the compiler: one tiny training step, and what each stage makes of it.

    python examples/ir_walkthrough.py            (GRAPHC_CACHE_DIR=<dir> to keep the compiled kernels elsewhere)

The step is a 4 -> 3 linear layer with a ReLU, a cross-entropy loss and an SGD update, on a batch
of 2.  We print the IR right after tracing, after the autodiff pass, the final IR, the fused
kernels, the memory plan, and the start of the generated Numba module.  The same views of the
seed models are one command away: `graphc ir --model mlp --stage all`, `graphc ir --source plan`.
"""
import graphc
import graphc.nn as nn
import graphc.optim as optim


def banner(title):
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}")


graphc.manual_seed(0)
net = nn.Linear(4, 3)
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.1)


@graphc.compile(backend="numba_cpu")
def step(x, y):
    optimizer.zero_grad()
    loss = criterion(graphc.relu(net(x)), y)
    loss.backward()
    optimizer.step()
    return loss


x = graphc.randn(2, 4)
y = graphc.tensor([0, 2])
# The first call traces the Python code into a graph, runs the passes and generates the kernels;
# later calls with the same shapes run the compiled kernels straight away.
print("loss:", step(x, y).item())
print("loss after one update:", step(x, y).item())
print("stages:", ", ".join(step.stages()))

banner("1. IR after tracing: the forward ops, and grad requests that loss.backward() recorded")
# Inputs are the data (x, y), the parameters (lifted from the Module) and the scalar lr, which is a
# runtime input so that a learning-rate schedule never recompiles. `updates` lists what the step writes
# back: the new weights (and the grads, which PyTorch code may read after the step).
print(step.ir("trace"))

banner("2. IR after autodiff: each grad request replaced by the backward ops (the ops' VJP rules)")
print(step.ir("autodiff"))

banner("3. Final IR: after simplify, constant folding, CSE and dead-code elimination")
print(step.ir("final"))

banner("4. Fused kernels: which ops share one loop nest (elementwise chains, reductions with their producers)")
# The same grouping as an object: graphc.passes.fusion.fuse(step.graph()).kernels, each with .name and .nodes.
print(step.source("fused").split("// ", 1)[-1])

banner("5. Memory plan: each value's buffer; updates that are computed in place in the parameter itself")
print(step.source("plan"))

banner("6. Generated Numba module (the first 60 lines; step.source() has all of it)")
print("\n".join(step.source("python").splitlines()[:60]))
print("...")

stats = step.stats()
print(f"\ncompiles: {stats['compiles']}, cache hits: {stats['cache_hits']}, kernels: {stats.get('kernels')}, "
      f"kernel cache: {stats.get('cache')}")
