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
