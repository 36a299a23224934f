"""Builders of small random-weight Whisper and WavLM files in the official release formats.

The key layouts are written out here from the published model classes (openai/whisper
``model.py``, microsoft/unilm ``WavLM.py``), independently of ``svc.encoders``, so a naming
mistake in our modules shows up as a load failure.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

SMALL_WHISPER_DIMS = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 64, "n_audio_head": 4, "n_audio_layer": 2,
    "n_vocab": 120, "n_text_ctx": 16, "n_text_state": 64, "n_text_head": 4, "n_text_layer": 1,
}

SMALL_WAVLM_CFG = {
    # the Base+ recipe shrunk; training-only keys are there because real files carry them
    "extractor_mode": "default", "encoder_layers": 2, "encoder_embed_dim": 64,
    "encoder_ffn_embed_dim": 128, "encoder_attention_heads": 4, "activation_fn": "gelu",
    "layer_norm_first": False, "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
    "conv_bias": False, "feature_grad_mult": 0.1, "normalize": False, "dropout": 0.1,
    "attention_dropout": 0.1, "activation_dropout": 0.0, "encoder_layerdrop": 0.05,
    "dropout_input": 0.1, "dropout_features": 0.1, "mask_length": 10, "mask_prob": 0.8,
    "mask_selection": "static", "mask_other": 0.0, "no_mask_overlap": False, "mask_min_space": 1,
    "mask_channel_length": 10, "mask_channel_prob": 0.0, "mask_channel_selection": "static",
    "mask_channel_other": 0.0, "no_mask_channel_overlap": False, "mask_channel_min_space": 1,
    "conv_pos": 16, "conv_pos_groups": 4, "relative_position_embedding": True, "num_buckets": 320,
    "max_distance": 800, "gru_rel_pos": True,
}


class _Random:
    """Deterministic random tensors shaped like trained weights."""

    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)

    def matrix(self, *shape: int) -> torch.Tensor:
        fan_in = math.prod(shape[1:])
        return torch.randn(*shape, generator=self.gen) / math.sqrt(fan_in)

    def vector(self, n: int, scale: float = 0.1) -> torch.Tensor:
        return torch.randn(n, generator=self.gen) * scale

    def norm(self, prefix: str, n: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1.0 + self.vector(n), f"{prefix}.bias": self.vector(n)}

    def linear(self, prefix: str, n_out: int, n_in: int, bias: bool = True) -> dict[str, torch.Tensor]:
        out = {f"{prefix}.weight": self.matrix(n_out, n_in)}
        if bias:
            out[f"{prefix}.bias"] = self.vector(n_out)
        return out


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's positional sinusoids (what the official files store)."""
    increment = np.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


def _whisper_attention(rnd: _Random, prefix: str, n: int) -> dict[str, torch.Tensor]:
    return {**rnd.linear(f"{prefix}.query", n, n), **rnd.linear(f"{prefix}.key", n, n, bias=False),
            **rnd.linear(f"{prefix}.value", n, n), **rnd.linear(f"{prefix}.out", n, n)}


def _whisper_block(rnd: _Random, prefix: str, n: int, cross: bool) -> dict[str, torch.Tensor]:
    state = {**_whisper_attention(rnd, f"{prefix}.attn", n), **rnd.norm(f"{prefix}.attn_ln", n)}
    if cross:
        state |= {**_whisper_attention(rnd, f"{prefix}.cross_attn", n), **rnd.norm(f"{prefix}.cross_attn_ln", n)}
    return state | {**rnd.linear(f"{prefix}.mlp.0", 4 * n, n), **rnd.linear(f"{prefix}.mlp.2", n, 4 * n),
                    **rnd.norm(f"{prefix}.mlp_ln", n)}


def whisper_state(dims: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A full whisper ``model_state_dict`` (encoder and decoder) with random fp32 values."""
    rnd = _Random(seed)
    n, m = dims["n_audio_state"], dims["n_mels"]
    state = {"encoder.conv1.weight": rnd.matrix(n, m, 3), "encoder.conv1.bias": rnd.vector(n),
             "encoder.conv2.weight": rnd.matrix(n, n, 3), "encoder.conv2.bias": rnd.vector(n),
             "encoder.positional_embedding": sinusoids(dims["n_audio_ctx"], n)}
    for i in range(dims["n_audio_layer"]):
        state |= _whisper_block(rnd, f"encoder.blocks.{i}", n, cross=False)
    state |= rnd.norm("encoder.ln_post", n)
    t = dims["n_text_state"]
    state["decoder.token_embedding.weight"] = rnd.matrix(dims["n_vocab"], t)
    state["decoder.positional_embedding"] = rnd.matrix(dims["n_text_ctx"], t)
    for i in range(dims["n_text_layer"]):
        state |= _whisper_block(rnd, f"decoder.blocks.{i}", t, cross=True)
    return state | rnd.norm("decoder.ln", t)


def make_whisper_file(path: Path, dims: dict | None = None, seed: int = 0) -> Path:
    """Save a random whisper checkpoint like ``medium.pt``: fp16 tensors, decoder included."""
    dims = dict(SMALL_WHISPER_DIMS if dims is None else dims)
    state = {k: v.half() for k, v in whisper_state(dims, seed).items()}
    torch.save({"dims": dims, "model_state_dict": state}, path)
    return Path(path)


def parse_conv_spec(text: str) -> list[tuple[int, int, int]]:
    """The conv spec of a cfg (fixture-side; trusted literal written above)."""
    return eval(text, {"__builtins__": {}})  # noqa: S307 - our own constant string


def wavlm_state(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A WavLM ``model`` state dict (release key names) with random fp32 values."""
    rnd = _Random(seed)
    d, heads, ffn = cfg["encoder_embed_dim"], cfg["encoder_attention_heads"], cfg["encoder_ffn_embed_dim"]
    state = {"mask_emb": torch.rand(d, generator=rnd.gen)}
    in_dim = 1
    for i, (dim, k, _stride) in enumerate(parse_conv_spec(cfg["conv_feature_layers"])):
        # kaiming-like scale keeps activations O(1) through the stack
        state[f"feature_extractor.conv_layers.{i}.0.weight"] = rnd.matrix(dim, in_dim, k) * math.sqrt(2)
        if cfg["conv_bias"]:
            state[f"feature_extractor.conv_layers.{i}.0.bias"] = rnd.vector(dim)
        if cfg["extractor_mode"] == "default" and i == 0:
            state |= rnd.norm(f"feature_extractor.conv_layers.{i}.2", dim)
        elif cfg["extractor_mode"] == "layer_norm":
            state |= rnd.norm(f"feature_extractor.conv_layers.{i}.2.1", dim)
        in_dim = dim
    if in_dim != d:
        state |= rnd.linear("post_extract_proj", d, in_dim)
    groups, kernel = cfg["conv_pos_groups"], cfg["conv_pos"]
    state["encoder.pos_conv.0.bias"] = rnd.vector(d)
    state["encoder.pos_conv.0.weight_g"] = 1.0 + rnd.vector(kernel).view(1, 1, kernel)
    state["encoder.pos_conv.0.weight_v"] = rnd.matrix(d, d // groups, kernel)
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            state |= rnd.linear(f"{p}.self_attn.{proj}", d, d)
        if cfg["gru_rel_pos"]:
            state |= rnd.linear(f"{p}.self_attn.grep_linear", 8, d // heads)
            state[f"{p}.self_attn.grep_a"] = 1.0 + rnd.vector(heads).view(1, heads, 1, 1)
        if cfg["relative_position_embedding"] and i == 0:
            state[f"{p}.self_attn.relative_attention_bias.weight"] = rnd.vector(cfg["num_buckets"] * heads, 1.0).view(
                cfg["num_buckets"], heads)
        state |= rnd.norm(f"{p}.self_attn_layer_norm", d)
        state |= {**rnd.linear(f"{p}.fc1", ffn, d), **rnd.linear(f"{p}.fc2", d, ffn)}
        state |= rnd.norm(f"{p}.final_layer_norm", d)
    state |= rnd.norm("encoder.layer_norm", d)
    return state | rnd.norm("layer_norm", in_dim)


def make_wavlm_file(path: Path, cfg: dict | None = None, seed: int = 0) -> Path:
    """Save a random WavLM checkpoint like ``WavLM-Base+.pt``: ``{'cfg': dict, 'model': state}``, fp32."""
    cfg = dict(SMALL_WAVLM_CFG if cfg is None else cfg)
    torch.save({"cfg": cfg, "model": wavlm_state(cfg, seed)}, path)
    return Path(path)


def speech_like(seconds: float, seed: int = 0, sr: int = 16000) -> torch.Tensor:
    """A deterministic speech-like test signal ``(1, N)``: harmonic tone with vibrato plus noise."""
    n = int(round(seconds * sr))
    t = torch.arange(n, dtype=torch.float64) / sr
    f0 = 180 + 40 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    wav = sum(torch.sin(k * phase) / k for k in range(1, 6)) * 0.2 * (1 + 0.5 * torch.sin(2 * math.pi * 3 * t))
    noise = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.01
    return (wav + noise).float()[None]
