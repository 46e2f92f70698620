"""eager_kernels.select.where: numpy's np.where, value for value, on the fast path and off it."""
import numpy as np
import pytest

from graphc.eager_kernels import select


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("case", ["both arrays", "scalar b", "scalar a", "broadcast row", "strided a"])
def test_where_matches_numpy(dtype, case):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    y = rng.standard_normal((3, 4, 5)).astype(dtype)
    if dtype != np.int64:
        x[0, 0, :2] = [np.nan, np.inf]   # NaN and inf pass through untouched where they are selected
    cond = rng.random((3, 4, 5)) > 0.5
    a, b = {"both arrays": (x, y), "scalar b": (x, np.array(0, dtype)), "scalar a": (np.array(7, dtype), y),
            "broadcast row": (x, y[:1, :1]), "strided a": (x.transpose(0, 2, 1).copy().transpose(0, 2, 1), y)}[case]
    got = select.where(cond, a, b)
    want = np.where(cond, a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
