"""NSF-HiFiGAN vocoder: harmonic-plus-noise source from F0, HiFi-GAN upsampler.

``NsfHifiGan`` is the ``dec`` of the so-vits-svc generator (``nsf-hifigan`` and, with
``snake=True``, ``nsf-snake-hifigan``).  It is also usable without speaker conditioning
(``gin_channels=0``: no ``cond`` layer), with 4.0/openvpi padding (``legacy_padding``) and with
another excitation source (``source``), e.g. for a mel vocoder.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import get_padding, weight_normed
from .snake import SnakeAlias

LRELU_SLOPE = 0.1
SOURCE_SAMPLING_RATE = 44100  # so-vits-svc never passes its sampling_rate to the vocoder


class SineSource(nn.Module):
    """so-vits-svc's per-sample harmonic source (``m_source``): f0 frames -> ``(B, 1, T*upp)``.

    Nine harmonics with random initial phases (the fundamental starts at 0), gated by
    voicing, plus Gaussian noise, merged by ``l_linear`` and tanh.  Random numbers are drawn
    in the reference's order: phases ``(B, 9)``, noise ``(B, L, 9)``, then an unused ``(B, L, 1)``
    draw that the reference also makes (kept so a caller continuing the generator stays aligned).
    """

    def __init__(self, sampling_rate: int = SOURCE_SAMPLING_RATE, harmonic_num: int = 8,
                 sine_amp: float = 0.1, noise_std: float = 0.003):
        super().__init__()
        self.sampling_rate = sampling_rate
        self.dim = harmonic_num + 1
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.l_linear = nn.Linear(self.dim, 1)

    def forward(self, f0: torch.Tensor, upp: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``f0 (B, T)`` Hz -> excitation ``(B, 1, T*upp)``."""
        f0 = F.interpolate(f0[:, None], scale_factor=float(upp), mode="nearest").transpose(1, 2)
        harmonics = torch.arange(1, self.dim + 1, device=f0.device, dtype=f0.dtype).view(1, 1, -1)
        sines = self._sines(f0 * harmonics, generator) * self.sine_amp
        uv = (f0 > 0).to(f0.dtype)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        noise = noise_amp * torch.randn(sines.shape, generator=generator, device=f0.device, dtype=f0.dtype)
        excitation = torch.tanh(self.l_linear(sines * uv + noise))
        torch.randn(uv.shape, generator=generator, device=f0.device, dtype=f0.dtype)  # the reference's unused draw
        return excitation.transpose(1, 2)

    def _sines(self, fn: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        rad = (fn / self.sampling_rate) % 1
        phase0 = torch.rand(fn.shape[0], fn.shape[2], generator=generator, device=fn.device, dtype=fn.dtype)
        phase0[:, 0] = 0
        rad[:, 0, :] = rad[:, 0, :] + phase0
        # Subtract 1 wherever the wrapped phase falls back, so the float32 cumsum stays small.
        wrapped = torch.cumsum(rad, 1) % 1
        shift = torch.zeros_like(rad)
        shift[:, 1:, :] = ((wrapped[:, 1:, :] - wrapped[:, :-1, :]) < 0) * -1.0
        return torch.sin(torch.cumsum(rad + shift, dim=1) * 2 * np.pi)


class ResBlock(nn.Module):
    """HiFi-GAN residual block: type "1" (``convs1``/``convs2`` pairs) or "2" (``convs``)."""

    def __init__(self, kind: str, channels: int, kernel_size: int, dilations: list[int], snake: bool):
        super().__init__()
        self.kind = kind

        def conv(dilation: int) -> nn.Module:
            return weight_normed(nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation,
                                           padding=get_padding(kernel_size, dilation)))

        if kind == "1":
            self.convs1 = nn.ModuleList(conv(d) for d in dilations[:3])
            self.convs2 = nn.ModuleList(conv(1) for _ in dilations[:3])
            n_acts = 6
        else:
            self.convs = nn.ModuleList(conv(d) for d in dilations[:2])
            n_acts = 2
        self.activations = nn.ModuleList(
            SnakeAlias(channels) if snake else nn.LeakyReLU(LRELU_SLOPE) for _ in range(n_acts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "1":
            for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
                xt = c1(self.activations[2 * i](x))
                x = c2(self.activations[2 * i + 1](xt)) + x
        else:
            for conv, act in zip(self.convs, self.activations, strict=True):
                x = conv(act(x)) + x
        return x


class NsfHifiGan(nn.Module):
    """Source-filter HiFi-GAN: ``(B, in, T)`` features + ``(B, T)`` f0 -> ``(B, 1, T*prod(rates))``."""

    def __init__(self, in_channels: int, upsample_rates: list[int], upsample_kernel_sizes: list[int],
                 upsample_initial_channel: int, resblock: str, resblock_kernel_sizes: list[int],
                 resblock_dilation_sizes: list[list[int]], gin_channels: int = 0, *, snake: bool = False,
                 legacy_padding: bool = False, source: nn.Module | None = None):
        super().__init__()
        self.upp = math.prod(upsample_rates)
        self.num_kernels = len(resblock_kernel_sizes)
        self.snake = snake
        self.m_source = source if source is not None else SineSource()
        self.conv_pre = weight_normed(nn.Conv1d(in_channels, upsample_initial_channel, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        if snake:
            self.snakes = nn.ModuleList()
        for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes, strict=True)):
            c_in, c_out = upsample_initial_channel // 2**i, upsample_initial_channel // 2 ** (i + 1)
            # 4.0 (and openvpi) pad (k-u)//2 and s//2; 4.1 rounds up.  Equal for even values.
            pad = (k - u) // 2 if legacy_padding else (k - u + 1) // 2
            self.ups.append(weight_normed(nn.ConvTranspose1d(c_in, c_out, k, u, padding=pad)))
            if i + 1 < len(upsample_rates):
                s = math.prod(upsample_rates[i + 1:])
                noise_pad = s // 2 if legacy_padding else (s + 1) // 2
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=s * 2, stride=s, padding=noise_pad))
            else:
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=1))
            if snake:
                self.snakes.append(SnakeAlias(c_in))
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock(resblock, c_out, rk, list(rd), snake))
        self.conv_post = weight_normed(nn.Conv1d(c_out, 1, 7, 1, padding=3))
        if snake:
            self.snake_post = SnakeAlias(c_out)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``x (B, in, T)``, ``f0 (B, T)`` Hz, ``g (B, gin, 1|T)`` -> audio ``(B, 1, T*upp)`` in [-1, 1]."""
        har_source = self.m_source(f0, self.upp, generator)
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        for i, (up, noise_conv) in enumerate(zip(self.ups, self.noise_convs, strict=True)):
            x = self.snakes[i](x) if self.snake else F.leaky_relu(x, LRELU_SLOPE)
            x = up(x) + noise_conv(har_source)
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / self.num_kernels
        # The reference's final activation uses leaky_relu's default slope 0.01, not 0.1.
        x = self.snake_post(x) if self.snake else F.leaky_relu(x)
        return torch.tanh(self.conv_post(x))
