"""Nothing is lost and nothing runs: checkpoints are replaced atomically, a save killed halfway leaves the
previous checkpoint whole, and loading never executes code from the file.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc import serialization
from graphc.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def test_checkpoint_goes_to_a_temporary_file_then_is_renamed(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    graphc.save({"step": 1, "w": graphc.ones(4)}, path)
    real_replace = os.replace
    seen = []

    def spying_replace(src, dst):
        src, dst = Path(src), Path(dst)
        # At the moment of the rename the bytes are complete in the temporary file, the target still old.
        assert src.parent == dst.parent == tmp_path
        assert src.name.startswith(".ckpt.pt.") and src.name.endswith(".tmp")
        assert graphc.load(str(dst))["step"] == 1
        assert graphc.load(str(src))["step"] == 2
        seen.append((src.name, dst.name))
        return real_replace(src, dst)

    monkeypatch.setattr(serialization.os, "replace", spying_replace)
    graphc.save({"step": 2, "w": graphc.zeros(4)}, path)
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0][1] == "ckpt.pt"
    assert graphc.load(str(path))["step"] == 2
    assert os.listdir(tmp_path) == ["ckpt.pt"]


KILLED_SAVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import graphc
    path = sys.argv[1]
    graphc.save({"step": 1, "w": graphc.ones(1000)}, path)          # the previous, good checkpoint
    write_array = np.lib.format.write_array
    written = []

    def slow_write(fh, arr, **kw):                                   # a slow disk: the kill lands mid-save
        write_array(fh, arr, **kw)
        written.append(arr.nbytes)
        if len(written) == 3:
            print("WRITING", flush=True)
            time.sleep(60)

    np.lib.format.write_array = slow_write
    big = {f"layer{i}": graphc.full((256, 256), float(i)) for i in range(8)}
    big["step"] = 2
    graphc.save(big, path)
    print("DONE", flush=True)
""")


def test_process_killed_mid_save_leaves_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    try:
        line = proc.stdout.readline()
        assert line.strip() == "WRITING", proc.stderr.read()
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt.pt.") and p.name.endswith(".tmp")]
        assert len(temps) == 1 and temps[0].stat().st_size > 3 * 256 * 256 * 4
        assert graphc.load(str(path))["step"] == 1      # mid-save, readers still see the old file
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    got = graphc.load(str(path))
    assert got["step"] == 1
    np.testing.assert_array_equal(got["w"].numpy(), np.ones(1000, np.float32))
    # The half-written temporary file stays behind (no process is left to remove it); it is never the
    # target, and reading it fails with a clear error instead of half-loaded tensors.
    [temp] = [p for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    with pytest.raises(DataError, match="truncated or corrupt"):
        graphc.load(str(temp))
    # The next save still works and replaces the target.
    graphc.save({"step": 3}, str(path))
    assert graphc.load(str(path)) == {"step": 3}


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy_with_objects(marker):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("kind, message", [
    ("pickle", "this is a pickle file"),
    ("torch_zip", "this is a torch.save checkpoint"),
    ("object_npy_in_checkpoint", "is damaged"),
    ("object_npy_in_npz", "damaged or not loadable"),
])
def test_loading_never_executes_code_from_the_file(tmp_path, kind, message):
    marker = tmp_path / "pwned"
    assert pickle.loads(pickle.dumps(_Payload(marker))) is None and marker.exists()   # the payload works...
    marker.unlink()
    if kind == "pickle":
        data = pickle.dumps({"w": _Payload(marker)}, protocol=2)
    elif kind == "torch_zip":
        data = _zip({"archive/data.pkl": pickle.dumps(_Payload(marker)), "archive/version": b"3"})
    elif kind == "object_npy_in_checkpoint":
        manifest = {"format": serialization.FORMAT, "version": 1, "root": {"$": "ndarray", "id": 0},
                    "arrays": [{"dtype": "|O", "shape": [1]}]}
        data = _zip({serialization.MANIFEST: json.dumps(manifest), "arrays/0.npy": _npy_with_objects(marker)})
    else:
        data = _zip({"w.npy": _npy_with_objects(marker)})
    path = tmp_path / "evil.pt"
    path.write_bytes(data)
    with pytest.raises(DataError, match=message):
        graphc.load(str(path))
    with pytest.raises(DataError, match=message):
        graphc.load(io.BytesIO(data))
    assert not marker.exists(), "graphc.load ran code from the file"


def test_save_refuses_objects_before_writing_anything(tmp_path):
    path = tmp_path / "ckpt.pt"
    graphc.save({"step": 1}, str(path))
    with pytest.raises(DataError, match="cannot store an object of type _Payload"):
        graphc.save({"step": 2, "evil": _Payload(tmp_path / "x")}, str(path))
    assert graphc.load(str(path)) == {"step": 1}
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_training_state_round_trips_exactly(tmp_path):
    """Model and optimizer state saved mid-training resume to the same next loss (nothing silently dropped)."""
    import graphc.nn as nn
    import graphc.nn.functional as F

    def build():
        graphc.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
        return net, graphc.optim.Adam(net.parameters(), lr=0.01)

    x, y = graphc.randn(4, 6), graphc.tensor([0, 1, 2, 1])

    def step(net, opt):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    net, opt = build()
    for _ in range(3):
        step(net, opt)
    graphc.save({"model": net.state_dict(), "optim": opt.state_dict()}, str(tmp_path / "c.pt"))
    expected = [step(net, opt) for _ in range(3)]
    net2, opt2 = build()
    ckpt = graphc.load(str(tmp_path / "c.pt"))
    net2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optim"])
    assert [step(net2, opt2) for _ in range(3)] == expected
