"""WavLM (microsoft/unilm) as a content encoder (wavlmbase+): last transformer layer, 50 Hz.

The weight file is the release format ``{'cfg': dict, 'model': state_dict}``.  Every
hyper-parameter comes from ``cfg``; the fallbacks are those of the release's ``WavLMConfig``
(note they differ from WavLM Base+: no relative position bias, max_distance 1280, no gating).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WeightFileError
from .base import ContentEncoder
from .plain_file import load_float_state, load_plain_file, require_keys
from .registry import EncoderSpec


@dataclass(frozen=True)
class WavLMConfig:
    """The model hyper-parameters of a WavLM ``cfg`` (training-only keys are ignored)."""

    extractor_mode: str = "default"
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    conv_feature_layers: str = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
    conv_bias: bool = False
    normalize: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False

    @classmethod
    def from_cfg(cls, cfg: dict) -> WavLMConfig:
        """Take the known keys of ``cfg`` over the defaults."""
        return cls(**{f.name: cfg[f.name] for f in fields(cls) if f.name in cfg})

    def conv_layers(self) -> list[tuple[int, int, int]]:
        """``conv_feature_layers`` as ``[(channels, kernel, stride), ...]``."""
        return parse_conv_layers(self.conv_feature_layers)


def parse_conv_layers(text: str) -> list[tuple[int, int, int]]:
    """Evaluate a fairseq conv spec such as ``"[(512,10,5)] + [(512,3,2)] * 4"`` without ``eval``.

    Only list/tuple literals of integers, ``+`` and ``*`` are accepted.
    """

    def value(node: ast.AST):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported element {ast.dump(node)[:60]}")

    layers = value(ast.parse(text, mode="eval").body)
    if not isinstance(layers, list) or not all(
        isinstance(t, tuple) and len(t) == 3 and all(isinstance(i, int) for i in t) for t in layers
    ):
        raise ValueError("not a list of (dim, kernel, stride) tuples")
    return layers


class _TransposeLast(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(-2, -1)


def _conv_block(n_in: int, n_out: int, kernel: int, stride: int, norm: str, bias: bool) -> nn.Sequential:
    """conv -> (norm) -> GELU, indexed like fairseq (index 1 was dropout)."""
    conv = nn.Conv1d(n_in, n_out, kernel, stride=stride, bias=bias)
    if norm == "group":
        # one group per channel: normalises each channel over time
        return nn.Sequential(conv, nn.Identity(), nn.GroupNorm(n_out, n_out), nn.GELU())
    if norm == "layer":
        normaliser = nn.Sequential(_TransposeLast(), nn.LayerNorm(n_out), _TransposeLast())
        return nn.Sequential(conv, nn.Identity(), normaliser, nn.GELU())
    return nn.Sequential(conv, nn.Identity(), nn.GELU())


class FeatureExtractor(nn.Module):
    """The wav2vec 2.0 conv stack: ``(B, N)`` -> ``(B, C, frames)`` (stride 320 for the usual spec)."""

    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        if cfg.extractor_mode not in ("default", "layer_norm"):
            raise ValueError(f"unknown extractor_mode {cfg.extractor_mode!r}")
        layers, in_dim = [], 1
        for i, (dim, kernel, stride) in enumerate(cfg.conv_layers()):
            if cfg.extractor_mode == "layer_norm":
                norm = "layer"
            else:
                norm = "group" if i == 0 else "none"
            layers.append(_conv_block(in_dim, dim, kernel, stride, norm, cfg.conv_bias))
            in_dim = dim
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wav: Tensor) -> Tensor:
        x = wav[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class WeightNormConv1d(nn.Module):
    """Grouped conv whose weight is ``weight_v`` rescaled to norm ``weight_g`` per kernel tap.

    Stored as ``weight_g``/``weight_v`` like ``torch.nn.utils.weight_norm(dim=2)`` writes them.
    """

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups = groups
        self.padding = kernel // 2
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.zeros(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        v = self.weight_v
        norm = v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
        return F.conv1d(x, v * (self.weight_g / norm), self.bias, padding=self.padding, groups=self.groups)


class SamePad(nn.Module):
    """Drop the extra last frame an even-kernel "same" convolution produces."""

    def __init__(self, kernel: int):
        super().__init__()
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        return x[..., : x.shape[-1] - self.trim]


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


class WavLMAttention(nn.Module):
    """Self-attention with WavLM's gated relative position bias."""

    def __init__(self, cfg: WavLMConfig, has_relative_bias: bool):
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.heads = heads
        self.head_dim = dim // heads
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
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
        batch, length, dim = x.shape
        if self.relative_attention_bias is not None and bias is None:
            bias = self.position_bias(length)
        heads = self.heads
        q = self.q_proj(x).view(batch, length, heads, -1).transpose(1, 2) * self.head_dim**-0.5
        k = self.k_proj(x).view(batch, length, heads, -1).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, heads, -1).transpose(1, 2)
        scores = q @ k.transpose(-1, -2)
        if bias is not None:
            layer_bias = bias[None]
            if self.gru_rel_pos:
                # the gate reads the layer input (before projection), split into heads
                per_head = x.view(batch, length, heads, -1).transpose(1, 2)
                gates = torch.sigmoid(self.grep_linear(per_head).view(batch, heads, length, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                layer_bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * layer_bias
            scores = scores + layer_bias
        out = F.softmax(scores, dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim)), bias


class EncoderLayer(nn.Module):
    """Transformer layer, post-LN unless ``layer_norm_first``."""

    def __init__(self, cfg: WavLMConfig, has_relative_bias: bool):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.layer_norm_first = cfg.layer_norm_first
        self.self_attn = WavLMAttention(cfg, has_relative_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.activation = _ACTIVATIONS[cfg.activation_fn]

    def forward(self, x: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.layer_norm_first:
            attn, bias = self.self_attn(self.self_attn_layer_norm(x), bias)
            x = x + attn
            return x + self.fc2(self.activation(self.fc1(self.final_layer_norm(x)))), bias
        attn, bias = self.self_attn(x, bias)
        x = self.self_attn_layer_norm(x + attn)
        return self.final_layer_norm(x + self.fc2(self.activation(self.fc1(x)))), bias


_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


class TransformerEncoder(nn.Module):
    """Positional conv, then the layers; the first layer's position bias is shared by all."""

    def __init__(self, cfg: WavLMConfig):
        super().__init__()
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups),
            SamePad(cfg.conv_pos),
            nn.GELU(),
        )
        self.layers = nn.ModuleList(
            EncoderLayer(cfg, has_relative_bias=cfg.relative_position_embedding and i == 0)
            for i in range(cfg.encoder_layers)
        )
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.layer_norm_first = cfg.layer_norm_first

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, C)`` -> last layer ``(B, T, C)``."""
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        bias = None
        for layer in self.layers:
            x, bias = layer(x, bias)
        return self.layer_norm(x) if self.layer_norm_first else x


class WavLM(ContentEncoder):
    """WavLM last-layer features: 16 kHz wav ``(1, N)`` -> ``(1, dim, frames)``."""

    def __init__(self, cfg: WavLMConfig, name: str = "wavlmbase+"):
        super().__init__()
        self.name = name
        self.dim = cfg.encoder_embed_dim
        self.cfg = cfg
        conv_dim = cfg.conv_layers()[-1][0]
        self.feature_extractor = FeatureExtractor(cfg)
        self.layer_norm = nn.LayerNorm(conv_dim)
        self.post_extract_proj = (
            nn.Linear(conv_dim, cfg.encoder_embed_dim) if conv_dim != cfg.encoder_embed_dim else None
        )
        # used only for masked pre-training; kept so the file loads strictly
        self.mask_emb = nn.Parameter(torch.zeros(cfg.encoder_embed_dim))
        self.encoder = TransformerEncoder(cfg)

    @property
    def receptive_field(self) -> int:
        """Samples that make one output frame (400 for the usual conv spec)."""
        field = 1
        for _, kernel, stride in reversed(self.cfg.conv_layers()):
            field = (field - 1) * stride + kernel
        return field

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


def build_config(raw: object, path: Path, expected: str) -> WavLMConfig:
    """Validate ``cfg`` and turn it into a ``WavLMConfig``."""
    if not isinstance(raw, dict):
        raise WeightFileError(f"{path} has no 'cfg' dict; expected {expected}.")
    try:
        cfg = WavLMConfig.from_cfg(raw)
        cfg.conv_layers()
    except (TypeError, ValueError, SyntaxError) as exc:
        raise WeightFileError(f"{path} has an unusable 'cfg' ({exc}); expected {expected}.") from None
    if cfg.activation_fn not in _ACTIVATIONS or cfg.extractor_mode not in ("default", "layer_norm"):
        raise WeightFileError(
            f"{path} uses activation {cfg.activation_fn!r} / extractor {cfg.extractor_mode!r}, "
            f"which this WavLM does not support; expected {expected}."
        )
    if cfg.encoder_embed_dim % cfg.encoder_attention_heads:
        raise WeightFileError(f"{path} has embed dim not divisible by heads; expected {expected}.")
    return cfg


def load_wavlm(path: Path, spec: EncoderSpec) -> WavLM:
    """Build WavLM from a release checkpoint ``{'cfg', 'model'}``, on the CPU in float32."""
    expected = _expected(spec)
    data = load_plain_file(path, expected)
    require_keys(data, ("cfg", "model"), path, expected)
    cfg = build_config(data["cfg"], path, expected)
    if cfg.encoder_embed_dim != spec.dim:
        raise WeightFileError(
            f"{path} has a {cfg.encoder_embed_dim}-dim WavLM but {spec.name} needs {spec.dim}; "
            f"expected {expected}."
        )
    if not isinstance(data["model"], dict):
        raise WeightFileError(f"{path} has no state dict under 'model'; expected {expected}.")
    model = WavLM(cfg, name=spec.name)
    load_float_state(model, data["model"], path, expected)
    return model.eval()

