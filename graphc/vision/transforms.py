"""Image transforms, as torchvision.transforms: ToTensor, Normalize, Compose, Lambda.

    t = Compose([ToTensor(), Normalize((0.1307,), (0.3081,))])
    t(np.zeros((28, 28), np.uint8)) -> float32 Tensor [1, 28, 28], every value -0.4242

Images are numpy arrays (uint8 HxW or HxWxC) where torchvision has PIL Images; a PIL Image is
accepted too, through numpy. Besides `__call__` on one image, graphc's transforms have a batched
form, `_batch(images)`, on a stack with a leading batch dimension, which computes exactly what
`__call__` computes on each image: `batch_form(transform)` returns it (or None when some part of
the transform is a user's function), and datasets use it to transform a whole batch in one go.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor

__all__ = ["Compose", "Lambda", "Normalize", "ToTensor", "batch_form"]

_U8_SCALE = np.float32(255)


def batch_form(transform):
    """The batched form of `transform` (a function of a stack of images), or None if it has none.

    batch_form(Compose([ToTensor(), Normalize((0.5,), (0.5,))]))(uint8 [N, 28, 28]) -> Tensor [N, 1, 28, 28]
    batch_form(Lambda(f)) -> None
    """
    if transform is None:
        return lambda images: images
    owner = next((k for k in type(transform).__mro__ if "__call__" in vars(k)), None)
    # A subclass that overrides __call__ but not _batch would get a batched form that disagrees with it.
    if owner is None or "_batch" not in vars(owner):
        return None
    return transform._batch(None)


class Compose:
    """Apply transforms in order.   Compose([ToTensor(), Normalize((0.5,), (0.5,))])"""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def _batch(self, _):
        forms = [batch_form(t) for t in self.transforms]
        if any(f is None for f in forms):
            return None

        def run(images):
            for f in forms:
                images = f(images)
            return images
        return run

    def __repr__(self):
        body = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({body}\n)"


class ToTensor:
    """uint8 HxW / HxWxC image -> float32 CxHxW Tensor in [0, 1] (other dtypes keep their values, as in torchvision).

    ToTensor()(np.full((2, 2), 255, np.uint8)) -> tensor([[[1., 1.], [1., 1.]]])
    """

    def __call__(self, pic):
        arr = _as_image_array(pic)
        if arr.ndim not in (2, 3):
            raise ValueError(f"pic should be 2/3 dimensional. Got {arr.ndim} dimensions.")
        chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return Tensor._wrap(_to_float(chw))

    def _batch(self, _):
        def run(images):
            arr = _as_image_array(images)
            if arr.ndim not in (3, 4):
                raise ValueError(f"a batch of pics should be 3/4 dimensional. Got {arr.ndim} dimensions.")
            nchw = arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)
            return Tensor._wrap(_to_float(nchw))
        return run

    def __repr__(self):
        return "ToTensor()"


def _as_image_array(pic):
    if isinstance(pic, Tensor):
        raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
    arr = pic if isinstance(pic, np.ndarray) else np.asarray(pic)   # a PIL Image converts itself
    if arr.dtype == np.object_:
        raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")
    return arr


def _to_float(arr):
    if arr.dtype == np.uint8:
        out = np.empty(arr.shape, np.float32)
        np.copyto(out, arr, casting="unsafe")
        out /= _U8_SCALE   # torchvision divides in float32: same bits as img.float().div(255)
        return out
    return np.ascontiguousarray(arr)


class Normalize:
    """(x - mean) / std per channel of a float CxHxW Tensor.   Normalize((0.5,), (0.5,))(ones(1, 2, 2)) -> ones"""

    def __init__(self, mean, std, inplace=False):
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def _stats(self, dtype, channel_axis_from_end):
        mean = np.asarray(self.mean, dtype=dtype).reshape(-1)
        std = np.asarray(self.std, dtype=dtype).reshape(-1)
        if np.any(std == 0):
            raise ValueError(f"std evaluated to zero after conversion to {dtype}, leading to division by zero.")
        shape = (-1,) + (1,) * channel_axis_from_end
        return mean.reshape(shape), std.reshape(shape)

    def __call__(self, tensor):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"img should be Tensor Image. Got {type(tensor)}")
        if tensor.dtype.kind != "f":
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if tensor.ndim < 3:
            raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = "
                             f"{tuple(tensor.shape)}.")
        mean, std = self._stats(tensor.dtype, 2)
        if tensor.requires_grad or tensor._is_traced():   # keep autograd / the trace: graphc ops
            return (tensor - Tensor._constant(mean)) / Tensor._constant(std)
        if self.inplace and tensor._value.flags.writeable:
            np.subtract(tensor._value, mean, out=tensor._value)
            np.divide(tensor._value, std, out=tensor._value)
            return tensor
        out = np.subtract(tensor._value, mean)
        np.divide(out, std, out=out)
        return Tensor._wrap(out)

    def _batch(self, _):
        def run(batch):
            if not isinstance(batch, Tensor):
                raise TypeError(f"img should be Tensor Image. Got {type(batch)}")
            # Normalize works on (..., C, H, W): a batch is just one more leading dim.
            return self(batch)
        return run

    def __repr__(self):
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


class Lambda:
    """A user function as a transform.   Lambda(lambda x: x * 2)"""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {repr(type(lambd).__name__)}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return f"{type(self).__name__}()"


def __getattr__(name):
    # torchvision has many more transforms; say which ones exist here instead of a bare AttributeError.
    if name[:1].isupper():
        raise AttributeError(f"graphc.vision.transforms has no {name!r}: graphc provides {', '.join(n for n in __all__ if n[0].isupper())}; "
                             f"wrap your own numpy function in transforms.Lambda for anything else")
    raise AttributeError(f"module 'graphc.vision.transforms' has no attribute {name!r}")
