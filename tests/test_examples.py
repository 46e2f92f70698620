"""The example programs run as a user runs them (a subprocess from the repository root) and learn.

The MLP seed program trains a few hundred batches eagerly and its loss must fall well below its
start; the CNN trains a handful of batches (a CNN step is slow on a small CPU) and its loss must fall.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run_example(name, *args, timeout=300):
    env = dict(os.environ)
    # One BLAS thread: on a shared 2-core machine a multi-threaded BLAS makes these small matmuls 20x slower.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("GRAPHC_FALLBACK", None)   # a backend failure must fail the run, not fall back to the interpreter
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def window_losses(out):
    """The '[epoch, batch] loss: x' lines, as floats in order."""
    return [float(m) for m in re.findall(r"^\[\s*\d+,\s*\d+\] loss: ([0-9.]+)$", out, re.M)]


def accuracy(out):
    match = re.search(r"Accuracy of the network on the (\d+) test images: ([0-9.]+) %", out)
    assert match, out
    return int(match.group(1)), float(match.group(2))


def test_mlp_seed_program_loss_falls_well_below_its_start():
    out = run_example("mnist_mlp.py", "--epochs", 1, "--max-batches", 400, "--log-interval", 50, "--seed", 0)
    losses = window_losses(out)
    assert len(losses) == 8, out
    assert losses[0] > 2.0                  # ~ln(10) = 2.30 at the start
    assert losses[-1] < 0.65 * losses[0], losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert re.search(r"^Epoch: 1, Loss: [0-9.]+$", out, re.M)
    total, acc = accuracy(out)
    assert total == 10000 and acc > 70.0


def test_mlp_compiled_step_learns():
    out = run_example("mnist_mlp.py", "--epochs", 1, "--max-batches", 30, "--log-interval", 10, "--seed", 0,
                      "--compile", "--backend", "interpreter")
    losses = window_losses(out)
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert accuracy(out)[0] == 10000


def test_cnn_seed_program_loss_falls():
    out = run_example("mnist_cnn.py", "--epochs", 1, "--max-batches", 30, "--log-interval", 10, "--seed", 0,
                      "--test-batches", 1)
    losses = window_losses(out)
    assert len(losses) == 3, out
    assert losses[-1] < losses[0] - 0.005, losses
    assert re.search(r"^Epoch: 1, Loss: [0-9.]+$", out, re.M)
    assert accuracy(out)[0] == 1000


def test_ir_walkthrough_shows_every_stage():
    out = run_example("ir_walkthrough.py")
    for title in ("IR after tracing", "IR after autodiff", "Final IR", "Fused kernels", "Memory plan",
                  "Generated Numba module"):
        assert title in out
    assert "graph step(" in out and "kernel " in out and "@njit" in out and "in place:" in out


@pytest.mark.parametrize("name", ["mnist_mlp.py", "mnist_cnn.py"])
def test_examples_keep_the_seed_text(name):
    """Only the imports changed: the seed's model, loss, optimizer, data and print line are there verbatim."""
    text = open(os.path.join(EXAMPLES, name)).read()
    assert "import graphc as torch" in text and "import graphc.nn as nn" in text
    assert "print('Epoch: %d, Loss: %.3f' % (epoch + 1, running_loss / " in text
    if name == "mnist_mlp.py":
        assert "optimizer = optim.SGD(net.parameters(), lr=0.01)" in text
        assert "batch_size=64, shuffle=True)" in text
    else:
        assert "optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)" in text
        assert "transforms.Normalize((0.5,), (0.5,))" in text and "batch_size=100, shuffle=True)" in text


# --- the three side-by-side programs (one text for graphc and PyTorch) ----------------------------

def test_side_by_side_programs_switch_only_their_imports():
    """Outside the `if args.torch:` import block no line names a library: the rest is one text for both."""
    for name in ("mnist_attention.py", "mnist_vae.py", "mnist_bn_cnn.py"):
        text = open(os.path.join(EXAMPLES, name)).read()
        block = re.search(r"^if args\.torch:\n((?:    .*\n)+)else:\n((?:    .*\n)+)", text, re.M)
        assert block, name
        torch_lines, graphc_lines = block.group(1).split(), block.group(2).split()
        assert any("graphc" in word for word in graphc_lines), name
        assert all(line.strip().startswith(("import", "from")) for line in block.group(1).splitlines()), name
        assert len(block.group(1).splitlines()) == len(block.group(2).splitlines()), name
        assert "graphc" not in torch_lines and "torch" in " ".join(torch_lines), name
        rest = text[block.end():]   # the model, the step, the loop and the evaluation
        assert "graphc" not in rest.replace("from graphc.vision.utils import save_image", ""), name


def test_attention_program_learns_eagerly():
    out = run_example("mnist_attention.py", "--train-size", 1280, "--test-size", 500)
    acc = float(re.search(r"test accuracy: ([0-9.]+) %", out).group(1))
    assert acc > 30.0, out


def test_bn_cnn_program_learns_compiled_on_the_interpreter():
    out = run_example("mnist_bn_cnn.py", "--train-size", 640, "--test-size", 500, "--compile", "--backend",
                      "interpreter")
    acc = float(re.search(r"test accuracy: ([0-9.]+) %", out).group(1))
    assert acc > 30.0 and "lr now 0.00e+00" in out, out


def test_vae_program_loss_falls_compiled_on_numba_cpu(tmp_path):
    # The default backend: its fused Adam kernel over the VAE's 10 parameter tensors once crashed in numba.
    out = run_example("mnist_vae.py", "--train-size", 1280, "--test-size", 500, "--compile")
    loss = float(re.search(r"test loss: ([0-9.]+) per image", out).group(1))
    assert loss < 400.0, out   # an untrained decoder scores ~545 (784 * ln 2)


def test_vae_program_plots_a_grid(tmp_path):
    from PIL import Image
    png = tmp_path / "samples.png"
    out = run_example("mnist_vae.py", "--train-size", 256, "--test-size", 500, "--plot", png)
    assert f"wrote {png}" in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape == (242, 242)          # 8 x 8 samples of 28 x 28, 2-pixel padding
    cell = pixels[2:30, 2:30]                   # the first sample, inside its padding
    assert pixels[0].max() == 0 and cell.std() > 1.0, (pixels[0].max(), cell.std())   # black padding, a drawn sample
