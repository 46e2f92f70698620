"""MNIST and FashionMNIST from the official IDX files, as torchvision.datasets reads them.

    train = MNIST(root='./data', train=True, transform=ToTensor(), download=True)
    img, label = train[0]        # float32 Tensor [1, 28, 28], 5
    train.data -> uint8 Tensor [60000, 28, 28]; train.targets -> int64 Tensor [60000]

Files: `root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`, gzipped (`.gz`) or not;
when both are there the uncompressed one is read. Every file is checked (gzip stream, IDX
magic number, sizes against the header, image/label counts, label range), and any problem
is a graphc.errors.DataError that names the file.

Where the data comes from (torchvision's rules; the data is never silently swapped):
  1. `root` given: the split's files under `root/MNIST/raw`. Missing, with download=False: a DataError
     that names the missing files and the folder. With download=True, every `.gz` absent there or
     with the wrong md5 is fetched first: copied from the copy the graphc repository ships in
     `data/MNIST/raw/` (DEFAULT_ROOT below) when that file's md5 matches torchvision's (the same bytes
     a download would give, and it works offline), else from the mirrors below with urllib (timeout
     `download_timeout` seconds); without a network that fails with a DataError saying what to put where.
  2. `root=None`: the packaged copy, read in place (None when graphc runs from an installed wheel
     without that folder). `dataset.raw_folder` says which folder was read.
Without a transform a sample's image is the uint8 HxW numpy array (torchvision gives a PIL Image;
graphc does not depend on PIL, and graphc's ToTensor accepts both).

Speed: `__getitems__(indices)` fetches a DataLoader batch with one numpy fancy index, and runs
graphc's own transforms (ToTensor, Normalize, Compose of them) once on the whole batch, which gives
exactly the per-sample results; other transforms (Lambda, user functions) run per sample.
Parsed files are cached in the process (keyed by path, size and mtime), so building the train and
test datasets again costs nothing.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...tensor import Tensor
from ...utils.data.collate import CollatedBatch
from ..transforms import batch_form
from .vision import VisionDataset

_REPO_DATA = Path(__file__).resolve().parents[3] / "data"
# The repository's own copy of the data (see data/MNIST/README.md), or None when graphc is installed without it.
DEFAULT_ROOT = str(_REPO_DATA) if (_REPO_DATA / "MNIST" / "raw").is_dir() else None

_IDX_CACHE = {}   # (path, size, mtime_ns, kind) -> read-only ndarray
_MD5_CACHE = {}   # (path, size, mtime_ns) -> md5 hex


class MNIST(VisionDataset):
    """The MNIST digits: 60,000 training and 10,000 test images, 28x28 uint8, labels 0-9 (CC BY-SA 3.0)."""

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]
    image_size = (28, 28)
    download_timeout = 5.0
    # Where to tell a user to find the files when they are missing and graphc has no copy at hand.
    source_hint = "the graphc source repository ships them in data/MNIST/raw/ (root='./data' from its root)"

    def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        self._raw_folder = self._locate(download)
        images, labels = self._load(self._raw_folder)
        self.data = Tensor._wrap(images)
        self.targets = Tensor._wrap(labels)

    # --- torchvision's attributes --------------------------------------------------------------
    @property
    def raw_folder(self):
        """The folder the files were read from (root/<Name>/raw, or the packaged copy's)."""
        return str(self._raw_folder)

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    @property
    def train_labels(self):
        warnings.warn("train_labels has been renamed targets")
        return self.targets

    @property
    def test_labels(self):
        warnings.warn("test_labels has been renamed targets")
        return self.targets

    @property
    def train_data(self):
        warnings.warn("train_data has been renamed data")
        return self.data

    @property
    def test_data(self):
        warnings.warn("test_data has been renamed data")
        return self.data

    def extra_repr(self):
        return f"Split: {'Train' if self.train else 'Test'}"

    # --- samples -------------------------------------------------------------------------------
    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        """(image, label): the image after `transform` (uint8 HxW ndarray without one), the label an int."""
        index = int(index)
        img = np.array(_array(self.data)[index])   # a private copy, like torchvision's fresh PIL Image
        target = int(_array(self.targets)[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __getitems__(self, indices):
        """A DataLoader batch in one go: [images Tensor [N, ...], labels int64 Tensor [N]], as default_collate gives."""
        images_tf = batch_form(self.transform)
        if images_tf is None or self.target_transform is not None:
            return [self[i] for i in indices]
        idx = np.asarray(indices, dtype=np.intp)
        images = images_tf(_array(self.data)[idx])
        if isinstance(images, np.ndarray):
            images = Tensor._wrap(images)
        labels = Tensor._wrap(_array(self.targets)[idx].astype(np.int64, copy=False))
        return CollatedBatch([images, labels], lambda i: self[int(idx[i])], len(idx))

    # --- files ---------------------------------------------------------------------------------
    @property
    def _split_files(self):
        prefix = "train" if self.train else "t10k"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    @classmethod
    def _packaged_folder(cls):
        if DEFAULT_ROOT is None:
            return None
        folder = Path(DEFAULT_ROOT) / cls.__name__ / "raw"
        return folder if folder.is_dir() else None

    @classmethod
    def _where_to_get(cls):
        packaged = cls._packaged_folder()
        if packaged is not None:
            return f"graphc's own copy is in {packaged}{os.sep} (root=None reads it there)"
        return cls.source_hint

    def _locate(self, download):
        """The raw folder to read, after falling back to the packaged copy or downloading as needed."""
        name = type(self).__name__
        if self.root is None:
            packaged = self._packaged_folder()
            if packaged is None:
                raise DataError(name, "root=None, and this graphc has no packaged copy of the data",
                                hint=f"pass root='<folder>' (the files go in <folder>/{name}/raw/), with "
                                     f"download=True to fetch them")
            folder = packaged
        else:
            folder = Path(os.fspath(self.root)) / name / "raw"
            if download:
                self._download(folder)
        missing = [base for base in self._split_files if _find(folder, base) is None]
        if missing:
            split = "train" if self.train else "test"
            listing = "".join(f"\n    {folder / (base + '.gz')}   (or uncompressed: {base})" for base in missing)
            if self._packaged_folder() is not None:
                hint = (f"pass download=True to put them there (copied from graphc's packaged copy, md5-checked), "
                        f"or root=None to read {self._packaged_folder()}{os.sep} in place")
            else:
                hint = (f"pass download=True to fetch them, or put the official {name} files there; "
                        f"{self._where_to_get()}")
            raise DataError(name, f"the {split} split's files are missing from {folder}{os.sep}:{listing}", hint=hint)
        return folder

    def _download(self, folder):
        """Fetch every resource whose .gz is absent or has the wrong md5 (and has no uncompressed twin)."""
        name = type(self).__name__
        for filename, md5 in self.resources:
            path = folder / filename
            raw_twin = folder / filename[:-3]
            if path.exists():
                if _md5(path) == md5:
                    continue
                problem = f"{path} has md5 {_md5(path)}, expected {md5}"
            elif raw_twin.exists():
                continue
            else:
                problem = f"{path} is missing"
            if self._copy_packaged(filename, md5, path):
                continue
            errors = []
            for mirror in self.mirrors:
                url = mirror + filename
                try:
                    request = urllib.request.Request(url, headers={"User-Agent": "graphc"})
                    with urllib.request.urlopen(request, timeout=self.download_timeout) as response:
                        payload = response.read()
                except Exception as exc:   # URLError, timeouts, HTTP errors: try the next mirror
                    errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
                    continue
                got = hashlib.md5(payload).hexdigest()
                if got != md5:
                    errors.append(f"{url}: md5 {got}, expected {md5}")
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                part = path.with_name(filename + ".part")
                part.write_bytes(payload)
                os.replace(part, path)
                break
            else:
                wanted = ", ".join(f"{f} (md5 {m})" for f, m in self.resources)
                raise DataError(name, f"download=True could not fetch {filename} ({problem}):\n    "
                                      + "\n    ".join(errors),
                                hint=f"without a network, put the official {name} files {wanted} into "
                                     f"{folder}{os.sep}; {self._where_to_get()}")

    def _copy_packaged(self, filename, md5, path):
        """Copy filename from the packaged copy to path if it is there with the expected md5; True if copied."""
        packaged = self._packaged_folder()
        source = None if packaged is None else packaged / filename
        if source is None or not source.is_file() or source.resolve() == path.resolve() or _md5(source) != md5:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        shutil.copyfile(source, part)
        os.replace(part, path)
        return True

    def _load(self, folder):
        name = type(self).__name__
        image_base, label_base = self._split_files
        image_path, label_path = _find(folder, image_base), _find(folder, label_base)
        images = read_idx(image_path, 3, name)
        labels = read_idx(label_path, 1, name, as_int64=True)
        if tuple(images.shape[1:]) != tuple(self.image_size):
            size = "x".join(map(str, self.image_size))
            raise DataError(name, f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, expected {size}")
        if len(images) != len(labels):
            raise DataError(name, f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
                                  f"labels", hint="the two files come from different splits or datasets")
        if len(labels) and int(labels.max()) >= len(self.classes):
            raise DataError(name, f"{label_path}: label {int(labels.max())} is out of range for "
                                  f"{len(self.classes)} classes")
        return images, labels


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and sizes, ten kinds of clothing (MIT licence); not shipped."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    source_hint = "they are at https://github.com/zalandoresearch/fashion-mnist (data/fashion/)"


# --- IDX files ---------------------------------------------------------------------------------

def _array(x):
    if isinstance(x, Tensor):
        return x._value
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def _find(folder, base):
    """folder/base (uncompressed, preferred: no gunzip) or folder/base.gz, whichever exists; else None."""
    for candidate in (folder / base, folder / (base + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _stat_key(path):
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _md5(path):
    key = _stat_key(path)
    if key not in _MD5_CACHE:
        _MD5_CACHE[key] = hashlib.md5(path.read_bytes()).hexdigest()
    return _MD5_CACHE[key]


_GZIP_FAILURES = (OSError, EOFError, zlib.error)


def read_idx(path, ndim, dataset="IDX", as_int64=False):
    """An IDX file of uint8 values with `ndim` dimensions as a read-only ndarray (cached per file version).

    read_idx(Path('train-labels-idx1-ubyte.gz'), 1) -> uint8 array [60000]
    """
    path = Path(path)
    key = _stat_key(path) + (ndim, as_int64)
    cached = _IDX_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(dataset, f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except EOFError:
            raise DataError(dataset, f"{path}: the gzip stream is truncated (the file ends before the compressed "
                                     f"data does)", hint="the file was cut short: download or copy it again") \
                from None
        except _GZIP_FAILURES as exc:
            raise DataError(dataset, f"{path}: not a valid gzip file ({exc})",
                            hint="the file is corrupt: download or copy it again") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    want = 0x0800 | ndim
    if magic != want:
        got = "missing (the file is shorter than 4 bytes)" if magic is None else f"0x{magic:08x}"
        raise DataError(dataset, f"{path}: wrong IDX magic number {got}, expected 0x{want:08x} (uint8, {ndim} "
                                 f"dimension{'s' if ndim > 1 else ''})",
                        hint="this is not an MNIST-format " + ("images" if ndim == 3 else "labels") + " file")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(dataset, f"{path}: the IDX header is truncated ({len(raw)} bytes, the header needs "
                                 f"{header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    need = int(np.prod(dims, dtype=np.int64))
    have = len(raw) - header
    if have != need:
        what = "truncated" if have < need else "longer than its header says"
        raise DataError(dataset, f"{path}: {what}: the header's sizes {list(dims)} need {need} bytes of data, "
                                 f"the file has {have}")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    if as_int64:
        array = array.astype(np.int64)
    array.flags.writeable = False   # shared by every dataset built from this file
    _IDX_CACHE[key] = array
    return array
