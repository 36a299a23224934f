"""Anti-aliased SnakeBeta activation of the ``nsf-snake-hifigan`` vocoder.

2x upsample (Kaiser-windowed sinc), SnakeBeta, 2x low-pass downsample.  Each resampler keeps
its filter as a ``filter`` buffer because the reference saves it in checkpoints; like the
reference, the convolution itself always uses the filter computed here, not the stored one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KERNEL_SIZE = 12
RATIO = 2


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Low-pass FIR filter ``(1, 1, kernel_size)`` normalised to unit DC gain."""
    half_size = kernel_size // 2
    delta_f = 4 * half_width
    attenuation = 2.285 * (half_size - 1) * math.pi * delta_f + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    if kernel_size % 2 == 0:
        time = torch.arange(-half_size, half_size) + 0.5
    else:
        time = torch.arange(kernel_size) - half_size
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps / taps.sum()).view(1, 1, kernel_size)


class _Resampler(nn.Module):
    def __init__(self):
        super().__init__()
        taps = kaiser_sinc_filter(0.5 / RATIO, 0.6 / RATIO, KERNEL_SIZE)
        self.register_buffer("filter", taps.clone())
        self.register_buffer("kernel", taps, persistent=False)


class UpSample1d(_Resampler):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = KERNEL_SIZE // RATIO - 1
        pad_left = pad * RATIO + (KERNEL_SIZE - RATIO) // 2
        pad_right = pad * RATIO + (KERNEL_SIZE - RATIO + 1) // 2
        channels = x.shape[1]
        x = F.pad(x, (pad, pad), mode="replicate")
        x = RATIO * F.conv_transpose1d(x, self.kernel.expand(channels, -1, -1), stride=RATIO, groups=channels)
        return x[..., pad_left:-pad_right]


class LowPassFilter1d(_Resampler):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (KERNEL_SIZE // 2 - 1, KERNEL_SIZE // 2), mode="replicate")
        return F.conv1d(x, self.kernel.expand(channels, -1, -1), stride=RATIO, groups=channels)


class DownSample1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.lowpass = LowPassFilter1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """``x + sin(x * e^alpha)^2 / e^beta`` with per-channel log-scale ``alpha``, ``beta``."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha.unsqueeze(0).unsqueeze(-1))
        beta = torch.exp(self.beta.unsqueeze(0).unsqueeze(-1))
        return x + (1.0 / (beta + 1e-9)) * torch.pow(torch.sin(x * alpha), 2)


class SnakeAlias(nn.Module):
    """``(B, C, T) -> (B, C, T)``: upsample, SnakeBeta, downsample."""

    def __init__(self, channels: int):
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = UpSample1d()
        self.downsample = DownSample1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))
