"""WavLM (microsoft/unilm) as a content encoder (wavlmbase+): last transformer layer, 50 Hz.

The weight file is the release format ``{'cfg': dict, 'model': state_dict}``.  Every
hyper-parameter comes from ``cfg``; the fallbacks are those of the release's ``WavLMConfig``
(note they differ from WavLM Base+: no relative position bias, max_distance 1280, no gating).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WeightFileError
from ..weights import float_state, load_module_state, load_torch_file
from .base import ContentEncoder
from .files import require_dict_keys
from .hubert import FairseqConfig, map_fairseq_keys, read_fairseq_config
from .hubert_net import (
    FeatureExtractor,
    SelfAttention,
    TransformerEncoder,
    TransformerLayer,
    receptive_field,
)
from .registry import EncoderSpec


@dataclass(frozen=True)
class WavLMConfig(FairseqConfig):
    """A WavLM ``cfg``: the fairseq keys plus the relative position bias settings."""

    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> Tensor:
    """T5-style bidirectional buckets ``(length, length)`` of key position minus query position."""
    positions = torch.arange(length)
    relative = positions[None, :] - positions[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).long() * half
    distance = relative.abs()
    max_exact = half // 2
    # log-spaced buckets beyond max_exact; clamp the distance to 1 only to keep log finite
    far = max_exact + (
        torch.log(distance.clamp(min=1).float() / max_exact)
        / math.log(max_distance / max_exact)
        * (half - max_exact)
    ).long()
    far = far.clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, far)


class WavLMAttention(SelfAttention):
    """Self-attention with WavLM's gated relative position bias."""

    def __init__(self, cfg: WavLMConfig, has_relative_bias: bool):
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        super().__init__(dim, heads, dim // heads)
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.gru_rel_pos = cfg.gru_rel_pos
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))
        self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads) if has_relative_bias else None

    def position_bias(self, length: int) -> Tensor:
        """``(heads, T, T)`` bias from the bucket table (first layer only)."""
        buckets = relative_position_buckets(length, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets.to(self.relative_attention_bias.weight.device)).permute(2, 0, 1)

    def forward(self, x: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(B, T, C)`` and the shared ``(H, T, T)`` bias (or None) -> output and the bias to pass on."""
        if self.relative_attention_bias is not None and bias is None:
            bias = self.position_bias(x.shape[1])
        if bias is None:
            return self.attend(x, None), None
        layer_bias = bias[None]
        if self.gru_rel_pos:
            # the gate reads the layer input (before projection), split into heads
            batch, length, _ = x.shape
            per_head = x.view(batch, length, self.num_heads, -1).transpose(1, 2)
            gates = torch.sigmoid(self.grep_linear(per_head).view(batch, self.num_heads, length, 2, 4).sum(-1))
            gate_a, gate_b = gates.chunk(2, dim=-1)
            layer_bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * layer_bias
        return self.attend(x, layer_bias), bias


class WavLM(ContentEncoder):
    """WavLM last-layer features: 16 kHz wav ``(1, N)`` -> ``(1, dim, frames)``."""

    def __init__(self, cfg: WavLMConfig, name: str = "wavlmbase+"):
        super().__init__()
        self.name = name
        self.dim = cfg.encoder_embed_dim
        self.cfg = cfg
        dim = cfg.encoder_embed_dim
        conv_dim = cfg.conv_layers()[-1][0]
        self.feature_extractor = FeatureExtractor(cfg.conv_layers(), cfg.conv_bias, cfg.extractor_mode)
        self.layer_norm = nn.LayerNorm(conv_dim)
        self.post_extract_proj = nn.Linear(conv_dim, dim) if conv_dim != dim else None
        layers = [
            # The first layer's relative position bias is shared by all layers.
            TransformerLayer(dim, WavLMAttention(cfg, cfg.relative_position_embedding and i == 0),
                             cfg.encoder_ffn_embed_dim, cfg.layer_norm_first, cfg.activation_fn)
            for i in range(cfg.encoder_layers)
        ]
        self.encoder = TransformerEncoder(dim, cfg.conv_pos, cfg.conv_pos_groups, layers,
                                          norm_before_layers=not cfg.layer_norm_first)

    @property
    def receptive_field(self) -> int:
        """Samples that make one output frame (400 for the usual conv spec)."""
        return receptive_field(self.cfg.conv_layers())

    def bfloat16_parts(self) -> list[nn.Module]:
        return [self.feature_extractor.conv_layers[1:], self.encoder.layers]

    def forward(self, wav16k: Tensor) -> Tensor:
        """``(1, N)`` float at 16 kHz -> ``(1, dim, frames)``, frames = (N - 400) // 320 + 1."""
        wav = wav16k.reshape(1, -1).float()
        if self.cfg.normalize:
            wav = F.layer_norm(wav, wav.shape[-1:])
        if wav.shape[-1] < self.receptive_field:
            # shorter than one frame: no frames (the conv stack would fail)
            return wav.new_zeros(1, self.dim, 0)
        wav = wav.to(self.layer_norm.weight.dtype)  # a half-precision model gets half input
        features = self.layer_norm(self.feature_extractor(wav).transpose(1, 2))
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        return self.encoder(features).transpose(1, 2).float()


def _expected(spec: EncoderSpec) -> str:
    return f"the WavLM checkpoint {spec.filename} ({spec.dim}-dim) from {spec.source}"


def load_wavlm(path: Path, spec: EncoderSpec) -> WavLM:
    """Build WavLM from a release checkpoint ``{'cfg', 'model'}``, on the CPU in float32."""
    what = _expected(spec)
    data = require_dict_keys(load_torch_file(path, what), ("cfg", "model"), path, what)
    cfg = read_fairseq_config(WavLMConfig, data["cfg"], path, what)
    if cfg.encoder_embed_dim != spec.dim:
        raise WeightFileError(
            f"'{path}' is not {what}: it has a {cfg.encoder_embed_dim}-dim WavLM but {spec.name} "
            f"needs {spec.dim}"
        )
    model = WavLM(cfg, name=spec.name)
    # Same parameter names as fairseq's HuBERT (WavLM's extra attention parameters pass through).
    load_module_state(model, map_fairseq_keys(float_state(data["model"])), path, what)
    return model.eval()
