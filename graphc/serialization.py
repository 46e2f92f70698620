"""graphc.save / graphc.load: checkpoints as a zip of .npy arrays plus a JSON manifest (no pickle).

    graphc.save({"epoch": 3, "model": net.state_dict(), "optim": opt.state_dict()}, "ckpt.pt")
    net.load_state_dict(graphc.load("ckpt.pt")["model"])

The manifest describes the nested structure (dict/OrderedDict/list/tuple of tensors, arrays,
numbers, strings, bools, None); loading only ever parses JSON and .npy headers, so a checkpoint
from anywhere cannot run code.  Saving to a path is atomic: the bytes go to a temporary file in
the same directory, are fsynced, and replace the target in one os.replace.
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections import OrderedDict

import numpy as np

from .errors import DataError
from .fileio import write_atomic
from .tensor import Tensor

FORMAT = "graphc-checkpoint"
VERSION = 1
MANIFEST = "graphc_manifest.json"
_ARRAY_DIR = "arrays/"


class UnsupportedObjectError(DataError, TypeError):
    """graphc.save was given an object it cannot store safely."""


class MissingFileError(DataError, FileNotFoundError):
    """graphc.load was pointed at a file that does not exist."""


# --- encoding ---------------------------------------------------------------------------------

class _Encoder:
    """Turns a Python object tree into a JSON-able manifest node plus a list of arrays."""

    def __init__(self):
        self.arrays = []     # ndarrays, in member order
        self.by_id = {}      # id(ndarray) -> member index: storage shared between tensors is saved once
        self.keep = []       # keep encoded arrays alive so that ids stay unique

    def array_ref(self, arr, where):
        if arr.dtype.hasobject or arr.dtype.kind not in "biufc":
            raise UnsupportedObjectError("save", f"cannot store an array of dtype {arr.dtype} at {where}",
                                         hint="only bool, integer, float and complex arrays can be saved")
        key = id(arr)
        if key not in self.by_id:
            self.by_id[key] = len(self.arrays)
            self.arrays.append(arr)
            self.keep.append(arr)
        return self.by_id[key]

    def encode(self, obj, where):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            # JSON has no nan/inf: tag them so that a strict parser could read the manifest too
            return obj if math.isfinite(obj) else {"$": "float", "v": repr(obj)}
        if isinstance(obj, Tensor):
            return self.encode_tensor(obj, where)
        if isinstance(obj, np.ndarray):
            return {"$": "ndarray", "id": self.array_ref(obj, where)}
        if isinstance(obj, np.generic):
            return {"$": "npscalar", "id": self.array_ref(np.asarray(obj), where)}
        if isinstance(obj, np.dtype):
            return {"$": "dtype", "v": obj.str if obj.kind != "b" else "bool"}
        if isinstance(obj, dict):
            keys, values = [], []
            for k, v in obj.items():
                if not (k is None or isinstance(k, (str, int, float, bool, tuple))):
                    raise UnsupportedObjectError("save", f"cannot store a dict key of type {type(k).__name__} "
                                                         f"at {where}",
                                                 hint="dict keys must be strings, numbers, bools, None or tuples")
                keys.append(self.encode(k, f"{where}[{k!r}] (key)"))
                values.append(self.encode(v, f"{where}[{k!r}]"))
            return {"$": "odict" if isinstance(obj, OrderedDict) else "dict", "keys": keys, "values": values}
        if isinstance(obj, (list, tuple)):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
            return {"$": "list" if isinstance(obj, list) else "tuple", "items": items}
        if isinstance(obj, complex):
            return {"$": "complex", "re": self.encode(obj.real, where), "im": self.encode(obj.imag, where)}
        if type(obj).__name__ == "device" and hasattr(obj, "type"):
            return {"$": "device", "v": str(obj)}
        hint = "graphc.save stores tensors, arrays, numbers, strings, bools, None and dicts/lists/tuples of them"
        if hasattr(obj, "state_dict"):
            hint = f"save its state_dict() instead: graphc.save(obj.state_dict(), f), and rebuild the " \
                   f"{type(obj).__name__} before load_state_dict"
        raise UnsupportedObjectError("save", f"cannot store an object of type {type(obj).__name__} at {where}",
                                     hint=hint)

    def encode_tensor(self, t, where):
        from .nn.parameter import Parameter
        arr = t._need_value("graphc.save", "save outside the compiled function, after it has run")
        node = {"$": "tensor", "id": self.array_ref(arr, where)}
        if t.requires_grad and t.is_leaf:
            node["requires_grad"] = True
        if isinstance(t, Parameter):
            node["param"] = True
        return node


def _encode(obj):
    enc = _Encoder()
    root = enc.encode(obj, "obj")
    manifest = {"format": FORMAT, "version": VERSION, "root": root,
                "arrays": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in enc.arrays]}
    return json.dumps(manifest, allow_nan=False, separators=(",", ":")), enc.arrays


def _write_zip(fileobj, manifest, arrays):
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        # the manifest goes first: a reader can tell a graphc checkpoint from its first member
        zf.writestr(MANIFEST, manifest)
        for i, arr in enumerate(arrays):
            with zf.open(f"{_ARRAY_DIR}{i}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Write obj (tensors, arrays, numbers, strings and dict/list/tuple of them) to a path or file object.

        graphc.save(model.state_dict(), "mnist_cnn.pt")
    """
    manifest, arrays = _encode(obj)   # everything is checked before a single byte is written
    if hasattr(f, "write"):
        buf = io.BytesIO()
        _write_zip(buf, manifest, arrays)
        f.write(buf.getvalue())
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise MissingFileError("save", f"cannot write {path}: the directory {directory} does not exist",
                               hint="create it first: os.makedirs(directory, exist_ok=True)")
    write_atomic(path, lambda fh: _write_zip(fh, manifest, arrays), durable=True)


# --- decoding ---------------------------------------------------------------------------------

class _Decoder:
    def __init__(self, name, zf, manifest):
        self.name = name
        self.zf = zf
        self.specs = manifest.get("arrays")
        if not isinstance(self.specs, list):
            raise self.error("the manifest has no array list")
        self.cache = {}

    def error(self, what, hint=None):
        return DataError("load", f"{self.name}: {what}", hint=hint or "the file is corrupt; save it again")

    def array(self, i):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(self.specs):
            raise self.error(f"the manifest refers to array {i!r}, which does not exist")
        if i not in self.cache:
            member = f"{_ARRAY_DIR}{i}.npy"
            try:
                with self.zf.open(member) as fh:
                    arr = np.lib.format.read_array(fh, allow_pickle=False)
            except KeyError:
                raise self.error(f"array member {member!r} is missing") from None
            except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
                raise self.error(f"array member {member!r} is damaged ({exc})") from None
            spec = self.specs[i]
            if not isinstance(spec, dict) or arr.dtype.str != spec.get("dtype") or \
                    list(arr.shape) != spec.get("shape"):
                raise self.error(f"array member {member!r} is {arr.dtype.str}{list(arr.shape)} but the manifest "
                                 f"says {spec}")
            if not arr.flags.writeable:
                arr = arr.copy()
            self.cache[i] = arr
        return self.cache[i]

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        tag = node.get("$") if isinstance(node, dict) else None
        handler = _DECODERS.get(tag) if isinstance(tag, str) else None
        if handler is None:
            raise self.error(f"unknown entry in the manifest: {str(node)[:80]}")
        try:
            return handler(self, node)
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self.error(f"malformed {tag!r} entry in the manifest ({type(exc).__name__}: {exc})") from None

    def _float(self, node):
        return float(node["v"])

    def _complex(self, node):
        return complex(self.decode(node["re"]), self.decode(node["im"]))

    def _list(self, node):
        return [self.decode(v) for v in node["items"]]

    def _tuple(self, node):
        return tuple(self.decode(v) for v in node["items"])

    def _dict(self, node, cls=dict):
        keys, values = node["keys"], node["values"]
        if len(keys) != len(values):
            raise self.error("a dict entry has different numbers of keys and values")
        return cls((self.decode(k), self.decode(v)) for k, v in zip(keys, values))

    def _odict(self, node):
        return self._dict(node, OrderedDict)

    def _ndarray(self, node):
        return self.array(node["id"])

    def _npscalar(self, node):
        return self.array(node["id"])[()]

    def _dtype(self, node):
        return np.dtype(node["v"])

    def _device(self, node):
        from .device import device
        return device(node["v"])

    def _tensor(self, node):
        arr = self.array(node["id"])
        if node.get("param"):
            from .nn.parameter import Parameter
            return Parameter(Tensor._wrap(arr), requires_grad=bool(node.get("requires_grad")))
        t = Tensor._wrap(arr)
        if node.get("requires_grad"):
            t.requires_grad_(True)
        return t


# The only things a manifest can ask for: a closed table, so that no name in a file reaches getattr.
_DECODERS = {tag: getattr(_Decoder, "_" + tag) for tag in
             ("float", "complex", "list", "tuple", "dict", "odict", "ndarray", "npscalar", "dtype", "device", "tensor")}


def _describe(f):
    if isinstance(f, (str, bytes, os.PathLike)):
        return os.fspath(f) if not isinstance(f, bytes) else f.decode(errors="replace")
    return getattr(f, "name", None) or f"<{type(f).__name__}>"


def _sniff(name, head):
    """Explain why bytes that do not open as a zip are not a checkpoint."""
    if not head:
        return DataError("load", f"{name}: the file is empty", hint="the save was interrupted or never happened")
    if head.startswith(b"PK"):
        return DataError("load", f"{name}: the file is truncated or corrupt (its zip directory cannot be read)",
                         hint="the save was probably interrupted; use an earlier checkpoint or save it again")
    if head[:1] == b"\x80":
        return DataError("load", f"{name}: this is a pickle file (legacy torch.save format); graphc.load never "
                                 f"unpickles, because unpickling can run arbitrary code",
                         hint="convert it where torch is installed: "
                              "np.savez(out, **{k: v.numpy() for k, v in torch.load(f).items()})")
    return DataError("load", f"{name}: not a graphc checkpoint (unrecognised file format)",
                     hint="graphc.load reads files written by graphc.save (or numpy .npz files)")


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **pickle_load_args):
    """Read what graphc.save wrote (tensors come back on the CPU; map_location is accepted and ignored).

        state = graphc.load("mnist_cnn.pt"); model.load_state_dict(state)
    """
    name = _describe(f)
    if hasattr(f, "read"):
        fh, owned = f, False
        if not (hasattr(f, "seekable") and f.seekable()):
            fh = io.BytesIO(f.read())   # zipfile needs to seek
    else:
        try:
            fh, owned = open(os.fspath(f), "rb"), True
        except FileNotFoundError:
            raise MissingFileError("load", f"{name}: no such file",
                                   hint="check the path; graphc.save writes the file only when the save completes") \
                from None
    try:
        start = fh.tell()
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError):
            fh.seek(start)
            raise _sniff(name, fh.read(8)) from None
        with zf:
            return _load_zip(name, zf)
    finally:
        if owned:
            fh.close()


def _load_zip(name, zf):
    members = set(zf.namelist())
    if MANIFEST not in members:
        return _load_foreign(name, zf, members)
    try:
        manifest = json.loads(zf.read(MANIFEST).decode("utf-8"))
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError, EOFError, OSError, RecursionError) as exc:
        raise DataError("load", f"{name}: the manifest is damaged ({type(exc).__name__}: {exc})",
                        hint="the file is corrupt; use an earlier checkpoint or save it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError("load", f"{name}: the manifest does not describe a graphc checkpoint")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise DataError("load", f"{name}: checkpoint format version {manifest.get('version')!r} is newer than "
                                f"this graphc understands ({VERSION})", hint="upgrade graphc")
    if "root" not in manifest:
        raise DataError("load", f"{name}: the manifest has no root object")
    try:
        return _Decoder(name, zf, manifest).decode(manifest["root"])
    except RecursionError:
        raise DataError("load", f"{name}: the manifest nests too deeply") from None


def _load_foreign(name, zf, members):
    """A zip without a graphc manifest: a numpy .npz loads as an OrderedDict of tensors; torch's zip is refused."""
    if any(m.endswith("/data.pkl") or m == "data.pkl" for m in members):
        raise DataError("load", f"{name}: this is a torch.save checkpoint (pickle inside a zip); graphc.load never "
                                f"unpickles, because unpickling can run arbitrary code",
                        hint="convert it where torch is installed: "
                             "np.savez(out, **{k: v.numpy() for k, v in torch.load(f).items()}), then graphc.load(out)")
    if not members or not all(m.endswith(".npy") for m in members):
        raise DataError("load", f"{name}: a zip file without a graphc manifest",
                        hint="graphc.load reads files written by graphc.save (or numpy .npz files)")
    out = OrderedDict()
    for m in zf.namelist():
        try:
            with zf.open(m) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
            raise DataError("load", f"{name}: array member {m!r} is damaged or not loadable ({exc})") from None
        out[m[:-4]] = Tensor._wrap(arr if arr.flags.writeable else arr.copy())
    return out
