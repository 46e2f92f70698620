"""Value types as the IR text writes them: short dtype names and 'f32[64,784]'.

    type_str((64, 784), np.float32) -> 'f32[64,784]';  DTYPE_BY_NAME["i64"] -> dtype('int64')
"""
from __future__ import annotations

import numpy as np

DTYPE_NAMES = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64", "int32": "i32",
               "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "bool"}
DTYPE_BY_NAME = {short: np.dtype(long) for long, short in DTYPE_NAMES.items()}


def type_str(shape, dtype):
    """'f32[64,784]' for a shape and dtype."""
    return f"{DTYPE_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)}[{','.join(str(d) for d in shape)}]"
