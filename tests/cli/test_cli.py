"""graphc train | bench | ir on tiny configurations, through graphc.cli.main (and once through `python -m graphc`).

Training runs use the interpreter backend and a few batches; one `ir --source` test compiles the MLP
step with numba_cpu at batch 8 (cached for the session by GRAPHC_CACHE_DIR).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc
from graphc.cli import build_parser, main
from graphc.cli.train import Trainer

OPTS = ["--max-batches", "4", "--batch-size", "16", "--backend", "interpreter", "--quiet", "--bench-steps", "2"]
TINY = ["train", "--epochs", "1"] + OPTS


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code, err, *fragments):
    """Exit status 2 and exactly one line on stderr, `graphc: error: ...`, naming what went wrong."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("graphc: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch checkpoint (momentum 0.9, so the optimizer has state) and the run's stdout."""
    path = tmp_path_factory.mktemp("ckpt") / "mlp.ckpt"
    import io
    import contextlib
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(TINY + ["--momentum", "0.9", "--checkpoint", str(path), "--seed", "3"])
    assert code == 0
    return path, out.getvalue()


# --- help -----------------------------------------------------------------------------------------------

def test_python_m_graphc_help():
    proc = subprocess.run([sys.executable, "-m", "graphc", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in ("train", "bench", "ir"):
        assert command in proc.stdout


@pytest.mark.parametrize("command, options", [
    ("train", ["--model", "--epochs", "--batch-size", "--lr", "--momentum", "--eager", "--backend", "--data-root",
               "--max-batches", "--checkpoint", "--resume", "--plot", "--seed", "--quiet", "--threads"]),
    ("bench", ["--model", "--batch-size", "--steps", "--backend", "--no-torch", "--no-warm", "--fresh-cache"]),
    ("ir", ["--model", "--stage", "--source", "--dot", "--backend", "--batch-size"]),
])
def test_subcommand_help_explains_every_option(capsys, command, options):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    for option in options:
        assert option in out
    assert "_warm-probe" not in out


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys)
    assert_usage_error(code, err, "choose a command")


# --- train ----------------------------------------------------------------------------------------------

def test_train_prints_epoch_accuracy_and_summary(capsys):
    code, out, err = run_cli(capsys, *TINY)
    assert code == 0, err
    assert "Epoch: 1, Loss: " in out
    assert "Test accuracy: " in out and "/10000)" in out
    assert "step time       eager" in out and "compiled (interpreter)" in out
    assert "compile " in out


def test_train_without_a_tty_shows_no_progress_bar(capsys):
    argv = [a for a in TINY if a != "--quiet"]
    code, out, err = run_cli(capsys, *argv, "--eager", "--bench-steps", "0")
    assert code == 0, err
    assert "batch/s" not in err and "it/s" not in err and "\r" not in err
    assert "Epoch: 1, Loss: " in out
    assert "step time" not in out   # --bench-steps 0 skips the comparison


def test_checkpoint_holds_the_training_state(trained):
    path, out = trained
    ckpt = graphc.load(str(path))
    assert ckpt["format"] == "graphc-train-checkpoint" and ckpt["model"] == "mlp" and ckpt["epoch"] == 1
    assert set(ckpt["model_state"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    assert len(ckpt["optimizer_state"]["state"]) == 4
    assert ckpt["optimizer_state"]["param_groups"][0]["momentum"] == 0.9
    assert len(ckpt["history"]["loss"]) == 1 and len(ckpt["history"]["accuracy"]) == 1
    assert "seed" in ckpt["rng_state"] and "np" in ckpt["rng_state"]
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]   # the atomic save left nothing behind


def test_resume_restores_optimizer_model_and_rng_state(trained):
    path, _ = trained
    saved = graphc.load(str(path))
    args = build_parser().parse_args(["train", "--resume", str(path), "--epochs", "2", "--backend", "interpreter",
                                      "--quiet"])
    trainer = Trainer(args)
    assert trainer.model == "mlp" and trainer.start_epoch == 1
    state = trainer.optimizer.state_dict()
    assert sorted(state["state"]) == sorted(saved["optimizer_state"]["state"])
    for i, entry in saved["optimizer_state"]["state"].items():
        np.testing.assert_array_equal(state["state"][i]["momentum_buffer"].numpy(), entry["momentum_buffer"].numpy())
    for name, value in saved["model_state"].items():
        np.testing.assert_array_equal(trainer.net.state_dict()[name].numpy(), value.numpy())
    assert graphc.default_generator.get_state() == saved["rng_state"]


def test_resume_continues_at_the_next_epoch_as_an_uninterrupted_run(capsys, trained, tmp_path):
    path, first_out = trained
    argv = OPTS + ["--momentum", "0.9", "--seed", "3", "--bench-steps", "0"]
    code, resumed, err = run_cli(capsys, "train", "--resume", path, "--epochs", "2", *argv,
                                 "--checkpoint", tmp_path / "resumed.ckpt")
    assert code == 0, err
    assert "Epoch: 1," not in resumed and "Epoch: 2, Loss: " in resumed
    code, straight, err = run_cli(capsys, "train", "--epochs", "2", *argv)
    assert code == 0, err
    epoch_lines = [line for line in straight.splitlines() if line.startswith(("Epoch:", "Test accuracy"))]
    assert epoch_lines[:2] == [line for line in first_out.splitlines() if line.startswith(("Epoch:", "Test acc"))]
    # Same data order, weights and momentum buffers: epoch 2 comes out exactly as without the interruption.
    assert epoch_lines[2:] == [line for line in resumed.splitlines() if line.startswith(("Epoch:", "Test accuracy"))]
    assert graphc.load(str(tmp_path / "resumed.ckpt"))["epoch"] == 2


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    code, _, err = run_cli(capsys, *TINY, "--bench-steps", "0", "--plot", png)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- train: usage errors ---------------------------------------------------------------------------------

def test_unknown_model(capsys):
    code, _, err = run_cli(capsys, "train", "--model", "resnet")
    assert_usage_error(code, err, "resnet")


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_max_batches_must_be_positive(capsys, value):
    code, _, err = run_cli(capsys, "train", "--max-batches", value)
    assert_usage_error(code, err, "--max-batches")


def test_missing_data_dir(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--data-root", tmp_path / "nowhere")
    assert_usage_error(code, err, "--data-root", "no such directory")


def test_data_dir_without_mnist(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--data-root", tmp_path)
    assert_usage_error(code, err, "--data-root", "MNIST files missing")


def test_checkpoint_in_a_missing_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, *TINY, "--checkpoint", tmp_path / "no" / "such" / "dir" / "c.ckpt")
    assert_usage_error(code, err, "--checkpoint", "does not exist")


def test_checkpoint_under_a_file(capsys, tmp_path):
    (tmp_path / "plain").write_text("x")
    code, _, err = run_cli(capsys, *TINY, "--checkpoint", tmp_path / "plain" / "c.ckpt")
    assert_usage_error(code, err, "--checkpoint")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write in a read-only dir")
def test_checkpoint_in_a_read_only_dir(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run_cli(capsys, *TINY, "--checkpoint", ro / "c.ckpt")
    finally:
        ro.chmod(0o755)
    assert_usage_error(code, err, "--checkpoint", "cannot write")


def test_checkpoint_is_a_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, *TINY, "--checkpoint", tmp_path)
    assert_usage_error(code, err, "--checkpoint", "is a directory")


def test_resume_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, *TINY, "--resume", tmp_path / "absent.ckpt")
    assert_usage_error(code, err, "--resume", "no such file")


def test_resume_truncated_checkpoint(capsys, trained, tmp_path):
    data = trained[0].read_bytes()
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(data[:len(data) // 2])
    code, _, err = run_cli(capsys, *TINY, "--resume", bad)
    assert_usage_error(code, err, "--resume", "truncated")


def test_resume_corrupt_checkpoint(capsys, trained, tmp_path):
    data = bytearray(trained[0].read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)         # zeros over stored array bytes: the CRC no longer matches
    bad = tmp_path / "corrupt.ckpt"
    bad.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, *TINY, "--resume", bad)
    assert_usage_error(code, err, "--resume")


def test_resume_garbage_and_empty_files(capsys, tmp_path):
    for name, content in (("garbage.ckpt", b"not a checkpoint at all" * 10), ("empty.ckpt", b"")):
        (tmp_path / name).write_bytes(content)
        code, _, err = run_cli(capsys, *TINY, "--resume", tmp_path / name)
        assert_usage_error(code, err, "--resume")


def test_resume_a_plain_state_dict(capsys, tmp_path):
    net = graphc.nn.Linear(2, 2)
    graphc.save(net.state_dict(), str(tmp_path / "weights.pt"))
    code, _, err = run_cli(capsys, *TINY, "--resume", tmp_path / "weights.pt")
    assert_usage_error(code, err, "--resume", "not a checkpoint written by")


def test_resume_with_another_model(capsys, trained):
    code, _, err = run_cli(capsys, *TINY, "--model", "cnn", "--resume", trained[0])
    assert_usage_error(code, err, "--resume", "mlp")


# --- bench ----------------------------------------------------------------------------------------------

def test_bench_prints_the_side_by_side_table(capsys):
    code, out, err = run_cli(capsys, "bench", "--model", "mlp", "--batch-size", "8", "--steps", "3", "--warmup", "1",
                             "--backend", "interpreter", "--quiet")
    assert code == 0, err
    assert "ms/step" in out and "samples/s" in out and "compile cold" in out and "compile warm" in out
    rows = [line for line in out.splitlines() if line.startswith("mlp ")]
    runners = " ".join(rows)
    assert "graphc eager" in runners and "graphc compiled (interpreter)" in runners
    try:
        import torch  # noqa: F401
        assert "torch eager" in runners
    except ImportError:
        assert "torch is not installed" in out
    compiled_row = next(r for r in rows if "compiled" in r)
    assert compiled_row.rstrip().endswith(" s")   # the warm probe (a subprocess) reported its first call


def test_bench_profile_prints_the_per_kernel_tables(capsys, tmp_path, monkeypatch):
    """--profile: one row per kernel call of the compiled step and per op of the eager step, with time, FLOPs,
    bytes, rates and the share of the machine's measured peaks; kernels that share code keep their own rows."""
    from graphc.config import settings
    monkeypatch.setattr(settings, "cache_dir", str(tmp_path))   # machine-peaks.json is measured and written here
    code, out, err = run_cli(capsys, "bench", "--model", "mlp", "--batch-size", "8", "--steps", "1", "--warmup", "0",
                             "--no-torch", "--no-warm", "--quiet", "--profile")
    assert code == 0, err
    assert "compiled step (numba_cpu), per kernel" in out and "eager step, per op" in out
    assert out.count("GFLOP/s") >= 2 and "% peak" in out and "sgemm peak" in out
    compiled = out.split("per kernel:", 1)[1].split("eager step", 1)[0]
    rows = [line.split() for line in compiled.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) >= 5 and all(float(r[0]) >= 0 for r in rows)
    # the forward matmuls (fc1 at 8x784x128, fc2 at 8x128x10) may run one shared kernel: their FLOPs differ
    matmul_flops = {float(r[2]) for r in rows if r[-1].startswith("matmul")}
    assert len(matmul_flops) >= 2, compiled
    assert (tmp_path / "machine-peaks.json").exists()


def test_bench_rejects_an_unknown_model(capsys):
    code, _, err = run_cli(capsys, "bench", "--model", "vgg")
    assert_usage_error(code, err, "vgg")


# --- ir -------------------------------------------------------------------------------------------------

def test_ir_all_stages(capsys):
    code, out, err = run_cli(capsys, "ir", "--model", "mlp", "--stage", "all", "--batch-size", "4")
    assert code == 0, err
    for stage in ("trace", "autodiff", "cse", "dce", "final"):
        assert f"// ---- IR after {stage} ----" in out
    assert "graph train_step(" in out and "matmul" in out


def test_ir_one_stage_of_the_cnn(capsys):
    code, out, err = run_cli(capsys, "ir", "--model", "cnn", "--stage", "trace", "--batch-size", "2")
    assert code == 0, err
    assert "conv2d" in out and "IR after" not in out


def test_ir_unknown_stage(capsys):
    code, _, err = run_cli(capsys, "ir", "--stage", "nonsense", "--batch-size", "2")
    assert_usage_error(code, err, "nonsense", "autodiff")


def test_ir_source_needs_a_code_generating_backend(capsys):
    code, _, err = run_cli(capsys, "ir", "--source", "--backend", "interpreter")
    assert_usage_error(code, err, "--source", "numba_cpu")


def test_ir_dot_file(capsys, tmp_path):
    dot = tmp_path / "step.dot"
    code, out, err = run_cli(capsys, "ir", "--model", "mlp", "--batch-size", "4", "--dot", dot)
    assert code == 0, err
    text = dot.read_text()
    assert text.startswith("digraph") and text.rstrip().endswith("}")
    assert "matmul" in text and "fillcolor" in text and "->" in text and "kernels" in text
    assert "wrote" in err


def test_ir_dot_to_a_missing_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "ir", "--dot", tmp_path / "missing" / "step.dot")
    assert_usage_error(code, err, "--dot")


def test_ir_generated_python_source_numba(capsys):
    code, out, err = run_cli(capsys, "ir", "--model", "mlp", "--batch-size", "8", "--source")
    assert code == 0, err
    assert "@njit" in out and "def driver(" in out


def test_plot_without_matplotlib_is_a_usage_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # `import matplotlib` now raises ImportError
    code, out, err = run_cli(capsys, *TINY, "--plot", tmp_path / "curves.png")
    assert_usage_error(code, err, "--plot needs matplotlib", "pip install")
    assert out == ""   # refused before any training
