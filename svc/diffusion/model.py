"""``Unit2Mel``: conditioning embeddings plus the Gaussian diffusion decoder, as so-vits-svc 4.1 saves them.

The module tree (and so every ``state_dict`` key) is the reference's: ``unit_embed``, ``f0_embed``,
``volume_embed``, optional ``aug_shift_embed`` and ``spk_embed``, and ``decoder`` (the schedule
buffers, ``spec_min``/``spec_max`` and the WaveNet ``denoise_fn``).  Sampling lives in ``samplers``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import DiffusionConfig
from .wavenet import WaveNet

SPEC_MIN, SPEC_MAX = -12.0, 2.0  # the log-mel range mapped to [-1, 1]
MAX_BETA = 0.02


def linear_betas(timesteps: int, max_beta: float = MAX_BETA) -> np.ndarray:
    """The reference's linear β schedule from 1e-4 to ``max_beta`` (float64)."""
    return np.linspace(1e-4, max_beta, timesteps)


class GaussianDiffusion(nn.Module):
    """DDPM schedule buffers (float32, derived in float64 as the reference does) around a denoiser."""

    def __init__(self, denoise_fn: WaveNet, mel_bins: int, timesteps: int = 1000) -> None:
        super().__init__()
        self.denoise_fn = denoise_fn
        self.mel_bins = mel_bins
        self.num_timesteps = timesteps
        betas = linear_betas(timesteps)
        alphas = 1.0 - betas
        cumprod = np.cumprod(alphas)
        cumprod_prev = np.append(1.0, cumprod[:-1])
        posterior_variance = betas * (1.0 - cumprod_prev) / (1.0 - cumprod)
        buffers = {
            "betas": betas,
            "alphas_cumprod": cumprod,
            "alphas_cumprod_prev": cumprod_prev,
            "sqrt_alphas_cumprod": np.sqrt(cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - cumprod),
            "log_one_minus_alphas_cumprod": np.log(1.0 - cumprod),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / cumprod),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / cumprod - 1),
            "posterior_variance": posterior_variance,
            # clipped because the posterior variance is 0 at the first step
            "posterior_log_variance_clipped": np.log(np.maximum(posterior_variance, 1e-20)),
            "posterior_mean_coef1": betas * np.sqrt(cumprod_prev) / (1.0 - cumprod),
            "posterior_mean_coef2": (1.0 - cumprod_prev) * np.sqrt(alphas) / (1.0 - cumprod),
        }
        for name, value in buffers.items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32))
        self.register_buffer("spec_min", torch.full((1, 1, 1), SPEC_MIN))
        self.register_buffer("spec_max", torch.full((1, 1, 1), SPEC_MAX))

    def norm_spec(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel → [-1, 1] (same shape)."""
        return (mel - self.spec_min) / (self.spec_max - self.spec_min) * 2 - 1

    def denorm_spec(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] → log-mel (same shape)."""
        return (x + 1) / 2 * (self.spec_max - self.spec_min) + self.spec_min

    def q_sample(self, x0: torch.Tensor, step: int, noise: torch.Tensor) -> torch.Tensor:
        """Diffuse ``x0`` to step index ``step``: √ᾱ·x0 + √(1−ᾱ)·noise."""
        return self.sqrt_alphas_cumprod[step] * x0 + self.sqrt_one_minus_alphas_cumprod[step] * noise


class Unit2Mel(nn.Module):
    """Content, F0, volume and speaker → conditioning ``[B, H, T]``; ``decoder`` turns it into a mel."""

    def __init__(self, cfg: DiffusionConfig, mel_bins: int) -> None:
        super().__init__()
        h = cfg.n_hidden
        self.unit_embed = nn.Linear(cfg.encoder_out_channels, h)
        self.f0_embed = nn.Linear(1, h)
        self.volume_embed = nn.Linear(1, h)
        if cfg.use_pitch_aug:
            self.aug_shift_embed = nn.Linear(1, h, bias=False)  # training only; kept so files load strictly
        self.n_spk = cfg.n_spk
        if cfg.n_spk > 1:
            self.spk_embed = nn.Embedding(cfg.n_spk, h)
        self.k_step_max = cfg.k_step_max
        self.decoder = GaussianDiffusion(WaveNet(mel_bins, cfg.n_layers, cfg.n_chans, h), mel_bins, cfg.timesteps)

    def condition(self, units: torch.Tensor, f0: torch.Tensor, volume: torch.Tensor,
                  speaker_id: int) -> torch.Tensor:
        """``units [1, T, E]``, ``f0 [1, T, 1]`` Hz, ``volume [1, T, 1]`` → ``[1, H, T]``.

        The speaker row is the id itself (as the reference's forward; not id − 1).
        """
        x = self.unit_embed(units) + self.f0_embed(torch.log(1 + f0 / 700)) + self.volume_embed(volume)
        if self.n_spk > 1:
            x = x + self.spk_embed(torch.tensor([[speaker_id]], device=units.device))
        return x.transpose(1, 2)
