"""F0 helpers of the generator: the coarse pitch index and the automatic F0 decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..pitch import F0_MAX, F0_MIN
from .attentions import FFT
from .layers import GemmConv1d

F0_BIN = 256
F0_MEL_MIN = 1127 * math.log(1 + F0_MIN / 700)
F0_MEL_MAX = 1127 * math.log(1 + F0_MAX / 700)


def f0_to_coarse(f0: torch.Tensor, version: str = "4.1") -> torch.Tensor:
    """Map Hz to the ``f0_emb`` index 1..255 (mel scale, 50 Hz -> 1, 1100 Hz -> 255); 0 Hz -> 1.

    The two reference versions disagree above ~1103 Hz: 4.1 maps indices >= 256 to 0, 4.0
    clamps them to 255.  Both formulas are kept exactly, rounding included.
    """
    f0_mel = 1127 * (1 + f0 / 700).log()
    if version == "4.0":
        scaled = (f0_mel - F0_MEL_MIN) * (F0_BIN - 2) / (F0_MEL_MAX - F0_MEL_MIN) + 1
        f0_mel = torch.where(f0_mel > 0, scaled, f0_mel)
        f0_mel = f0_mel.clamp(1, F0_BIN - 1)
        return (f0_mel + 0.5).int().long()
    a = (F0_BIN - 2) / (F0_MEL_MAX - F0_MEL_MIN)
    b = F0_MEL_MIN * a - 1.0
    f0_mel = torch.where(f0_mel > 0, f0_mel * a - b, f0_mel)
    coarse = torch.round(f0_mel).long()
    coarse = coarse * (coarse > 0)
    coarse = coarse + (coarse < 1).long()
    return coarse * (coarse < F0_BIN)


def hz_to_lf0(f0: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` Hz -> ``(B, 1, T)`` scaled log-mel pitch, the F0 decoder's unit."""
    return 2595.0 * torch.log10(1.0 + f0.unsqueeze(1) / 700.0) / 500


def lf0_to_hz(lf0: torch.Tensor) -> torch.Tensor:
    """``(B, 1, T)`` decoder output -> ``(B, T)`` Hz."""
    return (700 * (torch.pow(10, lf0 * 500 / 2595) - 1)).squeeze(1)


def normalize_lf0(lf0: torch.Tensor, x_mask: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Subtract the mean over voiced frames (none voiced: divide by 9999 as the reference does)."""
    uv_sum = torch.sum(uv, dim=1, keepdim=True)
    uv_sum[uv_sum == 0] = 9999
    means = torch.sum(lf0[:, 0, :] * uv, dim=1, keepdim=True) / uv_sum
    return (lf0 - means.unsqueeze(-1)) * x_mask


class F0Decoder(nn.Module):
    """Predicts log-F0 from content features, the speaker and the (normalised) input pitch."""

    def __init__(self, hidden: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 spk_channels: int):
        super().__init__()
        self.prenet = GemmConv1d(hidden, hidden, 3, padding=1)
        self.decoder = FFT(hidden, filter_channels, n_heads, n_layers, kernel_size)
        self.proj = GemmConv1d(hidden, 1, 1)
        self.f0_prenet = GemmConv1d(1, hidden, 3, padding=1)
        self.cond = GemmConv1d(spk_channels, hidden, 1)

    def forward(self, x: torch.Tensor, norm_lf0: torch.Tensor, x_mask: torch.Tensor,
                spk_emb: torch.Tensor) -> torch.Tensor:
        """``x (B, H, T)``, ``norm_lf0 (B, 1, T)``, ``spk_emb (B, gin, 1|T)`` -> ``(B, 1, T)``."""
        x = x + self.cond(spk_emb)
        x = x + self.f0_prenet(norm_lf0)
        x = self.prenet(x) * x_mask
        x = self.decoder(x * x_mask, x_mask)
        return self.proj(x) * x_mask
