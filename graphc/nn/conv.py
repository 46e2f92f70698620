"""Conv2d: 2-D convolution over NCHW input, with PyTorch's arguments and default init.

    nn.Conv2d(1, 32, 3, 1)(x[64,1,28,28]) -> [64,32,26,26]
"""
from __future__ import annotations

import math

from .. import functional as G
from ..errors import GraphcError
from ..tensor import DEFAULT_DTYPE
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class Conv2d(Module):
    """Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True); groups/dilation 1 only."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        if groups != 1 or F._pair(dilation, "dilation") != (1, 1):
            raise GraphcError("Conv2d", f"groups={groups}, dilation={dilation} is not supported by graphc",
                              hint="graphc's conv2d primitive handles groups=1 and dilation=1 only")
        if padding_mode != "zeros":
            raise GraphcError("Conv2d", f"padding_mode={padding_mode!r} is not supported by graphc",
                              hint="use padding_mode='zeros', or pad explicitly with F.pad")
        if in_channels <= 0 or out_channels <= 0:
            raise ValueError("in_channels and out_channels must be positive integers")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = F._pair(kernel_size, "kernel_size")
        self.stride = F._pair(stride, "stride")
        # Validate 'same'/'valid' now, as torch does; keep the string for repr and forward.
        F.conv_padding("Conv2d", padding, self.kernel_size, self.stride)
        self.padding = padding if isinstance(padding, str) else F._pair(padding, "padding")
        self.dilation = (1, 1)
        self.groups = 1
        self.padding_mode = padding_mode
        dtype = dtype or DEFAULT_DTYPE
        self.weight = Parameter(G.empty(out_channels, in_channels, *self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(G.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv1d(Module):
    """Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True) over [N, C, L]."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        one = lambda v: int(v[0]) if isinstance(v, (tuple, list)) else v   # noqa: E731
        if groups != 1 or one(dilation) != 1 or padding_mode != "zeros":
            raise GraphcError("Conv1d", f"groups={groups}, dilation={dilation}, padding_mode={padding_mode!r} is "
                                        f"not supported by graphc",
                              hint="use groups=1, dilation=1, padding_mode='zeros'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = (one(kernel_size),), (one(stride),)
        self.padding = padding if isinstance(padding, str) else (one(padding),)
        self.dilation, self.groups, self.padding_mode = (1,), 1, padding_mode
        dtype = dtype or DEFAULT_DTYPE
        self.weight = Parameter(G.empty(out_channels, in_channels, self.kernel_size[0], dtype=dtype))
        if bias:
            self.bias = Parameter(G.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        Conv2d.reset_parameters(self)

    def forward(self, input):
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return F.conv1d(input, self.weight, self.bias, self.stride[0], padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
                + (f", padding={self.padding}" if self.padding not in ((0,), "valid") else "")
                + (", bias=False" if self.bias is None else ""))


class ConvTranspose2d(Module):
    """ConvTranspose2d(in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0): upsampling.

        nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)(x[8,16,7,7]) -> [8,8,14,14]
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        if groups != 1 or F._pair(dilation, "dilation") != (1, 1) or padding_mode != "zeros":
            raise GraphcError("ConvTranspose2d", f"groups={groups}, dilation={dilation}, padding_mode="
                                                 f"{padding_mode!r} is not supported by graphc",
                              hint="use groups=1, dilation=1, padding_mode='zeros'")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = F._pair(kernel_size), F._pair(stride)
        self.padding, self.output_padding = F._pair(padding), F._pair(output_padding)
        self.dilation, self.groups, self.padding_mode = (1, 1), 1, padding_mode
        dtype = dtype or DEFAULT_DTYPE
        # torch's layout: [in, out, kH, kW], and fan_in computed from dim 1, as its init does
        self.weight = Parameter(G.empty(in_channels, out_channels, *self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(G.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        Conv2d.reset_parameters(self)

    def forward(self, input, output_size=None):
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, self.output_padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
                + (f", padding={self.padding}" if self.padding != (0, 0) else "")
                + (f", output_padding={self.output_padding}" if self.output_padding != (0, 0) else "")
                + (", bias=False" if self.bias is None else ""))
