"""graphc.vision.transforms: per-image results (torchvision's), and batched forms equal to them."""
import numpy as np
import pytest

import graphc
from graphc.vision import transforms
from graphc.vision.transforms import batch_form


def test_to_tensor_gray_and_color():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3) * 51
    out = transforms.ToTensor()(gray)
    assert isinstance(out, graphc.Tensor) and out.shape == (1, 2, 3) and out.dtype == np.float32
    assert np.array_equal(out.numpy()[0], gray.astype(np.float32) / np.float32(255))
    color = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    out = transforms.ToTensor()(color)
    assert out.shape == (3, 4, 5) and out.numpy()[2, 1, 4] == np.float32(color[1, 4, 2]) / np.float32(255)


def test_to_tensor_keeps_non_uint8_values_and_rejects_tensors():
    assert transforms.ToTensor()(np.full((2, 2), 7.0, np.float32)).numpy().max() == 7.0   # as torchvision
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        transforms.ToTensor()(graphc.zeros(2, 2))
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional. Got 4 dimensions."):
        transforms.ToTensor()(np.zeros((1, 1, 1, 1), np.uint8))


def test_to_tensor_accepts_pil_images():
    Image = pytest.importorskip("PIL.Image")
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(transforms.ToTensor()(Image.fromarray(arr)).numpy(), transforms.ToTensor()(arr).numpy())


def test_normalize():
    x = graphc.ones(2, 3, 3)
    out = transforms.Normalize((0.5, 0.25), (0.5, 0.25))(x)
    assert np.allclose(out.numpy()[0], 1.0) and np.allclose(out.numpy()[1], 3.0)
    assert np.allclose(x.numpy(), 1.0)   # not in place by default
    transforms.Normalize((1.0, 1.0), (1.0, 1.0), inplace=True)(x)
    assert np.allclose(x.numpy(), 0.0)
    with pytest.raises(TypeError, match="img should be Tensor Image"):
        transforms.Normalize((0.5,), (0.5,))(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="std evaluated to zero"):
        transforms.Normalize((0.5,), (0.0,))(graphc.ones(1, 2, 2))


def test_normalize_keeps_autograd():
    x = graphc.ones(1, 2, 2, requires_grad=True)
    transforms.Normalize((0.5,), (0.25,))(x).sum().backward()
    assert np.allclose(x.grad.numpy(), 4.0)


def test_compose_and_lambda():
    t = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda x: x * 2)])
    assert t(np.full((1, 1), 255, np.uint8)).item() == 2.0
    assert "ToTensor()" in repr(t) and "Lambda()" in repr(t)


@pytest.mark.parametrize("shape, mean, std", [((5, 6, 7), (0.1,), (0.3,)),
                                              ((5, 6, 7, 3), (0.1, 0.2, 0.3), (0.3, 0.2, 0.1))])
def test_batch_forms_equal_per_image_results(shape, mean, std):
    images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    t = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    batched = batch_form(t)(images)
    one_by_one = np.stack([t(img).numpy() for img in images])
    assert batched.shape == one_by_one.shape and np.array_equal(batched.numpy(), one_by_one)


def test_user_code_has_no_batch_form():
    assert batch_form(transforms.Lambda(lambda x: x)) is None
    assert batch_form(transforms.Compose([transforms.ToTensor(), lambda x: x])) is None

    class MyToTensor(transforms.ToTensor):
        def __call__(self, pic):
            return super().__call__(pic) * 0

    assert batch_form(MyToTensor()) is None          # overrides __call__: its batch form would disagree
    assert batch_form(transforms.ToTensor()) is not None
    assert batch_form(None)(5) == 5


def test_missing_transform_says_what_exists():
    with pytest.raises(AttributeError, match="graphc.vision.transforms has no 'Resize': graphc provides Compose, "
                                             "Lambda, Normalize, ToTensor"):
        transforms.Resize
