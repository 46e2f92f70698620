"""Image grids and PNG files, as torchvision.utils: make_grid and save_image.

    grid = make_grid(images, nrow=8)             # images: (N, C, H, W) -> (3, H', W') with 2-pixel gaps
    save_image(images, "results/sample.png")     # the same grid, scaled by 255, as an 8-bit PNG
"""
from __future__ import annotations

import math
import os
import tempfile

import numpy as np

from ..errors import GraphcError
from ..fileio import umask
from ..tensor import Tensor

IMAGE_CHANNELS = (1, 3, 4)   # gray, RGB, RGBA: what an image file can hold


def _as_array(tensor, op):
    """The images as a float ndarray, from a Tensor, an ndarray or a list of (C, H, W) tensors."""
    if isinstance(tensor, (list, tuple)):
        if not tensor:
            raise GraphcError(op, "got an empty list of images", hint="pass at least one (C, H, W) tensor")
        return np.stack([_as_array(t, op) for t in tensor])
    if isinstance(tensor, Tensor):
        return np.asarray(tensor.detach()._need_value(f"{op}()", "call it outside the compiled function"))
    if isinstance(tensor, np.ndarray):
        return tensor
    raise GraphcError(op, f"expected a tensor or a list of tensors, got {type(tensor).__name__}",
                      hint="pass a (B, C, H, W) or (C, H, W) tensor")


def _normalize(images, value_range, scale_each):
    """Clamp to value_range (or each image's own min..max) and map it onto 0..1, as torchvision does."""
    def norm(img, low, high):
        np.clip(img, low, high, out=img)
        img -= low
        img /= max(high - low, 1e-5)

    def norm_range(img):
        if value_range is not None:
            norm(img, float(value_range[0]), float(value_range[1]))
        else:
            norm(img, float(img.min()), float(img.max()))

    if scale_each:
        for img in images:
            norm_range(img)
    else:
        norm_range(images)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0,
              **kwargs):
    """Tile a batch of images into one image, `nrow` per row.   make_grid(ones(4, 1, 2, 2), nrow=2).shape -> (3, 8, 8)"""
    if "range" in kwargs:   # torchvision's old name for value_range
        value_range = kwargs.pop("range")
    if kwargs:
        raise TypeError(f"make_grid() got an unexpected keyword argument {next(iter(kwargs))!r}")
    images = _as_array(tensor, "make_grid")
    if images.ndim == 2:                 # one (H, W) image
        images = images[None]
    if images.ndim == 3:                 # one (C, H, W) image
        if images.shape[0] == 1:
            images = np.concatenate([images] * 3, 0)
        images = images[None]
    if images.ndim != 4:
        raise GraphcError("make_grid", f"expected a 2-D (H, W), 3-D (C, H, W) or 4-D (B, C, H, W) tensor, "
                                       f"got shape {tuple(images.shape)}",
                          hint="a batch of gray images of shape (B, H, W) needs a channel dim: x.unsqueeze(1)")
    if images.shape[1] == 1:             # gray batches become RGB, as in torchvision
        images = np.concatenate([images] * 3, 1)
    images = images.astype(np.float32) if images.dtype.kind != "f" else images
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
        images = images.copy()
        _normalize(images, value_range, scale_each)
    if images.shape[0] == 1:
        return Tensor(images[0], dtype=images.dtype)

    n, channels, h, w = images.shape
    cols = min(nrow, n)
    rows = int(math.ceil(n / cols))
    cell_h, cell_w = h + padding, w + padding
    grid = np.full((channels, cell_h * rows + padding, cell_w * cols + padding), pad_value, dtype=images.dtype)
    for k in range(n):
        y, x = divmod(k, cols)
        top, left = y * cell_h + padding, x * cell_w + padding
        grid[:, top:top + h, left:left + w] = images[k]
    return Tensor(grid, dtype=grid.dtype)


def to_uint8_hwc(grid):
    """A (C, H, W) float image in 0..1 as (H, W, C) uint8, rounded as torchvision does: x*255 + 0.5, clamped."""
    return np.clip(grid * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def save_image(tensor, fp, format=None, **grid_kwargs):
    """Write a tensor (or a batch, as one make_grid) to an image file.   save_image(x, "out.png")"""
    grid = make_grid(tensor, **grid_kwargs)._value
    if grid.shape[0] not in IMAGE_CHANNELS:
        raise GraphcError("save_image", f"an image file holds 1, 3 or 4 channels; this tensor gives "
                                        f"{grid.shape[0]} (grid shape {tuple(grid.shape)})",
                          hint="pass images as (B, C, H, W) with C in (1, 3, 4); a batch of gray images of "
                               "shape (B, H, W) needs x.unsqueeze(1)")
    pixels = to_uint8_hwc(grid)
    if pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    try:
        from PIL import Image
    except ImportError:
        raise GraphcError("save_image", "writing image files needs Pillow, which is not installed",
                          hint="pip install pillow") from None
    image = Image.fromarray(pixels)
    if not isinstance(fp, (str, os.PathLike)):   # a file object: PIL writes to it directly
        image.save(fp, format=format)
        return
    _save_atomically(image, os.fspath(fp), format)


def _save_atomically(image, path, format):
    """Write to a temp file beside `path`, then rename it over: a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    if format is None:
        ext = os.path.splitext(path)[1].lower()
        format = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF",
                  ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}.get(ext)
        if format is None:
            raise GraphcError("save_image", f"cannot tell the image format from the file name {path!r}",
                              hint="end the name with .png (or pass format='PNG')")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    except OSError as exc:
        raise GraphcError("save_image", f"cannot write {path!r}: {exc.strerror or exc}",
                          hint=f"create the folder first (os.makedirs({folder!r}, exist_ok=True)) and check "
                               f"that it is writable") from None
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format=format)
        os.chmod(tmp, 0o666 & ~umask())   # mkstemp makes it 0600; give it the mode open() would
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise GraphcError("save_image", f"cannot write {path!r}: {exc.strerror or exc}",
                              hint="check that the path is a writable file name") from None
        raise
