"""Small building blocks shared by the so-vits-svc generator parts.

Weight-normed layers are plain convolutions marked with ``weight_normed``: checkpoints store
them as ``weight_g``/``weight_v`` pairs (legacy ``torch.nn.utils.weight_norm``), which
``svc.models.weight_norm`` folds into one ``weight`` at load time, so inference never
recomputes the normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_NORM_ATTR = "_svc_weight_norm"


def weight_normed(module: nn.Module) -> nn.Module:
    """Mark ``module`` as stored with weight norm in checkpoints; return it."""
    setattr(module, WEIGHT_NORM_ATTR, True)
    return module


def is_weight_normed(module: nn.Module) -> bool:
    return bool(getattr(module, WEIGHT_NORM_ATTR, False))


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of an odd kernel."""
    return int((kernel_size * dilation - dilation) / 2)


class GemmConv1d(nn.Conv1d):
    """A stride-1, undilated, ungrouped ``Conv1d`` that runs inference on a CPU as one matrix product.

    ``weight (out, in*k) @ columns (in*k, T)`` (the ``k`` shifted copies of the padded input) goes to
    MKL / oneDNN's GEMM directly.  ``F.conv1d`` on ``(B, C, T)`` tensors made oneDNN reorder the input,
    the output and the weight into its blocked layout on every call (``ONEDNN_VERBOSE=1``), and its
    fp32 kernel for the flow's ``192 -> 384, k=5`` shape ran at a fraction of GEMM speed.  With
    ``compute_dtype`` bfloat16 the product runs in bfloat16 (AMX / AVX512-BF16) with a float32
    result.  Training (autograd on) and GPUs use the ordinary convolution.
    """

    compute_dtype: torch.dtype = torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, in, T)`` -> ``(B, out, T + 2*padding - k + 1)``."""
        if torch.is_grad_enabled() or x.device.type != "cpu" or self.groups != 1 or self.stride[0] != 1 \
                or self.dilation[0] != 1 or not isinstance(self.padding, tuple):
            return super().forward(x)
        k, pad = self.kernel_size[0], self.padding[0]
        x = x.to(self.compute_dtype)  # first: the k-fold copy below is then made in that dtype
        if pad:
            x = F.pad(x, [pad, pad])
        if k > 1:  # (B, in, T', k) -> (B, in, k, T') -> (B, in*k, T'), the weight's (in, k) order
            x = x.unfold(2, k, 1).transpose(2, 3).reshape(x.shape[0], -1, x.shape[2] - k + 1)
        y = torch.matmul(self._gemm_weight(), x).float()
        return y if self.bias is None else y.add_(self.bias[:, None])

    def _gemm_weight(self) -> torch.Tensor:
        """The ``(out, in*k)`` weight in ``compute_dtype`` (a view in float32; a bfloat16 copy made once per
        weight version, or per call for a weight computed in inference mode, e.g. by a parametrization)."""
        weight = self.weight.reshape(self.weight.shape[0], -1)
        if weight.dtype == self.compute_dtype:
            return weight
        if self.weight.is_inference():  # no version counter: its memory may be reused by another weight
            return weight.to(self.compute_dtype)
        key = (self.compute_dtype, self.weight.data_ptr(), self.weight._version)
        cached = self.__dict__.get("_gemm_cache")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_gemm_cache"] = (key, weight.to(self.compute_dtype).contiguous())
        return cached[1]


def set_gemm_dtype(module: nn.Module, dtype: torch.dtype) -> None:
    """Run every ``GemmConv1d`` inside ``module`` in ``dtype`` (float32 or bfloat16)."""
    for layer in module.modules():
        if isinstance(layer, GemmConv1d):
            layer.compute_dtype = dtype


class LayerNorm(nn.Module):
    """Channel LayerNorm over ``(B, C, T)`` with the reference's ``gamma``/``beta`` names."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class DepthwiseSeparableConv1d(nn.Module):
    """``depth_conv`` (grouped) followed by ``point_conv`` (1x1), each weight-normed on its own."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, padding: int = 0):
        super().__init__()
        self.depth_conv = weight_normed(
            nn.Conv1d(in_channels, in_channels, kernel_size, groups=in_channels, dilation=dilation, padding=padding)
        )
        self.point_conv = weight_normed(nn.Conv1d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


def gated_activation(x: torch.Tensor, cond: torch.Tensor, n_channels: int) -> torch.Tensor:
    """WaveNet gate: ``tanh(a) * sigmoid(b)`` of the two halves of ``x + cond``."""
    z = x + cond
    return torch.tanh(z[:, :n_channels, :]) * torch.sigmoid(z[:, n_channels:, :])
