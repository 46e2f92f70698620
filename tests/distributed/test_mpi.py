"""Two MPI ranks (mpiexec -n 2): collectives, eager and compiled DDP against one process, faults."""
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _json_line(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def test_every_collective_on_two_ranks(mpirun):
    proc = mpirun([os.path.join(HERE, "collectives_worker.py"), "ok"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 ok" in proc.stdout and "rank 1 ok" in proc.stdout   # the ranks' lines may interleave


@pytest.mark.parametrize("mpi4py_main", [True, False], ids=["python -m mpi4py", "graphc's excepthook"])
def test_an_exception_on_one_rank_ends_every_rank(mpirun, mpi4py_main):
    proc = mpirun([os.path.join(HERE, "collectives_worker.py"), "raise"], timeout=60, mpi4py_main=mpi4py_main)
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stderr
    assert "ok" not in proc.stdout


@pytest.mark.parametrize("mode,bucket_cap_mb,buckets", [("eager", 25, 1), ("interpreter", 25, 1),
                                                        ("eager", 0.00005, 3), ("interpreter", 0.00005, 3)])
def test_ddp_equals_one_process_on_the_global_batch(mpirun, mode, bucket_cap_mb, buckets):
    """30 steps, each rank seeded differently: DDP broadcasts rank 0's weights and averages the gradients
    (in one bucket, and in three: a 52-byte cap cuts [fc2 bias + weight], [fc1 bias], [fc1 weight])."""
    facts = _json_line(mpirun([os.path.join(HERE, "ddp_worker.py"), mode, bucket_cap_mb]))
    assert facts["world"] == 2 and facts["buckets"] == buckets
    assert facts["every_rank_got_rank0_init"] and facts["changed_by_broadcast"] == [False, True]
    assert facts["ranks_equal"]
    assert facts["max_rel_diff"] < 1e-5, facts
    if mode != "eager":   # forward, backward, allreduce and update: one compiled graph
        assert facts["ir_allreduce_starts"] == facts["ir_allreduce_waits"] == buckets


def test_compiled_ddp_on_numba_cpu(mpirun):
    facts = _json_line(mpirun([os.path.join(HERE, "ddp_worker.py"), "numba_cpu"]))
    assert facts["ranks_equal"] and facts["max_rel_diff"] < 1e-5, facts
    assert facts["ir_allreduce_starts"] >= 1


def test_a_rank_killed_mid_epoch_leaves_the_last_checkpoint_loadable(mpirun, tmp_path):
    import graphc
    path = tmp_path / "ckpt.pt"
    proc = mpirun([os.path.join(HERE, "checkpoint_worker.py"), path], timeout=60)
    assert proc.returncode != 0                  # the job ended (it did not hang) and says it failed
    ckpt = graphc.load(path)
    assert ckpt["step"] == 10 and set(ckpt["model"]) == {"weight", "bias"}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]   # no temporary file left behind


def test_graphc_train_under_mpiexec_then_resume(mpirun, tmp_path):
    """Rank 0 alone prints and writes the checkpoint; a resumed run reads it on rank 0 and broadcasts it."""
    import graphc
    ckpt = tmp_path / "run.pt"
    common = ["-m", "graphc", "train", "--model", "mlp", "--max-batches", "30", "--eval-limit", "500",
              "--bench-steps", "0", "--backend", "interpreter", "--quiet"]
    proc = mpirun(common + ["--epochs", "1", "--checkpoint", ckpt])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Epoch: 1,") == 1 and proc.stdout.count("Summary:") == 1
    assert "Throughput:" in proc.stdout and "2 ranks x 1920 samples" in proc.stdout
    assert graphc.load(ckpt)["epoch"] == 1
    proc = mpirun(common + ["--epochs", "2", "--resume", ckpt, "--checkpoint", ckpt])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Epoch: 1," not in proc.stdout and proc.stdout.count("Epoch: 2,") == 1
    assert graphc.load(ckpt)["epoch"] == 2


def test_a_usage_error_under_mpiexec_ends_every_rank(mpirun, tmp_path):
    proc = mpirun(["-m", "graphc", "train", "--resume", tmp_path / "missing.pt", "--quiet"], timeout=60)
    assert proc.returncode != 0
    assert "no such file" in proc.stderr
