"""numpy references for the op table, in float64.

    np_softmax(np.array([0.0, 0.0]), -1) -> [0.5, 0.5]
"""
import numpy as np


def np_sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def np_logsumexp(x, axis, keepdims=False):
    m = x.max(axis, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis)


def np_log_softmax(x, axis):
    return x - np_logsumexp(x, axis, keepdims=True)


def np_one_hot(y, n, dtype=np.float32):
    return (y[..., None] == np.arange(n)).astype(dtype)


def np_cross_entropy(x, y):
    return -np_log_softmax(x, 1)[np.arange(len(y)), y].mean()


def np_setitem(x, index, v):
    y = x.copy()
    y[index] = v
    return y


def _windows(hw, k, s, p):
    return (hw + 2 * p - k) // s + 1


def np_conv2d(x, w, stride=(1, 1), padding=(0, 0)):
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, _, kh, kw = w.shape
    oh, ow = _windows(x.shape[2], kh, sh, ph), _windows(x.shape[3], kw, sw, pw)
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw], w[:, :, i, j])
    return out


def np_conv2d_grad_input(gy, w, input_hw, stride, padding):
    (sh, sw), (ph, pw), (h, wd) = stride, padding, input_hw
    _, c, kh, kw = w.shape
    oh, ow = gy.shape[2:]
    gxp = np.zeros((gy.shape[0], c, h + 2 * ph, wd + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += np.einsum("nohw,oc->nchw", gy, w[:, :, i, j])
    return gxp[:, :, ph:ph + h, pw:pw + wd]


def np_conv2d_grad_weight(gy, x, kernel_hw, stride, padding):
    (sh, sw), (ph, pw), (kh, kw) = stride, padding, kernel_hw
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = gy.shape[2:]
    gw = np.zeros((gy.shape[1], x.shape[1], kh, kw))
    for i in range(kh):
        for j in range(kw):
            gw[:, :, i, j] = np.einsum("nohw,nchw->oc", gy, xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw])
    return gw


def np_pool_argmax(x, kernel, stride, padding):
    """Flat index (h*W + w, unpadded) of each window's first maximum, -inf padding."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), -np.inf)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = _windows(h, kh, sh, ph), _windows(w, kw, sw, pw)
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            a = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(n, c, -1).argmax(-1)
            idx[:, :, i, j] = (a // kw + i * sh - ph) * w + (a % kw + j * sw - pw)
    return idx


def np_pool_gather(x, idx):
    n, c = x.shape[:2]
    return np.take_along_axis(x.reshape(n, c, -1), idx.reshape(n, c, -1), -1).reshape(idx.shape)


def np_pool_scatter(gy, idx, input_hw):
    n, c = gy.shape[:2]
    out = np.zeros((n, c, input_hw[0] * input_hw[1]))
    for b in range(n):
        for ch in range(c):
            np.add.at(out[b, ch], idx[b, ch].ravel(), gy[b, ch].ravel())
    return out.reshape((n, c) + tuple(input_hw))


def np_cnn_block(x, w):
    y = np.maximum(np_conv2d(x, w, padding=(1, 1)), 0)
    return np_pool_gather(y, np_pool_argmax(y, (2, 2), (2, 2), (0, 0)))


def np_uniform(seed, offset, shape):
    """splitmix64's finaliser over (seed * golden) ^ (offset + i), top 24 bits -> [0, 1), in Python ints."""
    m64, golden = 2 ** 64 - 1, 0x9E3779B97F4A7C15
    out = []
    for i in range(int(np.prod(shape))):
        z = ((int(seed) * golden) & m64) ^ (int(offset) + i)
        z = (z + golden) & m64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m64
        z ^= z >> 31
        out.append((z >> 40) / 2 ** 24)
    return np.array(out).reshape(shape)



def np_index_add(x, v, i):
    y = x.copy()
    np.add.at(y, i, v)
    return y


def np_erf(x):
    from scipy import special
    return special.erf(x)


def np_gather(x, dim, i):
    return np.take_along_axis(x[tuple(slice(0, n) if d != dim % x.ndim else slice(None)
                                      for d, n in enumerate(i.shape))], i, dim)


def np_scatter(x, dim, i, src, add=False):
    out = x.copy()
    grids = list(np.indices(i.shape, sparse=True))
    grids[dim % x.ndim] = i
    src = np.broadcast_to(src, i.shape) if np.ndim(src) == 0 else src[tuple(slice(0, n) for n in i.shape)]
    if add:
        np.add.at(out, tuple(grids), src)
    else:
        out[tuple(grids)] = src
    return out


def np_index_select(x, dim, i):
    return np.take(x, i, axis=dim)


def np_repeat(x, *sizes):
    return np.tile(x, sizes)


def np_sort(x, dim=-1, descending=False):
    order = np.argsort(-x if descending else x, axis=dim, kind="stable")
    return np.take_along_axis(x, order, dim), order


def np_topk(x, k, dim=-1, largest=True):
    values, order = np_sort(x, dim, largest)
    keep = tuple(slice(0, k) if d == dim % x.ndim else slice(None) for d in range(x.ndim))
    return values[keep], order[keep]


def np_norm(x, p=2, dim=None, keepdim=False):
    a = np.abs(x)
    if p == np.inf:
        return a.max(dim, keepdims=keepdim)
    if p == 0:
        return (x != 0).sum(dim, keepdims=keepdim).astype(x.dtype)
    return (a ** p).sum(dim, keepdims=keepdim) ** (1 / p)


def np_split_piece(x, sizes, k, dim=0):
    return np.split(x, np.cumsum(sizes)[:-1], axis=dim)[k]

