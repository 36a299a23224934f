"""The so-vits-svc 3.0 generator (branches Mera-SVC-32k / Mera-SVC-48k), inference part only.

3.0 differs from 4.0 in a few fixed choices, which the config cannot change:

* the content projection ``pre`` (kernel 1) lives inside the text encoder (``enc_p_.pre``) and
  there is no voicing embedding;
* the text encoder always has 16 layers with FFN kernel 5 (config ``n_layers``/``kernel_size``
  are ignored, as in the reference);
* the vocoder is built from a fixed dict (192 -> 512 channels, upsample 10·8·2·2 = hop 320,
  speaker conditioning 256), and its sine source runs at the model's own rate, 32000 or 48000.

Every part is the 4.x one (``attentions.Encoder``, the WaveNet flow, ``NsfHifiGan``); only the
wiring and the constants are 3.0's.  Parameter names and shapes equal the reference's.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .f0_decoder import f0_to_coarse
from .flows import build_flow
from .nsf_hifigan import NsfHifiGan, SineSource
from .synthesizer import SynthesizerParams, TextEncoder

SAMPLING_RATES = (32000, 48000)
HOP_LENGTH = 320
TEXT_LAYERS = 16  # hard-coded in 3.0's SynthesizerTrn
TEXT_FFN_KERNEL = 5
# The vocoder dict 3.0's models.py writes out (every decoder key of config.json is ignored).
DECODER = {
    "inter_channels": 192,
    "gin_channels": 256,
    "resblock": "1",
    "resblock_kernel_sizes": (3, 7, 11),
    "resblock_dilation_sizes": ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    "upsample_rates": (10, 8, 2, 2),
    "upsample_initial_channel": 512,
    "upsample_kernel_sizes": (16, 16, 4, 4),
}


def sample_multiple(sampling_rate: int) -> int:
    """Samples at the model rate per HuBERT-soft frame (20 ms): 640 at 32 kHz, 960 at 48 kHz.

    Input padded to a multiple of this gives units that repeat exactly 2x / 3x onto the model's
    frames, as 3.0 repeats them.
    """
    return sampling_rate // 50


def fixed_decoder_params(params: SynthesizerParams) -> SynthesizerParams:
    """``params`` with the decoder keys replaced by 3.0's fixed values."""
    return dataclasses.replace(params, **DECODER, version="3.0")


# 3.0 samples its prior with unscaled noise (no noise-scale setting): the scale that reproduces it.
SOVITS3_NOISE_SCALE = 1.0


class Sovits3TextEncoder(TextEncoder):
    """``enc_p_``: units -> ``pre`` (1x1) + coarse-pitch embedding -> 16-layer encoder -> prior sample."""

    def __init__(self, p: SynthesizerParams):
        super().__init__(dataclasses.replace(p, n_layers=TEXT_LAYERS, kernel_size=TEXT_FFN_KERNEL))
        self.pre = nn.Conv1d(p.ssl_dim, p.hidden_channels, 1)

    def forward(self, c: torch.Tensor, x_mask: torch.Tensor, f0_coarse: torch.Tensor, noise_scale: float,
                generator: torch.Generator | None) -> torch.Tensor:
        """``c (B, ssl_dim, T)``, coarse pitch ``(B, T)`` -> ``z_p (B, inter, T)``."""
        return super().forward(self.pre(c) * x_mask, x_mask, f0_coarse, noise_scale, generator)


class Sovits3Synthesizer(nn.Module):
    """so-vits-svc 3.0 ``SynthesizerTrn``: units ``(1, 256, T)`` + f0 + speaker -> audio ``(1, 1, 320*T)``."""

    def __init__(self, p: SynthesizerParams, sampling_rate: int):
        super().__init__()
        if sampling_rate not in SAMPLING_RATES:
            raise ValueError(f"so-vits-svc 3.0 models run at {SAMPLING_RATES}, not {sampling_rate} Hz")
        p = fixed_decoder_params(p)
        self.params = p
        self.sampling_rate = sampling_rate
        self.emb_g = nn.Embedding(p.n_speakers, p.gin_channels)
        self.enc_p_ = Sovits3TextEncoder(p)
        self.dec = NsfHifiGan(
            p.inter_channels, list(p.upsample_rates), list(p.upsample_kernel_sizes), p.upsample_initial_channel,
            p.resblock, list(p.resblock_kernel_sizes), [list(d) for d in p.resblock_dilation_sizes],
            p.gin_channels, legacy_padding=True, source=SineSource(sampling_rate),
        )
        self.flow = build_flow(
            p.inter_channels, p.hidden_channels, p.filter_channels, p.n_heads, p.gin_channels,
            transformer=False, n_flow_layer=4, n_layers_trans_flow=0, share_parameter=False, depthwise=False,
        )

    @property
    def hop_length(self) -> int:
        return self.dec.upp

    def set_precision(self, dtype: torch.dtype) -> None:
        """Run the vocoder's upsampler in ``dtype`` (see ``SynthesizerTrn.set_precision``)."""
        self.dec.set_precision(dtype)

    @torch.inference_mode()
    def infer(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor | None, g: torch.Tensor,
              noise_scale: float = SOVITS3_NOISE_SCALE, seed: int = 52468, predict_f0: bool = False,
              vol: torch.Tensor | None = None,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Synthesize ``(audio (1, 1, 320*T), f0 (1, T))`` with the 4.x ``infer`` signature.

        ``c (1, 256, T)`` are HuBERT-soft units already repeated to the frame rate, ``f0 (1, T)``
        Hz with 0 where unvoiced (the sine source takes its voicing from ``f0 > 0``), ``g`` the
        speaker id.  ``uv``, ``vol`` and ``predict_f0`` are accepted and ignored: 3.0 has no
        voicing or volume embedding and no F0 decoder.  ``noise_scale`` scales the prior's noise
        (the reference always uses 1).  The random numbers come from a generator seeded with
        ``seed``, in the reference's order, so the audio equals the reference ``infer`` run right
        after ``torch.manual_seed(seed)``.
        """
        del uv, vol, predict_f0
        if generator is None:
            generator = torch.Generator(device=c.device).manual_seed(seed)
        if g.dim() == 1:
            g = g.unsqueeze(0)
        g = self.emb_g(g).transpose(1, 2)
        x_mask = torch.ones(c.size(0), 1, c.size(2), device=c.device, dtype=c.dtype)
        z_p = self.enc_p_(c, x_mask, f0_to_coarse(f0, "4.0"), noise_scale, generator)
        z = self.flow.reverse(z_p, x_mask, g=g)
        audio = self.dec(z * x_mask, f0, g=g, generator=generator)
        return audio, f0
