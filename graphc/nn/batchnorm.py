"""BatchNorm1d / BatchNorm2d with running statistics updated in place.

    bn = nn.BatchNorm2d(32); bn(x[64,32,26,26]) -> normalised per channel; bn.running_mean moves by momentum
"""
from __future__ import annotations

from .. import functional as G
from ..tensor import DEFAULT_DTYPE
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    _dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        dtype = dtype or DEFAULT_DTYPE
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(G.empty(num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(G.empty(num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", G.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", G.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", G.tensor(0, dtype="int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input):
        if input.dim() not in self._dims:
            raise ValueError(f"expected {' or '.join(f'{d}D' for d in self._dims)} input (got {input.dim()}D input)")

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            from ..autograd import no_grad
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                # cumulative average, as a tensor: the step count is a value, not a trace-time constant
                factor = 1.0 / self.num_batches_tracked.to(input.dtype)
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None, self.running_var if track else None,
                            self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Normalise [N, C] or [N, C, L] per channel.   BatchNorm1d(128)"""
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Normalise [N, C, H, W] per channel.   BatchNorm2d(32)"""
    _dims = (4,)
