"""Where a value's elements live: flat device buffers, static strides, and launch limits per target.

    c_strides((2, 3, 4))                                  -> (12, 4, 1)
    reshape_strides((3, 4), (1, 3), (12,))                -> None   (a transposed [4,3] cannot be flattened)
    index_sum(["i0", "i1"], (784, 1), (2, 784))           -> "i0 * 784 + i1"

Every array a generated kernel touches is a flat 1-D buffer (a slice of a memory-plan pool, a
resident input, a constant).  A `reshape` or `permute` costs nothing: kernels read its base buffer
at an offset computed from the view's static strides, so no device array is ever re-viewed or
copied between kernels (numba-cuda's DeviceNDArray.transpose() copies; the simulator's does not).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """Launch limits.  Only host-side launch sizes and three kernel constants differ per target."""
    name: str               # "gpu" or "simulator"
    block: int              # threads per block of flat, grid-stride kernels
    max_grid: int           # blocks at most for flat kernels; the grid-stride loop covers the rest
    reduce_block_min: int   # threads per block of a reduction (one block per output element) ...
    reduce_block_max: int   # ... the next power of two >= the reduced length, clamped to these
    tile: int               # matmul tile edge: tile x tile threads per block, two tile x tile smem tiles
    tiled_min: int          # the tiled matmul when M, N and K all reach this; else one thread per output


# GPU: 256-thread blocks, grids large enough to fill an H100/H200 (132 SMs x 2048 threads).
GPU = Target("gpu", block=256, max_grid=8192, reduce_block_min=32, reduce_block_max=256, tile=16, tiled_min=16)
# The simulator runs every thread as a Python thread: few, small blocks are what keep it fast.
# Its syncthreads() costs milliseconds, so its tiles are 2x2 and only matrices of 4+ in every dim use them.
SIMULATOR = Target("simulator", block=32, max_grid=2, reduce_block_min=1, reduce_block_max=16, tile=2, tiled_min=4)


def prod(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


def c_strides(shape):
    """Row-major element strides.   c_strides((2, 3)) -> (3, 1)"""
    out, acc = [], 1
    for n in reversed(tuple(shape)):
        out.append(acc)
        acc *= int(n)
    return tuple(reversed(out))


def reshape_strides(old_shape, old_strides, new_shape):
    """Strides of `new_shape` viewing the same elements without a copy, or None (numpy's nocopy rule)."""
    if prod(old_shape) == 0:
        return c_strides(new_shape)
    old = [(int(n), int(s)) for n, s in zip(old_shape, old_strides) if n != 1]
    new_shape = [int(n) for n in new_shape]
    new = [0] * len(new_shape)
    oi, oj, ni, nj = 0, 1, 0, 1
    while ni < len(new_shape) and oi < len(old):
        np_, op = new_shape[ni], old[oi][0]
        while np_ != op:
            if np_ < op:
                np_ *= new_shape[nj]
                nj += 1
            else:
                op *= old[oj][0]
                oj += 1
        for ok in range(oi, oj - 1):
            if old[ok][1] != old[ok + 1][0] * old[ok + 1][1]:
                return None
        new[nj - 1] = old[oj - 1][1]
        for nk in range(nj - 1, ni, -1):
            new[nk - 1] = new[nk] * new_shape[nk]
        ni, nj = nj, nj + 1
        oi, oj = oj, oj + 1
    return tuple(new)


def index_sum(idx, strides, shape):
    """A flat offset expression; size-1 and stride-0 dims drop out.   (["i0", "i1"], (1, 3), (3, 2)) -> 'i0 + i1 * 3'"""
    terms = []
    for i, s, n in zip(idx, strides, shape):
        if n == 1 or s == 0 or i == "0":
            continue
        terms.append(i if s == 1 else f"{i} * {s}")
    return " + ".join(terms) if terms else "0"


def unravel(flat, shape, prefix="i"):
    """Lines that split a flat row-major index into per-dim indices.   ('f', (2, 3)) -> ['i0 = f // 3', 'i1 = f % 3']"""
    strides = c_strides(shape)
    lines = []
    for d, (n, s) in enumerate(zip(shape, strides)):
        if n == 1:
            lines.append(f"{prefix}{d} = 0")
        elif d == 0:
            lines.append(f"{prefix}{d} = {flat} // {s}" if s != 1 else f"{prefix}{d} = {flat}")
        elif s == 1:
            lines.append(f"{prefix}{d} = {flat} % {n}")
        else:
            lines.append(f"{prefix}{d} = {flat} // {s} % {n}")
    return lines


def next_pow2(n):
    p = 1
    while p < n:
        p *= 2
    return p
