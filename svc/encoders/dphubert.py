"""DPHuBERT (pyf98/DPHuBERT, ``DPHuBERT-sp0.75.pth``): a structurally pruned HuBERT Base.

The file is ``{"config": kwargs of torchaudio-style wav2vec2_model(...), "state_dict": ...}``
with per-layer head counts and feed-forward sizes left by pruning.  Output: the last layer,
768-dim.  WavLM-type DPHuBERT files (config with ``encoder_remaining_heads``) are not supported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import WeightFileError
from ..weights import float_state, load_module_state, load_torch_file
from .files import require_dict_keys
from .hubert import HubertEncoder
from .hubert_net import HubertArch, HubertNet, map_state_keys
from .registry import EncoderSpec

WHAT = "a DPHuBERT checkpoint (DPHuBERT-sp0.75.pth)"
_PRUNE_FLAGS = ("extractor_prune_conv_channels", "encoder_prune_attention_heads", "encoder_prune_attention_layer",
                "encoder_prune_feed_forward_intermediate", "encoder_prune_feed_forward_layer")
_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.norm."),
    (r"^feature_extractor\.dummy_weight$", "feature_scale"),
    (r"^encoder\.feature_projection\.layer_norm\.", "layer_norm."),
    (r"^encoder\.feature_projection\.projection\.", "post_extract_proj."),
    (r"^encoder\.transformer\.layer_norm\.", "encoder.layer_norm."),
    (r"^encoder\.transformer\.layers\.", "encoder.layers."),
    (r"\.attention\.", ".self_attn."),
    (r"(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm."),
    (r"\.feed_forward\.intermediate_dense\.", ".fc1."),
    (r"\.feed_forward\.output_dense\.", ".fc2."),
    (r"^aux\.", "final_proj."),
]


def load_dphubert(path: Path, spec: EncoderSpec) -> HubertEncoder:
    """Load a HuBERT-type DPHuBERT checkpoint; output is the last layer."""
    ckpt = require_dict_keys(load_torch_file(path, WHAT), ("config", "state_dict"), path, WHAT)
    config = ckpt["config"]
    if "encoder_remaining_heads" in config:
        raise WeightFileError(
            f"'{path}' is a WavLM-type DPHuBERT model, which is not supported; use DPHuBERT-sp0.75.pth (HuBERT-type)"
        )
    arch = arch_from_config(config, path)
    state = {k: v for k, v in float_state(ckpt["state_dict"]).items() if "hard_concrete" not in k}
    # The reference loads with strict=False, so a file without this scale runs with ones.
    state.setdefault("feature_extractor.dummy_weight", torch.ones(arch.conv_layers[-1][0]))
    net = HubertNet(arch)
    load_module_state(net, map_dphubert_keys(state), path, WHAT)
    return HubertEncoder(net.eval(), spec.name, None, arch.final_dim > 0)


def _per_layer(value: Any, n: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * n


def arch_from_config(config: dict, path: Path) -> HubertArch:
    """``HubertArch`` from the ``wav2vec2_model`` keyword arguments stored in the file."""
    if any(config.get(flag) for flag in _PRUNE_FLAGS):
        raise WeightFileError(f"'{path}' is a DPHuBERT model still being pruned (prune flags set); use the final model")
    try:
        n = int(config["encoder_num_layers"])
        conv = config.get("extractor_conv_layer_config") or [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
        use_attention = _per_layer(config.get("encoder_use_attention", True), n)
        use_ffn = _per_layer(config.get("encoder_use_feed_forward", True), n)
        heads = _per_layer(config["encoder_num_heads"], n)
        ffn = _per_layer(config["encoder_ff_interm_features"], n)
        mode = {"group_norm": "default", "layer_norm": "layer_norm"}[config["extractor_mode"]]
        layer_norm_first = bool(config["encoder_layer_norm_first"])
        return HubertArch(
            conv_layers=tuple((int(c), int(k), int(s)) for c, k, s in conv),
            conv_bias=bool(config["extractor_conv_bias"]),
            extractor_mode=mode,
            embed_dim=int(config["encoder_embed_dim"]),
            num_heads=tuple(int(h) if a else 0 for h, a in zip(heads, use_attention, strict=True)),
            head_dim=int(config["encoder_head_dim"]),
            ffn_dims=tuple(int(f) if u else 0 for f, u in zip(ffn, use_ffn, strict=True)),
            layer_norm_first=layer_norm_first,
            norm_before_layers=not layer_norm_first,
            conv_pos=int(config["encoder_pos_conv_kernel"]),
            conv_pos_groups=int(config["encoder_pos_conv_groups"]),
            final_dim=int(config.get("aux_num_out") or 0),
            feature_scale=True,
            normalize_waveform=bool(config.get("normalize_waveform", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightFileError(f"'{path}' is not {WHAT}: its config is unusable ({type(exc).__name__}: {exc})") from None


def map_dphubert_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchaudio-style wav2vec2 parameter names -> ``HubertNet`` names."""
    return map_state_keys(state, _RENAMES, "encoder.transformer.pos_conv_embed.conv.")
