"""The denoiser of so-vits-svc 4.1's shallow diffusion: a non-causal WaveNet over mel frames.

Parameter names and shapes are the reference's (``decoder.denoise_fn.*`` in a ``model_N.pt``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def step_embedding(step: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) diffusion steps: ``[B]`` → ``[B, dim]`` (sines, then cosines)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=step.device) * -(math.log(10000) / (half - 1)))
    angles = step.float()[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class ResidualBlock(nn.Module):
    """Gated residual layer: step and conditioning are added, tanh·sigmoid gate, residual + skip out."""

    def __init__(self, n_hidden: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, 3, padding=1)
        self.diffusion_projection = nn.Linear(channels, channels)
        self.conditioner_projection = nn.Conv1d(n_hidden, 2 * channels, 1)
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T]``, ``cond [B, H, T]``, ``step [B, C]`` → ``(residual out, skip)``, both ``[B, C, T]``."""
        y = self.dilated_conv(x + self.diffusion_projection(step)[..., None]) + self.conditioner_projection(cond)
        gate, filt = y.split(self.channels, dim=1)
        residual, skip = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt)).split(self.channels, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class WaveNet(nn.Module):
    """Noise predictor ε(x_t, t, cond) of the diffusion decoder."""

    def __init__(self, mel_bins: int = 128, n_layers: int = 20, n_chans: int = 384, n_hidden: int = 256) -> None:
        super().__init__()
        self.n_chans = n_chans
        self.input_projection = nn.Conv1d(mel_bins, n_chans, 1)
        self.mlp = nn.Sequential(nn.Linear(n_chans, n_chans * 4), nn.Mish(), nn.Linear(n_chans * 4, n_chans))
        self.residual_layers = nn.ModuleList(ResidualBlock(n_hidden, n_chans) for _ in range(n_layers))
        self.skip_projection = nn.Conv1d(n_chans, n_chans, 1)
        self.output_projection = nn.Conv1d(n_chans, mel_bins, 1)

    def forward(self, spec: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``spec [B, 1, M, T]``, ``step [B]`` (float or int), ``cond [B, H, T]`` → predicted noise ``[B, 1, M, T]``."""
        x = F.relu(self.input_projection(spec[:, 0]))
        step_emb = self.mlp(step_embedding(step.reshape(-1), self.n_chans))
        skips = None
        for layer in self.residual_layers:
            x, skip = layer(x, cond, step_emb)
            skips = skip if skips is None else skips + skip
        x = F.relu(self.skip_projection(skips / math.sqrt(len(self.residual_layers))))
        return self.output_projection(x)[:, None]
