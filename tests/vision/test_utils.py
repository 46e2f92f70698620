"""make_grid / save_image against torchvision's rules, written out by hand."""
import os

import numpy as np
import pytest
from PIL import Image

import graphc
from graphc.errors import GraphcError
from graphc.vision.utils import make_grid, save_image


def images(n, c=1, h=3, w=4, seed=0):
    return graphc.tensor(np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32))


def test_grid_layout_padding_and_gray_to_rgb():
    x = images(5, c=1)
    g = make_grid(x, nrow=2, padding=1, pad_value=0.5).numpy()
    # 2 columns, 3 rows; each cell is (3 + 1) x (4 + 1), plus the leading gap
    assert g.shape == (3, 3 * 4 + 1, 2 * 5 + 1)
    for k in range(5):
        y, col = divmod(k, 2)
        cell = g[:, 1 + 4 * y:1 + 4 * y + 3, 1 + 5 * col:1 + 5 * col + 4]
        np.testing.assert_array_equal(cell, np.repeat(x.numpy()[k], 3, 0))
    assert (g[:, 0, :] == 0.5).all() and (g[:, :, 0] == 0.5).all()
    assert (g[:, 9:, 6:] == 0.5).all()   # the empty sixth cell is padding


@pytest.mark.parametrize("shape,expected", [((3, 4), (3, 3, 4)), ((1, 3, 4), (3, 3, 4)),
                                            ((3, 3, 4), (3, 3, 4)), ((1, 1, 3, 4), (3, 3, 4))])
def test_single_images_come_back_without_padding(shape, expected):
    x = graphc.rand(*shape)
    g = make_grid(x)
    assert tuple(g.shape) == expected
    np.testing.assert_array_equal(g.numpy()[0], x.numpy().reshape(-1, 3, 4)[0])


def test_normalize_with_and_without_range_and_scale_each():
    x = graphc.tensor(np.array([[[[0., 2.]]], [[[4., 8.]]]], dtype=np.float32))
    g = make_grid(x, normalize=True, padding=0).numpy()[0]
    np.testing.assert_allclose(g, [[0., 0.25, 0.5, 1.]])
    g = make_grid(x, normalize=True, scale_each=True, padding=0).numpy()[0]
    np.testing.assert_allclose(g, [[0., 1., 0., 1.]])
    g = make_grid(x, normalize=True, value_range=(0., 4.), padding=0).numpy()[0]
    np.testing.assert_allclose(g, [[0., 0.5, 1., 1.]])
    np.testing.assert_array_equal(x.numpy()[1, 0, 0], [4., 8.])   # the input is not touched


def test_save_image_writes_what_torchvision_would(tmp_path):
    x = images(3, c=1, seed=1)
    path = tmp_path / "grid.png"
    save_image(x, path, nrow=3)
    got = np.asarray(Image.open(path))
    grid = make_grid(x, nrow=3).numpy()
    expected = np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    assert got.shape == expected.shape and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]   # no temp file left behind


def test_save_image_clamps_out_of_range_values(tmp_path):
    x = graphc.tensor([[[-1.0, 0.5, 2.0]]])
    save_image(x, tmp_path / "c.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "c.png"))[0, :, 0], [0, 128, 255])


def test_bad_inputs_get_graphc_errors(tmp_path):
    with pytest.raises(GraphcError, match="expected a 2-D"):
        make_grid(graphc.rand(2, 1, 1, 3, 3))
    with pytest.raises(GraphcError, match="1, 3 or 4 channels"):
        save_image(graphc.rand(2, 5, 3, 3), tmp_path / "x.png")
    with pytest.raises(GraphcError, match="cannot write"):
        save_image(graphc.rand(1, 3, 3), tmp_path / "missing" / "x.png")
    with pytest.raises(GraphcError, match="image format"):
        save_image(graphc.rand(1, 3, 3), tmp_path / "x.unknown")


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    save_image(graphc.zeros(1, 2, 2), path)
    before = path.read_bytes()

    def broken_save(self, fp, format=None, **kw):
        fp.write(b"half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(GraphcError, match="No space left"):
        save_image(graphc.ones(1, 2, 2), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]
