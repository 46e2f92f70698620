"""graphc.save / graphc.load: round trips, atomic writes, and clear errors on damaged or foreign files."""
import io
import math
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.serialization as S
from graphc import fileio
from graphc.errors import DataError


def _net():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3), nn.BatchNorm1d(3))


def test_round_trip_nested_checkpoint(tmp_path):
    net = _net()
    ckpt = {
        "epoch": 7, "lr": 0.01, "best": float("inf"), "name": "mnist", "done": False, "none": None,
        "model": net.state_dict(),
        "optimizer": {"state": {0: {"step": graphc.tensor(3.0), "exp_avg": graphc.zeros(2, 2)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1, 2]}]},
        "history": [1.5, 2, (3, "x")], "array": np.arange(6).reshape(2, 3), "scalar": np.float32(2.5),
        "dtype": graphc.float64, "device": graphc.device("cpu"), "nan": float("nan"),
    }
    path = tmp_path / "ckpt.pt"
    graphc.save(ckpt, path)
    got = graphc.load(path)
    assert list(got) == list(ckpt)
    assert got["epoch"] == 7 and isinstance(got["epoch"], int) and got["lr"] == 0.01 and got["best"] == math.inf
    assert got["name"] == "mnist" and got["done"] is False and got["none"] is None and math.isnan(got["nan"])
    assert got["history"] == [1.5, 2, (3, "x")] and isinstance(got["history"][2], tuple)
    assert type(got["model"]) is OrderedDict and list(got["model"]) == list(net.state_dict())
    for k, v in net.state_dict().items():
        assert got["model"][k].dtype == v.dtype and got["model"][k].shape == v.shape
        np.testing.assert_array_equal(got["model"][k].numpy(), v.numpy())
    assert list(got["optimizer"]["state"]) == [0]                 # int keys stay ints
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    np.testing.assert_array_equal(got["array"], np.arange(6).reshape(2, 3))
    assert got["scalar"] == np.float32(2.5) and got["scalar"].dtype == np.float32
    assert got["dtype"] == np.float64 and got["device"] == graphc.device("cpu")


def test_model_round_trip_restores_outputs(tmp_path):
    graphc.manual_seed(0)
    a, b = _net().eval(), _net().eval()
    graphc.save(a.state_dict(), str(tmp_path / "m.pt"))
    storage = b[3].weight.numpy() if not b[3].weight.requires_grad else b[3].weight.detach().numpy()
    b.load_state_dict(graphc.load(str(tmp_path / "m.pt")))
    assert np.shares_memory(b[3].weight.detach().numpy(), storage)      # loaded in place
    x = graphc.randn(2, 1, 6, 6)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int32", "int64", "float16", "float32", "float64"])
def test_dtypes_and_shapes(dtype):
    for shape in [(), (0,), (3,), (2, 0, 3), (2, 3, 4)]:
        a = (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)
        buf = io.BytesIO()
        graphc.save({"t": graphc.from_numpy(a), "a": a}, buf)
        buf.seek(0)
        got = graphc.load(buf)
        assert got["t"].dtype == a.dtype and tuple(got["t"].shape) == shape
        np.testing.assert_array_equal(got["t"].numpy(), a)
        np.testing.assert_array_equal(got["a"], a)


def test_non_contiguous_and_shared_storage():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = graphc.from_numpy(base.T)
    p = nn.Parameter(graphc.ones(2))
    buf = io.BytesIO()
    graphc.save({"t": t, "p": p, "same": [p, p.detach()], "g": graphc.ones(2, requires_grad=True)}, buf)
    buf.seek(0)
    got = graphc.load(buf)
    np.testing.assert_array_equal(got["t"].numpy(), base.T)
    assert isinstance(got["p"], nn.Parameter) and got["p"].requires_grad
    assert got["g"].requires_grad and not isinstance(got["g"], nn.Parameter)
    assert not got["same"][1].requires_grad
    # one storage saved once, and shared again after loading
    assert np.shares_memory(got["same"][0].detach().numpy(), got["same"][1].numpy())
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".npy")]) == 3


def test_loaded_tensors_are_writable():
    buf = io.BytesIO()
    graphc.save({"w": graphc.ones(3)}, buf)
    buf.seek(0)
    w = graphc.load(buf, map_location="cpu")["w"]
    w.add_(1.0)
    np.testing.assert_array_equal(w.numpy(), [2, 2, 2])


def test_unsupported_objects_are_refused_before_writing(tmp_path):
    path = tmp_path / "x.pt"
    graphc.save({"ok": 1}, path)
    with pytest.raises(S.UnsupportedObjectError) as e:
        graphc.save({"model": _net()}, path)
    assert str(e.value).startswith("save: cannot store an object of type Sequential at obj['model']")
    assert "save its state_dict() instead" in str(e.value)
    assert isinstance(e.value, TypeError) and isinstance(e.value, DataError)
    with pytest.raises(S.UnsupportedObjectError, match=r"cannot store an array of dtype object at obj\[0\]"):
        graphc.save([np.array([{}], dtype=object)], path)
    with pytest.raises(S.UnsupportedObjectError, match="cannot store a dict key of type Tensor"):
        graphc.save({graphc.ones(1): 1}, path)
    assert graphc.load(path) == {"ok": 1}
    assert sorted(os.listdir(tmp_path)) == ["x.pt"]


def test_crash_mid_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    graphc.save({"epoch": 1, "w": graphc.ones(3)}, path)
    original = np.lib.format.write_array
    calls = []

    def dying_write(fh, arr, **kw):
        calls.append(1)
        if len(calls) == 2:
            fh.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt("power cut")
        return original(fh, arr, **kw)

    monkeypatch.setattr(np.lib.format, "write_array", dying_write)
    with pytest.raises(KeyboardInterrupt):
        graphc.save({"epoch": 2, "w": graphc.zeros(3), "v": graphc.zeros(2)}, path)
    monkeypatch.undo()
    got = graphc.load(path)
    assert got["epoch"] == 1 and got["w"].numpy().tolist() == [1, 1, 1]
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_save_file_mode_follows_umask(tmp_path):
    path = tmp_path / "m.pt"
    graphc.save({}, path)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~fileio.umask()


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="the directory .*nope does not exist"):
        graphc.save({}, tmp_path / "nope" / "m.pt")


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as e:
        graphc.load(tmp_path / "absent.pt")
    assert isinstance(e.value, FileNotFoundError)
    assert str(e.value).startswith(f"load: {tmp_path / 'absent.pt'}: no such file")


def _damaged(tmp_path, data, name="bad.pt"):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError) as e:
        graphc.load(path)
    assert str(path) in str(e.value)
    return str(e.value)


def _good_bytes():
    buf = io.BytesIO()
    graphc.save({"epoch": 3, "w": graphc.arange(100).float()}, buf)
    return buf.getvalue()


def test_truncated_file(tmp_path):
    data = _good_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        msg = _damaged(tmp_path, data[:cut])
        assert "the file is truncated or corrupt (its zip directory cannot be read)" in msg
        assert "help: the save was probably interrupted" in msg


def test_empty_and_garbage_files(tmp_path):
    assert "the file is empty" in _damaged(tmp_path, b"")
    assert "not a graphc checkpoint (unrecognised file format)" in _damaged(tmp_path, b"hello world" * 10)


def test_flipped_bytes_in_array_data(tmp_path):
    data = bytearray(_good_bytes())
    i = data.find(b"\x93NUMPY") + 200          # past the 128-byte .npy header, inside the 400-byte payload
    data[i] ^= 0xFF
    msg = _damaged(tmp_path, bytes(data))
    assert "array member 'arrays/0.npy' is damaged" in msg


def test_damaged_manifest(tmp_path):
    data = _good_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, b"{not json" if name == S.MANIFEST else src.read(name))
    assert "the manifest is damaged (JSONDecodeError" in _damaged(tmp_path, buf.getvalue())


def test_manifest_cannot_ask_for_arbitrary_objects(tmp_path):
    for root in ({"$": "__class__"}, {"$": "decode"}, {"$": "tensor", "id": 5}, {"$": "tensor"}, [1, 2]):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(S.MANIFEST, __import__("json").dumps({"format": S.FORMAT, "version": 1, "root": root,
                                                                "arrays": []}))
        msg = _damaged(tmp_path, buf.getvalue())
        assert "manifest" in msg


def test_pickle_files_are_refused_not_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo should-never-run",))

    msg = _damaged(tmp_path, pickle.dumps({"x": 1}, protocol=2))
    assert "this is a pickle file (legacy torch.save format); graphc.load never unpickles" in msg
    _damaged(tmp_path, pickle.dumps(Boom(), protocol=2), "boom.pt")


def test_torch_checkpoints_are_refused_with_a_way_out(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "t.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(DataError) as e:
        graphc.load(path)
    assert "this is a torch.save checkpoint (pickle inside a zip)" in str(e.value)
    assert "np.savez" in str(e.value)


def test_numpy_npz_loads_as_dict_of_tensors(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, weight=np.ones((2, 2), np.float32), bias=np.zeros(2))
    got = graphc.load(path)
    assert list(got) == ["weight", "bias"] and isinstance(got["weight"], graphc.Tensor)
    m = nn.Linear(2, 2)
    m.load_state_dict(got)
    assert m.weight.detach().numpy().sum() == 4


def test_file_objects_and_non_seekable_streams(tmp_path):
    with open(tmp_path / "f.pt", "wb") as fh:
        graphc.save([1, graphc.ones(2)], fh)
    with open(tmp_path / "f.pt", "rb") as fh:
        got = graphc.load(fh)
    assert got[0] == 1 and got[1].numpy().tolist() == [1, 1]

    class Stream(io.RawIOBase):
        def __init__(self, data):
            self.inner = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def read(self, n=-1):
            return self.inner.read(n)

    assert graphc.load(Stream((tmp_path / "f.pt").read_bytes()))[0] == 1
