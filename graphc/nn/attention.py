"""MultiheadAttention: torch.nn.MultiheadAttention's parameters, masks and outputs.

    mha = nn.MultiheadAttention(64, 4, batch_first=True); out, weights = mha(x, x, x)   # x[8,28,64]
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as G
from ..errors import GraphcError, ShapeError
from ..ops.registry import fmt_shape
from ..tensor import DEFAULT_DTYPE
from . import functional as F
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter


class MultiheadAttention(Module):
    """Attention over num_heads heads with a packed in-projection [3E, E], like torch's."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise AssertionError("embed_dim must be divisible by num_heads")
        if add_bias_kv or add_zero_attn or kdim not in (None, embed_dim) or vdim not in (None, embed_dim):
            raise GraphcError("MultiheadAttention", "add_bias_kv, add_zero_attn and kdim/vdim != embed_dim are not "
                                                    "supported by graphc",
                              hint="project keys and values to embed_dim before the attention")
        dtype = dtype or DEFAULT_DTYPE
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = self.vdim = embed_dim
        self._qkv_same_embed_dim = True
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.in_proj_weight = Parameter(G.empty(3 * embed_dim, embed_dim, dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(G.zeros(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, x, part):
        e = self.embed_dim
        w = self.in_proj_weight[part * e:(part + 1) * e]
        b = None if self.in_proj_bias is None else self.in_proj_bias[part * e:(part + 1) * e]
        return F.linear(x, w, b)

    def _heads(self, x):
        n, length = x.shape[0], x.shape[1]
        return x.reshape(n, length, self.num_heads, self.head_dim).permute(0, 2, 1, 3)   # [N, H, L, D]

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first or unbatched:   # work in [N, L, E]
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if query.shape[-1] != self.embed_dim:
            raise ShapeError("MultiheadAttention", f"query has {query.shape[-1]} features, the layer expects "
                                                   f"{self.embed_dim}: query {fmt_shape(query.shape)}",
                             hint="with batch_first=False inputs are [L, N, E]; pass batch_first=True for [N, L, E]")
        n, length, source = query.shape[0], query.shape[1], key.shape[1]
        q, k, v = (self._heads(self._project(t, i)) for i, t in enumerate((query, key, value)))
        scores = G.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))   # [N, H, L, S]
        if is_causal and attn_mask is None:
            attn_mask = G.tensor(np.triu(np.ones((length, source), dtype=np.bool_), 1))
        scores = self._masked(scores, attn_mask, key_padding_mask, n, length, source)
        weights = G.softmax(scores, -1)
        attended = F.dropout(weights, self.dropout, training=self.training) if self.dropout > 0 else weights
        out = G.matmul(attended, v).permute(0, 2, 1, 3).reshape(n, length, self.embed_dim)
        out = self.out_proj(out)
        if not self.batch_first or unbatched:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (weights.squeeze(0) if unbatched else weights)

    def _masked(self, scores, attn_mask, key_padding_mask, n, length, source):
        """scores with torch's masks applied: bool True = may not attend; float masks are added."""
        masks = []
        if attn_mask is not None:
            if attn_mask.ndim == 2:
                masks.append(attn_mask.reshape(1, 1, length, source))
            else:
                masks.append(attn_mask.reshape(n, self.num_heads, length, source))
        if key_padding_mask is not None:
            masks.append(key_padding_mask.reshape(n, 1, 1, source))
        for mask in masks:
            if mask.dtype == np.bool_:
                scores = G.masked_fill(scores, mask, float("-inf"))
            else:
                scores = scores + mask.to(scores.dtype)
        return scores
