"""fairseq HuBERT-family checkpoints: ContentVec (vec768l12, vec256l9) and Chinese HuBERT Large.

The files are fairseq training checkpoints: ``{"args": Namespace | None, "cfg": {"model": {...}},
"model": state_dict, "task_state": {...}, ...}``.  We read the hyper-parameters from the stored
config, upcast the (usually float16) tensors and run our own ``HubertNet``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightFileError
from .base import ContentEncoder
from .hubert_net import HubertArch, HubertNet, weight_norm_to_weight
from .registry import EncoderSpec
from .safe_pickle import load_weights

DEFAULT_CONV_LAYERS = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
# Parameters used only in pre-training.
_UNUSED_KEYS = ("mask_emb", "label_embs_concat", "label_embs")


class HubertEncoder(ContentEncoder):
    """A ``HubertNet`` read out at one layer, optionally through ``final_proj``."""

    def __init__(self, net: HubertNet, name: str, output_layer: int | None, use_final_proj: bool):
        super().__init__()
        self.net = net
        self.name = name
        self.output_layer = output_layer
        self.use_final_proj = use_final_proj
        self.dim = net.arch.final_dim if use_final_proj else net.arch.embed_dim

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        """``(1, N)`` 16 kHz audio -> ``(1, dim, (N - 400) // 320 + 1)``."""
        x = self.net(wav16k, self.output_layer)
        if self.use_final_proj:
            x = self.net.final_proj(x)
        return x.transpose(1, 2)


def load_contentvec768l12(path: Path, spec: EncoderSpec) -> HubertEncoder:
    """ContentVec read out after layer 12 (768-dim)."""
    return HubertEncoder(load_fairseq_hubert(path, "a ContentVec checkpoint"), spec.name, 12, False)


def load_contentvec256l9(path: Path, spec: EncoderSpec) -> HubertEncoder:
    """ContentVec read out after layer 9, through ``final_proj`` (256-dim)."""
    net = load_fairseq_hubert(path, "a ContentVec checkpoint")
    if net.final_proj is None:
        raise WeightFileError(f"'{path}' has no 'final_proj' layer, so it is not a ContentVec checkpoint")
    return HubertEncoder(net, spec.name, 9, True)


def load_cnhubert_large(path: Path, spec: EncoderSpec) -> HubertEncoder:
    """Chinese HuBERT Large: the last layer (with the final layer norm of pre-LN models)."""
    return HubertEncoder(load_fairseq_hubert(path, "a fairseq HuBERT checkpoint"), spec.name, None, False)


def load_fairseq_hubert(path: Path, what: str) -> HubertNet:
    """Build a ``HubertNet`` (float32, eval mode) from the fairseq checkpoint at ``path``."""
    ckpt = load_weights(path, what)
    model_cfg, state = _fairseq_parts(ckpt, path, what)
    state = {_strip_module(k): v.float() for k, v in state.items() if isinstance(v, torch.Tensor)}
    arch = arch_from_fairseq(model_cfg, state, path)
    net = HubertNet(arch)
    load_state(net, map_fairseq_keys(state), path, what)
    return net.eval()


def _fairseq_parts(ckpt: Any, path: Path, what: str) -> tuple[dict, dict]:
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise WeightFileError(f"'{path}' is not {what}: {describe_file(ckpt)}")
    cfg = ckpt.get("cfg")
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"], ckpt["model"]
    args = ckpt.get("args")
    if args is not None and hasattr(args, "__dict__"):
        return vars(args), ckpt["model"]
    raise WeightFileError(f"'{path}' is not {what}: it has no stored model config ('cfg' or 'args')")


def describe_file(obj: Any) -> str:
    """A short guess at what a loaded file is, for wrong-kind errors."""
    if not isinstance(obj, dict):
        return f"it holds a {type(obj).__name__}, not a checkpoint dict"
    keys = set(obj)
    if {"dims", "model_state_dict"} <= keys:
        return "it looks like an OpenAI Whisper model file"
    if {"cfg", "model"} <= keys:
        return "it looks like a WavLM-style checkpoint"
    if {"config", "state_dict"} <= keys:
        return "it looks like a DPHuBERT checkpoint"
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return "it is a bare state dict"
    return f"it has the keys {sorted(map(str, keys))[:8]}"


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def parse_conv_layers(text: str) -> tuple[tuple[int, int, int], ...]:
    """Evaluate fairseq's ``conv_feature_layers`` string ("[(512,10,5)] + [(512,3,2)] * 4 ...").

    Only integer tuples, lists, ``+`` and ``*`` are allowed: it is data, never code.
    """
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(value(e) for e in node.elts)
        if isinstance(node, ast.List):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported element {ast.dump(node)[:60]}")

    layers = value(ast.parse(text, mode="eval").body)
    if not (isinstance(layers, list) and layers and all(
            isinstance(t, tuple) and len(t) == 3 and all(type(i) is int for i in t) for t in layers)):
        raise ValueError("not a list of (channels, kernel, stride) tuples")
    return tuple(layers)


def arch_from_fairseq(cfg: dict, state: dict[str, torch.Tensor], path: Path) -> HubertArch:
    """Hyper-parameters from a fairseq model config (defaults: fairseq's HubertConfig)."""
    try:
        conv_layers = parse_conv_layers(str(cfg.get("conv_feature_layers") or DEFAULT_CONV_LAYERS))
        layers = int(cfg.get("encoder_layers", 12))
        embed = int(cfg.get("encoder_embed_dim", 768))
        heads = int(cfg.get("encoder_attention_heads", 12))
        ffn = int(cfg.get("encoder_ffn_embed_dim", 3072))
        layer_norm_first = bool(cfg.get("layer_norm_first", False))
        mode = str(cfg.get("extractor_mode", "default"))
        activation = str(cfg.get("activation_fn", "gelu"))
        arch = HubertArch(
            conv_layers=conv_layers,
            conv_bias=bool(cfg.get("conv_bias", False)),
            extractor_mode=mode,
            embed_dim=embed,
            num_heads=(heads,) * layers,
            head_dim=embed // heads,
            ffn_dims=(ffn,) * layers,
            layer_norm_first=layer_norm_first,
            norm_before_layers=not layer_norm_first,  # fairseq's TransformerEncoder
            conv_pos=int(cfg.get("conv_pos", 128)),
            conv_pos_groups=int(cfg.get("conv_pos_groups", 16)),
            # The stored final_proj decides its size (final_dim x number of label sets).
            final_dim=state["final_proj.weight"].shape[0] if "final_proj.weight" in state else 0,
            activation=activation,
        )
    except (ValueError, TypeError) as exc:
        raise WeightFileError(f"'{path}' has an unreadable model config: {exc}") from None
    if mode not in ("default", "layer_norm") or activation not in ("gelu", "gelu_accurate", "gelu_fast", "relu"):
        raise WeightFileError(
            f"'{path}' uses extractor_mode={mode!r}, activation_fn={activation!r}, which this "
            "HuBERT implementation does not support"
        )
    if embed % heads:
        raise WeightFileError(f"'{path}' has encoder_embed_dim {embed} not divisible by {heads} heads")
    return arch


_FAIRSEQ_RENAMES = [
    (re.compile(r"^feature_extractor\.conv_layers\.(\d+)\.0\."), r"feature_extractor.conv_layers.\1.conv."),
    (re.compile(r"^feature_extractor\.conv_layers\.(\d+)\.2\.(1\.)?"), r"feature_extractor.conv_layers.\1.norm."),
]


def map_fairseq_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq HubertModel parameter names -> ``HubertNet`` names (pos_conv weight-norm folded)."""
    out = {}
    for key, value in state.items():
        if key in _UNUSED_KEYS:
            continue
        for pattern, repl in _FAIRSEQ_RENAMES:
            key = pattern.sub(repl, key)
        out[key] = value
    return fold_pos_conv(out, "encoder.pos_conv.0.", "encoder.pos_conv.")


def fold_pos_conv(state: dict[str, torch.Tensor], old: str, new: str) -> dict[str, torch.Tensor]:
    """Replace the weight-normed pos_conv entries under prefix ``old`` by a plain conv under ``new``."""
    state = dict(state)
    g = state.pop(old + "weight_g", None)
    v = state.pop(old + "weight_v", None)
    # torch.nn.utils.parametrizations.weight_norm stores g and v under these names.
    g = state.pop(old + "parametrizations.weight.original0", g)
    v = state.pop(old + "parametrizations.weight.original1", v)
    if g is not None and v is not None:
        state[new + "weight"] = weight_norm_to_weight(g, v, dim=2)
    if old + "weight" in state:
        state[new + "weight"] = state.pop(old + "weight")
    if old + "bias" in state:
        state[new + "bias"] = state.pop(old + "bias")
    return state


def load_state(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """``load_state_dict(strict=True)`` with missing/unexpected keys and shape errors as WeightFileError."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise WeightFileError(
            f"'{path}' does not match {what}: missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}"
        )
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
             for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise WeightFileError(f"'{path}' does not match {what}: shape mismatch in {', '.join(wrong[:3])}")
    net.load_state_dict(state, strict=True)
