"""Convolutions over ``(B, C, 1, T)`` channels-last signals with their weights arranged once.

On GPUs a ``Conv`` is a plain ``F.conv2d`` call.  On a CPU with oneDNN (float32 and bfloat16), the
weight is pre-packed once into the blocked layout oneDNN's AVX-512 / AMX kernels read
(``ONEDNN_VERBOSE=1`` showed a weight reorder before every convolution otherwise, as costly as a
small convolution itself), and the residual add and the leaky ReLU after a convolution are fused
into it as oneDNN post-ops.  In float32 the packed convolutions run the same kernel as ``F.conv2d``
and give the same bits (the full-size vocoder's output was identical, 1.6-1.8x faster).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The signal length the packed layout is chosen for.  Without one, oneDNN picks a layout its kernel
# then reorders again on every call; any long-signal length gives the kernel's own (checked with
# ONEDNN_VERBOSE=1 at 1000..70000 samples).
PACK_LENGTH = 4096


def can_pack(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether weights for ``dtype`` on ``device`` are pre-packed for oneDNN (CPU float32 and bfloat16)."""
    return (torch.device(device).type == "cpu" and dtype in (torch.float32, torch.bfloat16)
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


class Conv:
    """``conv2d`` with stride/padding/dilation along time only; ``weight`` is ``(out, in, 1, k)``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int = 1, padding: int = 0,
                 dilation: int = 1, *, pack: bool = False):
        self.weight, self.bias = weight, bias
        self.stride, self.padding, self.dilation = (1, stride), (0, padding), (1, dilation)
        self.packed = pack
        if pack:
            self.weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
                weight.contiguous().to_mkldnn(), list(self.padding), list(self.stride), list(self.dilation), 1,
                [1, weight.shape[1], 1, PACK_LENGTH])

    def __call__(self, x: torch.Tensor, leaky_slope: float | None = None) -> torch.Tensor:
        """``conv(x)``, followed by ``leaky_relu(., leaky_slope)`` when a slope is given."""
        if not self.packed:
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
            return y if leaky_slope is None else F.leaky_relu_(y, leaky_slope)
        attr, scalars = ("none", []) if leaky_slope is None else ("leaky_relu", [leaky_slope])
        return torch.ops.mkldnn._convolution_pointwise(_dense(x), self.weight, self.bias, list(self.padding),
                                                       list(self.stride), list(self.dilation), 1, attr, scalars, "")

    def add_to(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``out += conv(x)`` in place (one fused kernel when packed); returns ``out``."""
        if not self.packed:
            return self(x).add_(out)
        return torch.ops.mkldnn._convolution_pointwise_(out, _dense(x), self.weight, self.bias, list(self.padding),
                                                        list(self.stride), list(self.dilation), 1, "add", 1.0,
                                                        None, [], None)


    def plus(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``conv(x) + other`` as a new tensor; ``other`` is left alone."""
        if not self.packed:
            return self(x).add_(other)
        # A copy plus the in-place fused add beat oneDNN's binary-add post-op (which copies ``other``
        # itself, then runs slower): 0.81 against 0.87 s for the bf16 core.
        return self.add_to(other.clone(memory_format=torch.channels_last), x)


class ConvTranspose:
    """``conv_transpose2d`` along time; ``weight`` is ``(in, out, 1, k)``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int, *,
                 pack: bool = False):
        self.weight, self.bias = weight, bias
        self.stride, self.padding = (1, stride), (0, padding)
        self.packed = pack
        if pack:
            self.weight = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                weight.contiguous(), list(self.padding), [0, 0], list(self.stride), [1, 1], 1,
                [1, weight.shape[0], 1, PACK_LENGTH])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return torch.ops.mkldnn._convolution_transpose_pointwise(
            _dense(x), self.weight, self.bias, list(self.padding), [0, 0], list(self.stride), [1, 1], 1, "none", [], "")


def _dense(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def time_major(x: torch.Tensor) -> torch.Tensor:
    """``(1, C, 1, T)`` -> the ``(T, C)`` view of its channels-last memory (a copy only when the layout
    differs)."""
    return _dense(x)[0, :, 0].t()
