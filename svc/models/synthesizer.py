"""``SynthesizerTrn``: the so-vits-svc 4.0/4.1 generator, inference part only.

Parameter names and shapes equal the reference's, so its ``G_*.pth`` state dicts load with
``strict=True`` once ``enc_q.*`` (the training-only posterior encoder) is dropped and weight
norm is folded (see ``svc.checkpoint``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attentions import Encoder
from .f0_decoder import F0Decoder, f0_to_coarse, hz_to_lf0, lf0_to_hz, normalize_lf0
from .flows import build_flow
from .layers import GemmConv1d, set_gemm_dtype
from .nsf_hifigan import NsfHifiGan

VOCODERS = ("nsf-hifigan", "nsf-snake-hifigan")


@dataclass(frozen=True)
class SynthesizerParams:
    """The ``model`` section of config.json as far as the inference graph depends on it."""

    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    gin_channels: int
    ssl_dim: int
    n_speakers: int
    vol_embedding: bool = False
    vocoder_name: str = "nsf-hifigan"
    use_depthwise_conv: bool = False
    use_automatic_f0_prediction: bool = True
    flow_share_parameter: bool = False
    n_flow_layer: int = 4
    n_layers_trans_flow: int = 3
    use_transformer_flow: bool = False
    version: str = "4.1"  # "4.0": 4.0 vocoder padding and f0_to_coarse


class TextEncoder(nn.Module):
    """``enc_p``: content + coarse pitch -> prior sample ``z_p``."""

    def __init__(self, p: SynthesizerParams):
        super().__init__()
        self.inter_channels = p.inter_channels
        self.proj = GemmConv1d(p.hidden_channels, p.inter_channels * 2, 1)
        self.f0_emb = nn.Embedding(256, p.hidden_channels)
        self.enc_ = Encoder(p.hidden_channels, p.filter_channels, p.n_heads, p.n_layers, p.kernel_size)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, f0_coarse: torch.Tensor, noise_scale: float,
                generator: torch.Generator | None) -> torch.Tensor:
        x = x + self.f0_emb(f0_coarse).transpose(1, 2)
        x = self.enc_(x * x_mask, x_mask)
        stats = self.proj(x) * x_mask
        m, logs = torch.split(stats, self.inter_channels, dim=1)
        noise = torch.randn(m.shape, generator=generator, device=m.device, dtype=m.dtype)
        return (m + noise * torch.exp(logs) * noise_scale) * x_mask


class SynthesizerTrn(nn.Module):
    """content ``c (1, ssl_dim, T)`` + f0 + speaker -> audio ``(1, 1, T*hop)``."""

    def __init__(self, p: SynthesizerParams):
        super().__init__()
        self.params = p
        self.emb_g = nn.Embedding(p.n_speakers, p.gin_channels)
        if p.vol_embedding:
            self.emb_vol = nn.Linear(1, p.hidden_channels)
        self.pre = GemmConv1d(p.ssl_dim, p.hidden_channels, kernel_size=5, padding=2)
        self.enc_p = TextEncoder(p)
        self.dec = NsfHifiGan(
            p.inter_channels, list(p.upsample_rates), list(p.upsample_kernel_sizes), p.upsample_initial_channel,
            p.resblock, list(p.resblock_kernel_sizes), [list(d) for d in p.resblock_dilation_sizes],
            p.gin_channels, snake=p.vocoder_name == "nsf-snake-hifigan", legacy_padding=p.version == "4.0",
        )
        self.flow = build_flow(
            p.inter_channels, p.hidden_channels, p.filter_channels, p.n_heads, p.gin_channels,
            transformer=p.use_transformer_flow, n_flow_layer=p.n_flow_layer,
            n_layers_trans_flow=p.n_layers_trans_flow, share_parameter=p.flow_share_parameter,
            depthwise=p.use_depthwise_conv,
        )
        if p.use_automatic_f0_prediction:
            self.f0_decoder = F0Decoder(p.hidden_channels, p.filter_channels, p.n_heads, p.n_layers,
                                        p.kernel_size, p.gin_channels)
        self.emb_uv = nn.Embedding(2, p.hidden_channels)

    @property
    def hop_length(self) -> int:
        return self.dec.upp

    def set_precision(self, dtype: torch.dtype) -> None:
        """Run the vocoder's upsampler in ``dtype``, and with bfloat16 also the matrix products of the
        text encoder, flow and F0 decoder convolutions (float32 results); the excitation's phase,
        attention, normalisation and every stored weight stay float32.  Snake vocoders always run
        in float32.
        """
        self.dec.set_precision(dtype)
        set_gemm_dtype(self, torch.bfloat16 if dtype == torch.bfloat16 else torch.float32)

    def speaker_conditioning(self, g: torch.Tensor) -> torch.Tensor:
        """``(1, gin, 1)`` for a speaker id ``[[sid]]``; ``(1, gin, T)`` for per-frame mix weights
        ``[T, n_speakers]`` (float): ``sum_s w[t, s] * emb_g[s]``, so-vits-svc's character mix."""
        if g.is_floating_point():
            return (g[:, :, None] * self.emb_g.weight[None]).sum(dim=1).T[None]
        if g.dim() == 1:
            g = g.unsqueeze(0)
        return self.emb_g(g).transpose(1, 2)

    @torch.inference_mode()
    def infer(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, g: torch.Tensor,
              noise_scale: float = 0.4, seed: int = 52468, predict_f0: bool = False,
              vol: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthesize ``(audio (1, 1, T*hop), f0 (1, T))``.

        ``c (1, ssl_dim, T)``, ``f0 (1, T)`` Hz, ``uv (1, T)``, ``g`` speaker id ``[[sid]]`` or
        speaker-mix weights ``[T, n_speakers]`` (float),
        ``vol (1, T)`` (used only by vol_embedding models).  The noise comes from a fresh
        generator seeded with ``seed`` on every call (the same stream as the reference's
        ``torch.manual_seed(seed)``, without touching torch's global RNG); pass ``generator``
        to continue one instead.  With ``predict_f0`` the F0 decoder replaces ``f0``.
        """
        if generator is None:
            generator = torch.Generator(device=c.device).manual_seed(seed)
        g = self.speaker_conditioning(g)
        x_mask = torch.ones(c.size(0), 1, c.size(2), device=c.device, dtype=c.dtype)
        x = self.pre(c) * x_mask + self.emb_uv(uv.long()).transpose(1, 2)
        if vol is not None and self.params.vol_embedding:
            x = x + self.emb_vol(vol[:, :, None]).transpose(1, 2)

        if predict_f0 and self.params.use_automatic_f0_prediction:
            norm_lf0 = normalize_lf0(hz_to_lf0(f0), x_mask, uv)
            f0 = lf0_to_hz(self.f0_decoder(x, norm_lf0, x_mask, spk_emb=g))

        z_p = self.enc_p(x, x_mask, f0_to_coarse(f0, self.params.version), noise_scale, generator)
        z = self.flow.reverse(z_p, x_mask, g=g)
        audio = self.dec(z * x_mask, f0, g=g, generator=generator)
        return audio, f0
