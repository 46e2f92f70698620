"""Forward parity: every case of the table against its numpy reference, values and result dtype.

    case.fn(*graphc tensors) == case.ref(*float64 ndarrays) within rtol 1e-5; float32 stays float32
"""
import numpy as np
import pytest

import graphc

from .cases import CASES, params


def run(case, float_dtype):
    arrays = case.inputs(float_dtype)
    out = case.fn(*[graphc.tensor(a) for a in arrays])
    # The reference sees the same values, widened to float64 (ints and bools unchanged).
    ref = np.asarray(case.ref(*[a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]))
    return out, ref


def check(case, out, ref, float_dtype):
    assert isinstance(out, graphc.Tensor), f"{case.name} returned {type(out).__name__}"
    want = case.out_dtype(float_dtype)
    assert out.dtype == want, f"{case.name}: dtype {out.dtype} for {np.dtype(float_dtype)} inputs, expected {want}"
    assert tuple(out.shape) == ref.shape, f"{case.name}: shape {tuple(out.shape)}, numpy gives {ref.shape}"
    got = out.detach().numpy()
    if out.dtype.kind in "biu":
        np.testing.assert_array_equal(got, ref, err_msg=case.name)
    else:
        np.testing.assert_allclose(got, ref, rtol=case.rtol, atol=case.atol, err_msg=case.name)


@pytest.mark.parametrize("case", params(CASES, "forward"))
def test_forward(case):
    """float32 inputs (the default dtype) and float64 inputs: values, shape, result dtype."""
    for float_dtype in (np.float32, np.float64):
        out, ref = run(case, float_dtype)
        check(case, out, ref, float_dtype)


def test_no_case_writes_through_its_inputs():
    """No op writes into its inputs (eager tensors share memory with the caller's arrays)."""
    for case in CASES:
        arrays = case.inputs(np.float32)
        before = [a.copy() for a in arrays]
        try:
            case.fn(*[graphc.from_numpy(a) for a in arrays])
        except Exception:      # a broken case fails in the tests above
            continue
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b, err_msg=case.name)


def test_forward_is_deterministic_per_case():
    """The table draws the same inputs on every run, so a failure reproduces."""
    for case in CASES[:20]:
        for a, b in zip(case.inputs(), case.inputs()):
            np.testing.assert_array_equal(a, b)
