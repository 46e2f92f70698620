"""MNIST from the repository's copy of the official files: contents, the batched path, and file errors."""
import gzip
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

import graphc
import graphc as torch
import graphc.vision as torchvision
from graphc.errors import DataError
from graphc.utils.data import DataLoader, default_collate, random_split
from graphc.vision import datasets, transforms
from graphc.vision.datasets import mnist

REPO_DATA = Path(__file__).resolve().parents[2] / "data"
RAW = REPO_DATA / "MNIST" / "raw"
NORMALIZE = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])

pytestmark = pytest.mark.skipif(not (RAW / "train-images-idx3-ubyte.gz").exists(),
                                reason="the repository's data/MNIST/raw files are not here")


@pytest.fixture(scope="module")
def train():
    return datasets.MNIST(root=str(REPO_DATA), train=True, transform=NORMALIZE)


@pytest.fixture(scope="module")
def test():
    return datasets.MNIST(root=str(REPO_DATA), train=False, transform=transforms.ToTensor())


def _e(path):
    return re.escape(str(path))


def _raw_root(tmp_path, files):
    """tmp_path/MNIST/raw holding the named official files (symlinks: no copy, and the parse cache hits)."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in files:
        (raw / name).symlink_to(RAW / name)
    return raw


def test_imports_as_in_pytorch_programs():
    assert torchvision.datasets.MNIST is datasets.MNIST
    assert torchvision.transforms.ToTensor is transforms.ToTensor
    import graphc.vision.transforms as t
    assert t is transforms


def test_train_split(train):
    assert len(train) == 60000
    assert train.data.shape == (60000, 28, 28) and train.data.dtype == np.uint8
    assert train.targets.shape == (60000,) and train.targets.dtype == np.int64
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(train.targets.numpy()).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                                           5949]
    assert train.classes[5] == "5 - five" and train.class_to_idx["0 - zero"] == 0
    img, label = train[0]
    assert isinstance(img, graphc.Tensor) and img.shape == (1, 28, 28) and img.dtype == np.float32
    assert label == 5 and type(label) is int


def test_test_split(test):
    assert len(test) == 10000 and test.data.shape == (10000, 28, 28)
    assert test.targets[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    img, label = test[0]
    assert img.shape == (1, 28, 28) and 0.0 <= img.min().item() and img.max().item() == 1.0 and label == 7


def test_no_transform_gives_uint8_arrays():
    ds = datasets.MNIST(str(REPO_DATA), train=False)
    img, label = ds[0]
    assert isinstance(img, np.ndarray) and img.shape == (28, 28) and img.dtype == np.uint8 and label == 7
    x, y = next(iter(DataLoader(ds, batch_size=5)))
    assert x.dtype == np.uint8 and x.shape == (5, 28, 28) and y.tolist() == [7, 2, 1, 0, 4]


def test_normalization_statistics(train):
    total = total_sq = count = 0.0
    for x, _ in DataLoader(train, batch_size=6000):   # through ToTensor + Normalize((0.1307,), (0.3081,))
        v = x.numpy()
        total += v.sum(dtype=np.float64)
        total_sq += np.square(v).sum(dtype=np.float64)
        count += v.size
    mean = total / count
    std = np.sqrt(total_sq / count - mean ** 2)
    assert mean == pytest.approx(0.0, abs=2e-4) and std == pytest.approx(1.0, abs=2e-4)
    # back to the ToTensor scale, [0, 1]: the constants of the PyTorch MNIST example
    assert 0.1307 + 0.3081 * mean == pytest.approx(0.1307, abs=5e-5)
    assert 0.3081 * std == pytest.approx(0.3081, abs=5e-5)


@pytest.mark.parametrize("transform", [
    NORMALIZE,
    transforms.ToTensor(),
    None,
    transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda x: x * 2)]),   # user code: per sample
], ids=["normalize", "totensor", "none", "lambda"])
def test_batched_path_equals_per_sample_path(transform):
    ds = datasets.MNIST(str(REPO_DATA), train=False, transform=transform)
    idx = [9999, 0, 17, 4242, 17, 3]
    fast = default_collate(ds.__getitems__(idx))
    slow = default_collate([ds[i] for i in idx])
    for a, b in zip(fast, slow):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a.numpy(), b.numpy())   # bit for bit


def test_target_transform_runs_per_sample():
    ds = datasets.MNIST(str(REPO_DATA), train=False, transform=transforms.ToTensor(),
                        target_transform=lambda y: y + 100)
    assert ds[0][1] == 107
    _, y = next(iter(DataLoader(ds, batch_size=3)))
    assert y.tolist() == [107, 102, 101]


def test_loader_epoch_is_fast_and_reproducible(train):
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    assert len(loader) == 938
    torch.manual_seed(1)
    start = time.perf_counter()
    seen = 0
    for x, y in loader:
        seen += len(y)
    elapsed = time.perf_counter() - start
    assert seen == 60000 and x.shape == (32, 1, 28, 28) and y.dtype == np.int64
    assert elapsed < 2.0, f"one MNIST epoch took {elapsed:.2f} s: the batched __getitems__ path is not being used"
    torch.manual_seed(1)
    first = next(iter(loader))[1].tolist()
    torch.manual_seed(1)
    assert next(iter(loader))[1].tolist() == first


def test_random_split_of_mnist_stays_batched(train):
    part, _ = random_split(train, [1000, 59000], generator=graphc.Generator().manual_seed(0))
    batch = part.__getitems__([0, 1, 2])
    x, y = default_collate(batch)
    assert x.shape == (3, 1, 28, 28) and y.tolist() == [train[part.indices[i]][1] for i in range(3)]


def test_subsetting_data_and_targets_like_torchvision():
    ds = datasets.MNIST(str(REPO_DATA), train=False, transform=transforms.ToTensor())
    ds.data, ds.targets = ds.data[:100], ds.targets[:100]
    assert len(ds) == 100 and len(DataLoader(ds, batch_size=64)) == 2


def test_root_none_reads_the_packaged_copy_in_place():
    assert Path(mnist.DEFAULT_ROOT) == REPO_DATA
    assert Path(datasets.MNIST(None, train=False).raw_folder) == RAW


def test_missing_root_without_download_is_an_error_not_a_substitution(tmp_path):
    raw = tmp_path / "nowhere" / "MNIST" / "raw"
    with pytest.raises(DataError) as info:
        datasets.MNIST(str(tmp_path / "nowhere"), train=False)
    text = str(info.value)
    assert text.startswith(f"MNIST: the test split's files are missing from {raw}{os.sep}:\n"
                           f"    {raw / 't10k-images-idx3-ubyte.gz'}   (or uncompressed: t10k-images-idx3-ubyte)\n"
                           f"    {raw / 't10k-labels-idx1-ubyte.gz'}   (or uncompressed: t10k-labels-idx1-ubyte)\n")
    assert text.endswith(f"help: pass download=True to put them there (copied from graphc's packaged copy, "
                         f"md5-checked), or root=None to read {RAW}{os.sep} in place")
    assert not (tmp_path / "nowhere").exists()


def test_download_offline_copies_the_packaged_files_md5_checked(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download=True went to the network although the packaged copy matches")
    monkeypatch.setattr(mnist.urllib.request, "urlopen", no_network)
    ds = datasets.MNIST(str(tmp_path / "data"), train=False, download=True)
    raw = tmp_path / "data" / "MNIST" / "raw"
    assert Path(ds.raw_folder) == raw and len(ds) == 10000 and ds.targets[:3].tolist() == [7, 2, 1]
    for name, md5 in datasets.MNIST.resources:   # every file, as torchvision's download fetches them all
        assert (raw / name).is_file() and not (raw / name).is_symlink()
        assert mnist._md5(raw / name) == md5
    assert not list(raw.glob("*.part"))


def test_download_replaces_a_corrupt_file_from_the_packaged_copy(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\0"))
    ds = datasets.MNIST(str(tmp_path), train=False, download=True)
    assert len(ds) == 10000 and mnist._md5(raw / "t10k-labels-idx1-ubyte.gz") == "ec29112dd5afa0611ce80d1b7f02629c"


def test_reads_uncompressed_files(tmp_path):
    raw = _raw_root(tmp_path, [])
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(gzip.decompress((RAW / (name + ".gz")).read_bytes()))
    ds = datasets.MNIST(str(tmp_path), train=False)
    assert Path(ds.raw_folder) == raw and ds.targets[:3].tolist() == [7, 2, 1]


def test_repr(test):
    text = repr(test)
    assert text.startswith("Dataset MNIST\n    Number of datapoints: 10000\n")
    assert "Split: Test" in text and "ToTensor()" in text


# --- errors ---------------------------------------------------------------------------------------

@pytest.fixture
def no_packaged_copy(monkeypatch):
    monkeypatch.setattr(mnist, "DEFAULT_ROOT", None)


def test_missing_files_error(tmp_path, no_packaged_copy):
    with pytest.raises(DataError) as info:
        datasets.MNIST(str(tmp_path), train=True)
    text = str(info.value)
    raw = tmp_path / "MNIST" / "raw"
    assert text.startswith(f"MNIST: the train split's files are missing from {raw}{os.sep}:\n"
                           f"    {raw / 'train-images-idx3-ubyte.gz'}   (or uncompressed: train-images-idx3-ubyte)\n"
                           f"    {raw / 'train-labels-idx1-ubyte.gz'}   (or uncompressed: train-labels-idx1-ubyte)\n")
    assert "at test_mnist.py:" in text
    assert text.endswith("help: pass download=True to fetch them, or put the official MNIST files there; the graphc "
                         "source repository ships them in data/MNIST/raw/ (root='./data' from its root)")


def test_partly_missing_files_do_not_fall_back(tmp_path):
    _raw_root(tmp_path, ["t10k-images-idx3-ubyte.gz"])
    with pytest.raises(DataError, match=r"the test split's files are missing from \S+:\n    \S+t10k-labels-idx1-ubyte.gz") \
            as info:
        datasets.MNIST(str(tmp_path), train=False)
    assert f"or root=None to read {RAW}{os.sep} in place" in str(info.value)


def test_no_root_and_no_packaged_copy(no_packaged_copy):
    with pytest.raises(DataError, match=r"MNIST: root=None, and this graphc has no packaged copy of the data"):
        datasets.MNIST()


def test_download_offline_error(tmp_path, no_packaged_copy, monkeypatch):
    # Port 9 on localhost refuses at once: the same path as no network, without waiting on DNS.
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(DataError) as info:
        datasets.MNIST(str(tmp_path), train=True, download=True)
    text = str(info.value)
    assert text.startswith(f"MNIST: download=True could not fetch train-images-idx3-ubyte.gz "
                           f"({raw / 'train-images-idx3-ubyte.gz'} is missing):\n"
                           f"    http://127.0.0.1:9/train-images-idx3-ubyte.gz: ")
    assert (f"help: without a network, put the official MNIST files train-images-idx3-ubyte.gz "
            f"(md5 f68b3c2dcbeaaa9fbdd348bbdeb94873), train-labels-idx1-ubyte.gz "
            f"(md5 d53e105ee54ea40749a09fcbcd1e9432), "
            f"t10k-images-idx3-ubyte.gz (md5 9fb629c4189551a2d022fa330f9573f3), t10k-labels-idx1-ubyte.gz "
            f"(md5 ec29112dd5afa0611ce80d1b7f02629c) into {raw}{os.sep}; the graphc source repository ships them in "
            f"data/MNIST/raw/") in text


def test_download_skips_files_whose_md5_matches(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download=True fetched a file that was already there")
    monkeypatch.setattr(mnist.urllib.request, "urlopen", no_network)
    _raw_root(tmp_path, [name for name, _ in datasets.MNIST.resources])
    ds = datasets.MNIST(str(tmp_path), train=False, download=True)
    assert len(ds) == 10000


def test_download_refetches_a_file_with_the_wrong_md5(tmp_path, no_packaged_copy, monkeypatch):
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    raw = _raw_root(tmp_path, ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                               "t10k-images-idx3-ubyte.gz"])
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\0"))
    with pytest.raises(DataError, match=r"could not fetch t10k-labels-idx1-ubyte.gz \(\S+t10k-labels-idx1-ubyte.gz "
                                        r"has md5 [0-9a-f]{32}, expected ec29112dd5afa0611ce80d1b7f02629c\)"):
        datasets.MNIST(str(tmp_path), train=False, download=True)


def _test_split_with_labels(tmp_path, label_bytes, name="t10k-labels-idx1-ubyte.gz"):
    raw = _raw_root(tmp_path, ["t10k-images-idx3-ubyte.gz"])
    (raw / name).write_bytes(label_bytes)
    return raw / name


def _labels_idx():
    return gzip.decompress((RAW / "t10k-labels-idx1-ubyte.gz").read_bytes())


def test_truncated_gzip(tmp_path):
    good = (RAW / "t10k-labels-idx1-ubyte.gz").read_bytes()
    path = _test_split_with_labels(tmp_path, good[:len(good) // 2])
    with pytest.raises(DataError, match=rf"^MNIST: {_e(path)}: the gzip stream is truncated \(the file ends before the "
                                        r"compressed data does\)\n(.|\n)*help: the file was cut short"):
        datasets.MNIST(str(tmp_path), train=False)


def test_not_a_gzip_file(tmp_path):
    path = _test_split_with_labels(tmp_path, b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match=rf"^MNIST: {_e(path)}: not a valid gzip file \(Not a gzipped file"):
        datasets.MNIST(str(tmp_path), train=False)


def test_corrupt_gzip_data(tmp_path):
    good = bytearray((RAW / "t10k-labels-idx1-ubyte.gz").read_bytes())
    good[200:260] = bytes(60)
    path = _test_split_with_labels(tmp_path, bytes(good))
    with pytest.raises(DataError, match=rf"^MNIST: {_e(path)}: not a valid gzip file"):
        datasets.MNIST(str(tmp_path), train=False)


def test_wrong_magic_number(tmp_path):
    data = bytearray(_labels_idx())
    data[3] = 3   # claims three dimensions: an images file where labels belong
    path = _test_split_with_labels(tmp_path, gzip.compress(bytes(data)))
    with pytest.raises(DataError, match=rf"^MNIST: {_e(path)}: wrong IDX magic number 0x00000803, expected "
                                        r"0x00000801 \(uint8, 1 dimension\)\n(.|\n)*"
                                        r"help: this is not an MNIST-format labels file"):
        datasets.MNIST(str(tmp_path), train=False)


def test_truncated_uncompressed_file(tmp_path):
    path = _test_split_with_labels(tmp_path, _labels_idx()[:9008], name="t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match=rf"^MNIST: {_e(path)}: truncated: the header's sizes \[10000\] need 10000 "
                                        r"bytes of data, the file has 9000"):
        datasets.MNIST(str(tmp_path), train=False)


def test_file_longer_than_its_header(tmp_path):
    path = _test_split_with_labels(tmp_path, gzip.compress(_labels_idx() + b"\0"))
    with pytest.raises(DataError, match=rf"^MNIST: {_e(path)}: longer than its header says: the header's sizes "
                                        r"\[10000\] need 10000 bytes of data, the file has 10001"):
        datasets.MNIST(str(tmp_path), train=False)


def test_image_and_label_counts_differ(tmp_path):
    raw = _raw_root(tmp_path, ["t10k-images-idx3-ubyte.gz"])
    (raw / "t10k-labels-idx1-ubyte.gz").symlink_to(RAW / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match=rf"^MNIST: {_e(raw / 't10k-images-idx3-ubyte.gz')} holds 10000 images but "
                                        rf"{_e(raw / 't10k-labels-idx1-ubyte.gz')} holds 60000 labels"):
        datasets.MNIST(str(tmp_path), train=False)


def test_labels_out_of_range(tmp_path):
    data = bytearray(_labels_idx())
    data[8] = 12
    path = _test_split_with_labels(tmp_path, gzip.compress(bytes(data)))
    with pytest.raises(DataError, match=rf"^MNIST: {_e(path)}: label 12 is out of range for 10 classes"):
        datasets.MNIST(str(tmp_path), train=False)
