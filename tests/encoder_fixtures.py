"""Builders of small random-weight encoder files in the official formats, for tests.

Each ``make_*_file`` writes a file laid out like the published one (fairseq checkpoint dict,
hubert-soft flat state dict, DPHuBERT ``{"config", "state_dict"}``) and returns the state dict
it stored.  Names are generated here from the original layouts, not from ``svc`` code, so a
mapping mistake in ``svc`` cannot cancel out.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import types
from pathlib import Path

import torch

SMALL_CONV = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2
SMALL_CONV_TEXT = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2"
FULL_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
FULL_CONV_TEXT = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"


class Dictionary:
    """Pickles as GLOBAL 'fairseq.data.dictionary Dictionary', like fairseq's label dictionary."""

    def __init__(self, n_units: int = 8) -> None:
        self.bos_word, self.unk_word, self.pad_word, self.eos_word = "<s>", "<unk>", "<pad>", "</s>"
        self.symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(n_units)]
        self.count = [1] * len(self.symbols)
        self.indices = {s: i for i, s in enumerate(self.symbols)}
        self.bos_index, self.pad_index, self.eos_index, self.unk_index = 0, 1, 2, 3
        self.nspecial = 4


Dictionary.__module__ = "fairseq.data.dictionary"
Dictionary.__qualname__ = "Dictionary"


@contextlib.contextmanager
def _fake_fairseq_modules():
    """Make ``fairseq.data.dictionary.Dictionary`` importable while pickling, then remove it."""
    names = ["fairseq", "fairseq.data", "fairseq.data.dictionary"]
    saved = {n: sys.modules.get(n) for n in names}
    for n in names:
        sys.modules[n] = types.ModuleType(n)
    sys.modules["fairseq.data.dictionary"].Dictionary = Dictionary
    try:
        yield
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def _rand(gen: torch.Generator, *shape: int, scale: float | None = None) -> torch.Tensor:
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    std = scale if scale is not None else 1.0 / max(fan_in, 1) ** 0.5
    return torch.randn(*shape, generator=gen) * std


def _norm(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return 1.0 + 0.1 * torch.randn(n, generator=gen), 0.1 * torch.randn(n, generator=gen)


def contentvec_model_cfg(small: bool = True, layers: int = 12, large: bool = False) -> dict:
    """The 44 keys of ContentVec's stored ``cfg['model']`` (small sizes unless ``small=False``)."""
    embed, ffn, heads = (64, 128, 4) if small else ((1024, 4096, 16) if large else (768, 3072, 12))
    return {
        "_name": "hubert", "label_rate": 50.0, "extractor_mode": "layer_norm" if large else "default",
        "encoder_layers": layers, "encoder_layers_1": 3, "encoder_embed_dim": embed,
        "encoder_ffn_embed_dim": ffn, "encoder_attention_heads": heads, "activation_fn": "gelu",
        "ctr_layers": [-6], "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0,
        "encoder_layerdrop": 0.05, "dropout_input": 0.1, "dropout_features": 0.1,
        "final_dim": 32 if small else 256, "untie_final_proj": True, "layer_norm_first": large,
        "conv_feature_layers": SMALL_CONV_TEXT if small else FULL_CONV_TEXT, "conv_bias": large,
        "logit_temp": 0.1, "logit_temp_ctr": 0.1, "target_glu": False, "feature_grad_mult": 0.1,
        "mask_length": 10, "mask_prob": 0.8, "mask_selection": "static", "mask_other": 0.0,
        "no_mask_overlap": False, "mask_min_space": 1, "mask_channel_length": 10,
        "mask_channel_prob": 0.0, "mask_channel_selection": "static", "mask_channel_other": 0.0,
        "no_mask_channel_overlap": False, "mask_channel_min_space": 1, "num_negatives": 100,
        "cross_sample_negatives": 0, "conv_pos": 128, "conv_pos_groups": 16,
        "latent_temp": [2.0, 0.5, 0.999995], "skip_masked": False, "skip_nomask": False,
    }


def fairseq_hubert_state(cfg: dict, seed: int = 0, n_labels: int = 12) -> dict[str, torch.Tensor]:
    """A random fairseq ``HubertModel`` state dict (float32) for model config ``cfg``."""
    gen = torch.Generator().manual_seed(seed)
    conv = {SMALL_CONV_TEXT: SMALL_CONV, FULL_CONV_TEXT: FULL_CONV}[cfg["conv_feature_layers"]]
    d, f, final = cfg["encoder_embed_dim"], cfg["encoder_ffn_embed_dim"], cfg["final_dim"]
    layer_norm_mode = cfg["extractor_mode"] == "layer_norm"
    sd: dict[str, torch.Tensor] = {"mask_emb": _rand(gen, d, scale=1.0),
                                   "label_embs_concat": _rand(gen, n_labels, final, scale=1.0)}
    in_ch = 1
    for i, (ch, k, _) in enumerate(conv):
        sd[f"feature_extractor.conv_layers.{i}.0.weight"] = _rand(gen, ch, in_ch, k)
        if cfg["conv_bias"]:
            sd[f"feature_extractor.conv_layers.{i}.0.bias"] = _rand(gen, ch, scale=0.1)
        norm = f"feature_extractor.conv_layers.{i}.2.1." if layer_norm_mode else "feature_extractor.conv_layers.0.2."
        if layer_norm_mode or i == 0:
            sd[norm + "weight"], sd[norm + "bias"] = _norm(gen, ch)
        in_ch = ch
    sd["post_extract_proj.weight"], sd["post_extract_proj.bias"] = _rand(gen, d, in_ch), _rand(gen, d, scale=0.1)
    k, groups = cfg["conv_pos"], cfg["conv_pos_groups"]
    sd["encoder.pos_conv.0.bias"] = _rand(gen, d, scale=0.1)
    sd["encoder.pos_conv.0.weight_g"] = 0.5 + torch.rand(1, 1, k, generator=gen)
    sd["encoder.pos_conv.0.weight_v"] = _rand(gen, d, d // groups, k)
    for i in range(cfg["encoder_layers"]):
        p = f"encoder.layers.{i}."
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
            sd[p + f"self_attn.{name}.weight"] = _rand(gen, d, d)
            sd[p + f"self_attn.{name}.bias"] = _rand(gen, d, scale=0.1)
        sd[p + "self_attn_layer_norm.weight"], sd[p + "self_attn_layer_norm.bias"] = _norm(gen, d)
        sd[p + "fc1.weight"], sd[p + "fc1.bias"] = _rand(gen, f, d), _rand(gen, f, scale=0.1)
        sd[p + "fc2.weight"], sd[p + "fc2.bias"] = _rand(gen, d, f), _rand(gen, d, scale=0.1)
        sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"] = _norm(gen, d)
    sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"] = _norm(gen, d)
    sd["layer_norm.weight"], sd["layer_norm.bias"] = _norm(gen, in_ch)
    sd["final_proj.weight"], sd["final_proj.bias"] = _rand(gen, final, d), _rand(gen, final, scale=0.1)
    return sd


def save_fairseq_checkpoint(path: str | Path, cfg_model: dict, model: dict[str, torch.Tensor], *,
                            use_args: bool = False, legacy_format: bool = False) -> None:
    """Write a fairseq training checkpoint, with a pickled Dictionary in ``task_state``."""
    ckpt = {
        "args": argparse.Namespace(**cfg_model) if use_args else None,
        "cfg": None if use_args else {"_name": None, "model": cfg_model,
                                      "task": {"_name": "hubert_pretraining", "data": "metadata"}},
        "model": model,
        "criterion": None,
        "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 1}],
        "task_state": {"dictionaries": [Dictionary()]},
        "extra_state": {"metrics": {}, "previous_training_time": 1.0},
        "last_optimizer_state": None,
    }
    with _fake_fairseq_modules():
        torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy_format)


def make_contentvec_file(path: str | Path, small: bool = True, seed: int = 0, *, fp16: bool = True,
                         legacy_format: bool = False, use_args: bool = False,
                         layers: int = 12) -> dict[str, torch.Tensor]:
    """A ContentVec-style ``checkpoint_best_legacy_500.pt``; returns the float32 state dict."""
    cfg = contentvec_model_cfg(small, layers=layers)
    sd = fairseq_hubert_state(cfg, seed)
    stored = {k: v.half() for k, v in sd.items()} if fp16 else sd
    save_fairseq_checkpoint(path, cfg, stored, use_args=use_args, legacy_format=legacy_format)
    # What a loader sees after upcasting.
    return {k: v.float() for k, v in stored.items()}


def make_cnhubert_file(path: str | Path, seed: int = 1, layers: int = 3) -> dict[str, torch.Tensor]:
    """A HuBERT-Large-shaped (layer_norm extractor, conv bias, pre-LN) fairseq checkpoint, small."""
    cfg = contentvec_model_cfg(True, layers=layers)
    cfg.update(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)
    sd = fairseq_hubert_state(cfg, seed)
    save_fairseq_checkpoint(path, cfg, sd)
    return sd


def hubert_soft_state(seed: int = 2, dim: int = 128, ffn: int = 256, layers: int = 2,
                      ch: int = 32, units: int = 16, n_labels: int = 10) -> dict[str, torch.Tensor]:
    """A random bshall HubertSoft state dict (keys as in hubert-soft-0d54a1f4.pt)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {"masked_spec_embed": torch.rand(dim, generator=gen)}
    in_ch = 1
    for i, (c, k, _) in enumerate([(ch, 10, 5)] + [(ch, 3, 2)] * 4 + [(ch, 2, 2)] * 2):
        sd[f"feature_extractor.conv{i}.weight"] = _rand(gen, c, in_ch, k)
        in_ch = c
    sd["feature_extractor.norm0.weight"], sd["feature_extractor.norm0.bias"] = _norm(gen, ch)
    sd["feature_projection.norm.weight"], sd["feature_projection.norm.bias"] = _norm(gen, ch)
    sd["feature_projection.projection.weight"] = _rand(gen, dim, ch)
    sd["feature_projection.projection.bias"] = _rand(gen, dim, scale=0.1)
    sd["positional_embedding.conv.bias"] = _rand(gen, dim, scale=0.1)
    sd["positional_embedding.conv.weight_g"] = 0.5 + torch.rand(1, 1, 128, generator=gen)
    sd["positional_embedding.conv.weight_v"] = _rand(gen, dim, dim // 16, 128)
    sd["norm.weight"], sd["norm.bias"] = _norm(gen, dim)
    for i in range(layers):
        p = f"encoder.layers.{i}."
        sd[p + "self_attn.in_proj_weight"] = _rand(gen, 3 * dim, dim)
        sd[p + "self_attn.in_proj_bias"] = _rand(gen, 3 * dim, scale=0.1)
        sd[p + "self_attn.out_proj.weight"] = _rand(gen, dim, dim)
        sd[p + "self_attn.out_proj.bias"] = _rand(gen, dim, scale=0.1)
        sd[p + "linear1.weight"], sd[p + "linear1.bias"] = _rand(gen, ffn, dim), _rand(gen, ffn, scale=0.1)
        sd[p + "linear2.weight"], sd[p + "linear2.bias"] = _rand(gen, dim, ffn), _rand(gen, dim, scale=0.1)
        sd[p + "norm1.weight"], sd[p + "norm1.bias"] = _norm(gen, dim)
        sd[p + "norm2.weight"], sd[p + "norm2.bias"] = _norm(gen, dim)
    sd["proj.weight"], sd["proj.bias"] = _rand(gen, units, dim), _rand(gen, units, scale=0.1)
    sd["label_embedding.weight"] = _rand(gen, n_labels, units, scale=1.0)
    return sd


def make_hubert_soft_file(path: str | Path, seed: int = 2, module_prefix: bool = True) -> dict[str, torch.Tensor]:
    """A hubert-soft-0d54a1f4.pt-style flat state dict (DDP ``module.`` prefix by default)."""
    sd = hubert_soft_state(seed)
    stored = {("module." + k if module_prefix else k): v for k, v in sd.items()}
    torch.save(stored, path)
    return sd


def dphubert_config() -> dict:
    """A small pruned DPHuBERT ``config`` (wav2vec2_model kwargs): uneven conv channels, one layer
    without attention, one without feed-forward, post-LN like DPHuBERT-sp0.75."""
    return {
        "extractor_mode": "group_norm",
        "extractor_conv_layer_config": [[24, 10, 5], [32, 3, 2], [20, 3, 2], [32, 3, 2], [28, 3, 2],
                                        [32, 2, 2], [30, 2, 2]],
        "extractor_conv_bias": False, "encoder_embed_dim": 64, "encoder_projection_dropout": 0.1,
        "encoder_pos_conv_kernel": 128, "encoder_pos_conv_groups": 16, "encoder_num_layers": 3,
        "encoder_use_attention": [True, False, True], "encoder_use_feed_forward": [True, True, False],
        "encoder_num_heads": [3, 0, 1], "encoder_head_dim": 16, "encoder_attention_dropout": 0.1,
        "encoder_ff_interm_features": [96, 40, 0], "encoder_ff_interm_dropout": 0.0,
        "encoder_dropout": 0.1, "encoder_layer_norm_first": False, "encoder_layer_drop": 0.05,
        "aux_num_out": None, "normalize_waveform": False,
        "extractor_prune_conv_channels": False, "encoder_prune_attention_heads": False,
        "encoder_prune_attention_layer": False, "encoder_prune_feed_forward_intermediate": False,
        "encoder_prune_feed_forward_layer": False,
    }


def dphubert_state(config: dict, seed: int = 3) -> dict[str, torch.Tensor]:
    """A random state dict in DPHuBERT's torchaudio-style names for ``config``."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    in_ch = 1
    for i, (ch, k, _) in enumerate(config["extractor_conv_layer_config"]):
        sd[f"feature_extractor.conv_layers.{i}.conv.weight"] = _rand(gen, ch, in_ch, k)
        if i == 0:
            w, b = _norm(gen, ch)
            sd["feature_extractor.conv_layers.0.layer_norm.weight"] = w
            sd["feature_extractor.conv_layers.0.layer_norm.bias"] = b
        in_ch = ch
    d, hd = config["encoder_embed_dim"], config["encoder_head_dim"]
    sd["feature_extractor.dummy_weight"] = 1.0 + 0.2 * torch.randn(in_ch, generator=gen)
    sd["encoder.feature_projection.layer_norm.weight"], sd["encoder.feature_projection.layer_norm.bias"] = \
        _norm(gen, in_ch)
    sd["encoder.feature_projection.projection.weight"] = _rand(gen, d, in_ch)
    sd["encoder.feature_projection.projection.bias"] = _rand(gen, d, scale=0.1)
    p = "encoder.transformer.pos_conv_embed.conv."
    sd[p + "bias"] = _rand(gen, d, scale=0.1)
    sd[p + "weight_g"] = 0.5 + torch.rand(1, 1, config["encoder_pos_conv_kernel"], generator=gen)
    sd[p + "weight_v"] = _rand(gen, d, d // config["encoder_pos_conv_groups"], config["encoder_pos_conv_kernel"])
    sd["encoder.transformer.layer_norm.weight"], sd["encoder.transformer.layer_norm.bias"] = _norm(gen, d)
    for i in range(config["encoder_num_layers"]):
        p = f"encoder.transformer.layers.{i}."
        if config["encoder_use_attention"][i]:
            width = config["encoder_num_heads"][i] * hd
            for name in ("k_proj", "v_proj", "q_proj"):
                sd[p + f"attention.{name}.weight"] = _rand(gen, width, d)
                sd[p + f"attention.{name}.bias"] = _rand(gen, width, scale=0.1)
            sd[p + "attention.out_proj.weight"] = _rand(gen, d, width)
            sd[p + "attention.out_proj.bias"] = _rand(gen, d, scale=0.1)
        sd[p + "layer_norm.weight"], sd[p + "layer_norm.bias"] = _norm(gen, d)
        if config["encoder_use_feed_forward"][i]:
            f = config["encoder_ff_interm_features"][i]
            sd[p + "feed_forward.intermediate_dense.weight"] = _rand(gen, f, d)
            sd[p + "feed_forward.intermediate_dense.bias"] = _rand(gen, f, scale=0.1)
            sd[p + "feed_forward.output_dense.weight"] = _rand(gen, d, f)
            sd[p + "feed_forward.output_dense.bias"] = _rand(gen, d, scale=0.1)
        sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"] = _norm(gen, d)
    return sd


def make_dphubert_file(path: str | Path, seed: int = 3) -> dict[str, torch.Tensor]:
    """A DPHuBERT-sp0.75.pth-style ``{"config", "state_dict"}`` file, small and pruned."""
    sd = dphubert_state(dphubert_config(), seed)
    torch.save({"config": dphubert_config(), "state_dict": sd}, path)
    return sd
