"""LSTM and GRU: torch's parameters and outputs, stepped by a Python loop so that tracing unrolls time.

    lstm = nn.LSTM(28, 64, num_layers=2, batch_first=True); out, (h_n, c_n) = lstm(x[8,28,28])
    -> out [8,28,64], h_n and c_n [2,8,64]
"""
from __future__ import annotations

import math

from .. import functional as G
from ..errors import GraphcError, ShapeError
from ..ops.registry import fmt_shape
from ..tensor import DEFAULT_DTYPE
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class _RNNBase(Module):
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if bidirectional or proj_size:
            raise GraphcError(type(self).__name__, "bidirectional=True and proj_size are not supported by graphc",
                              hint="run a second layer on the time-reversed input (x.flip) for the backward direction")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = False, 0
        dtype = dtype or DEFAULT_DTYPE
        rows = self._gates * hidden_size
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            setattr(self, f"weight_ih_l{layer}", Parameter(G.empty(rows, width, dtype=dtype)))
            setattr(self, f"weight_hh_l{layer}", Parameter(G.empty(rows, hidden_size, dtype=dtype)))
            if bias:
                setattr(self, f"bias_ih_l{layer}", Parameter(G.empty(rows, dtype=dtype)))
                setattr(self, f"bias_hh_l{layer}", Parameter(G.empty(rows, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _layer_params(self, layer):
        get = lambda name: getattr(self, f"{name}_l{layer}", None)   # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _check_input(self, input):
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ShapeError(type(self).__name__, f"expected input [L, N, {self.input_size}] (or [N, L, "
                                                  f"{self.input_size}] with batch_first, or unbatched [L, "
                                                  f"{self.input_size}]), got {fmt_shape(input.shape)}",
                             hint="input_size must equal the input's last dim")

    def _run(self, input, states):
        """(output [L, N, H], final states per layer): the unrolled recurrence, one layer after another."""
        xs = [input[t] for t in range(input.shape[0])]
        finals = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                xs = [F.dropout(x, self.dropout, training=True) for x in xs]
            w_ih, w_hh, b_ih, b_hh = self._layer_params(layer)
            state = tuple(s[layer] for s in states)
            outs = []
            for x in xs:
                state = self._cell(F.linear(x, w_ih, b_ih), state, w_hh, b_hh)
                outs.append(state[0])
            xs = outs
            finals.append(state)
        return G.stack(xs, 0), finals

    def _prepare(self, input, hx):
        self._check_input(input)
        unbatched = input.ndim == 2
        if unbatched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        return input, unbatched

    def _zeros(self, input):
        return G.zeros((self.num_layers, input.shape[1], self.hidden_size), dtype=input.dtype)

    def _finish(self, output, unbatched):
        if unbatched:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        return s + (f", dropout={self.dropout}" if self.dropout else "")


def _gate(gates, i, h):
    return gates[..., i * h:(i + 1) * h]


class LSTM(_RNNBase):
    """Long short-term memory, gates (i, f, g, o) as in torch; returns (output, (h_n, c_n))."""

    _gates = 4

    def _cell(self, x_proj, state, w_hh, b_hh):
        h, c = state
        gates = x_proj + F.linear(h, w_hh, b_hh)
        n = self.hidden_size
        i, f, g, o = (_gate(gates, k, n) for k in range(4))
        c = G.sigmoid(f) * c + G.sigmoid(i) * G.tanh(g)
        return G.sigmoid(o) * G.tanh(c), c

    def forward(self, input, hx=None):
        input, unbatched = self._prepare(input, hx)
        if hx is None:
            hx = (self._zeros(input), self._zeros(input))
        elif unbatched:
            hx = tuple(s.unsqueeze(1) for s in hx)
        output, finals = self._run(input, hx)
        h_n = G.stack([s[0] for s in finals], 0)
        c_n = G.stack([s[1] for s in finals], 0)
        if unbatched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._finish(output, unbatched), (h_n, c_n)


class GRU(_RNNBase):
    """Gated recurrent unit, gates (r, z, n) as in torch; returns (output, h_n)."""

    _gates = 3

    def _cell(self, x_proj, state, w_hh, b_hh):
        (h,) = state
        h_proj = F.linear(h, w_hh, b_hh)
        n = self.hidden_size
        r = G.sigmoid(_gate(x_proj, 0, n) + _gate(h_proj, 0, n))
        z = G.sigmoid(_gate(x_proj, 1, n) + _gate(h_proj, 1, n))
        cand = G.tanh(_gate(x_proj, 2, n) + r * _gate(h_proj, 2, n))
        return ((1.0 - z) * cand + z * h,)

    def forward(self, input, hx=None):
        input, unbatched = self._prepare(input, hx)
        if hx is None:
            hx = self._zeros(input)
        elif unbatched:
            hx = hx.unsqueeze(1)
        output, finals = self._run(input, (hx,))
        h_n = G.stack([s[0] for s in finals], 0)
        if unbatched:
            h_n = h_n.squeeze(1)
        return self._finish(output, unbatched), h_n
