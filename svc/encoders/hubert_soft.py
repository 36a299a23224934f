"""HuBERT-Soft (bshall/hubert v0.1, ``hubert-soft-0d54a1f4.pt``): soft speech units, 256-dim.

The file is a flat state dict (keys possibly prefixed ``module.``) of bshall's ``HubertSoft``:
a HuBERT Base network built from ``nn.TransformerEncoderLayer`` (post-LN) plus a 256-dim
projection.  We map it onto ``HubertNet``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import WeightFileError
from ..weights import float_state, load_module_state, load_torch_file
from .base import ContentEncoder
from .files import describe_file
from .hubert_net import HubertArch, HubertNet, map_state_keys
from .registry import EncoderSpec

WHAT = "a HuBERT-Soft state dict (hubert-soft-0d54a1f4.pt)"
PAD = (400 - 320) // 2  # bshall's units() pads this many samples on each side
HEAD_DIM = 64  # bshall's model: 768 dims, 12 heads
_UNUSED_KEYS = ("masked_spec_embed", "label_embedding.weight")
_RENAMES = [
    (r"^feature_extractor\.conv(\d+)\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.norm0\.", "feature_extractor.conv_layers.0.norm."),
    (r"^feature_projection\.norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^norm\.", "encoder.layer_norm."),
    (r"\.linear1\.", ".fc1."),
    (r"\.linear2\.", ".fc2."),
    (r"\.norm1\.", ".self_attn_layer_norm."),
    (r"\.norm2\.", ".final_layer_norm."),
    (r"^proj\.", "final_proj."),
]


class HubertSoftEncoder(ContentEncoder):
    """Soft units: ``final_proj`` of the last layer, input padded by 40 samples per side."""

    def __init__(self, net: HubertNet, name: str):
        super().__init__()
        self.net = net
        self.name = name
        self.dim = net.arch.final_dim

    def bfloat16_parts(self) -> list[torch.nn.Module]:
        return self.net.bfloat16_parts()

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        """``(1, N)`` 16 kHz audio -> ``(1, dim, N // 320)``."""
        x = self.net(F.pad(wav16k, (PAD, PAD)))
        return self.net.final_proj(x).transpose(1, 2)


def load_hubert_soft(path: Path, spec: EncoderSpec) -> HubertSoftEncoder:
    """Load bshall's v0.1 HuBERT-Soft state dict at ``path``."""
    state = load_torch_file(path, WHAT)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        hint = ("it is a hubert-soft v0.2 checkpoint; so-vits-svc uses the v0.1 file"
                if isinstance(state, dict) and "hubert" in state else describe_file(state))
        raise WeightFileError(f"'{path}' is not {WHAT}: {hint}")
    state = float_state(state)
    if "proj.weight" not in state or "feature_extractor.conv0.weight" not in state:
        raise WeightFileError(f"'{path}' is not {WHAT}: it lacks 'proj.weight' / 'feature_extractor.conv0.weight'")
    net = HubertNet(_arch(state, path))
    load_module_state(net, map_soft_keys(state), path, WHAT)
    return HubertSoftEncoder(net.eval(), spec.name)


def _arch(state: dict[str, torch.Tensor], path: Path) -> HubertArch:
    n_conv = sum(1 for k in state if re.fullmatch(r"feature_extractor\.conv\d+\.weight", k))
    conv = tuple(
        (state[f"feature_extractor.conv{i}.weight"].shape[0], state[f"feature_extractor.conv{i}.weight"].shape[2],
         5 if i == 0 else 2)
        for i in range(n_conv)
    )
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    dim = state["feature_projection.projection.weight"].shape[0]
    if not layers or dim % HEAD_DIM:
        raise WeightFileError(f"'{path}' is not {WHAT}: unexpected encoder layout")
    ffn = state["encoder.layers.0.linear1.weight"].shape[0]
    return HubertArch(
        conv_layers=conv, conv_bias=False, extractor_mode="default", embed_dim=dim,
        num_heads=(dim // HEAD_DIM,) * len(layers), head_dim=HEAD_DIM, ffn_dims=(ffn,) * len(layers),
        layer_norm_first=False, norm_before_layers=True, final_dim=state["proj.weight"].shape[0],
    )


def map_soft_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """bshall HubertSoft parameter names -> ``HubertNet`` names."""
    split = {}
    for key, value in state.items():
        if key.endswith(("self_attn.in_proj_weight", "self_attn.in_proj_bias")):
            # nn.MultiheadAttention packs q, k and v into one projection.
            prefix, kind = key.rsplit(".in_proj_", 1)
            for name, part in zip(("q", "k", "v"), value.chunk(3), strict=True):
                split[f"{prefix}.{name}_proj.{kind}"] = part
        else:
            split[key] = value
    return map_state_keys(split, _RENAMES, "positional_embedding.conv.", drop=_UNUSED_KEYS)
