"""fairseq HuBERT-family checkpoints: ContentVec (vec768l12, vec256l9) and Chinese HuBERT Large.

The files are fairseq training checkpoints: ``{"args": Namespace | None, "cfg": {"model": {...}},
"model": state_dict, "task_state": {...}, ...}``.  We read the hyper-parameters from the stored
config, upcast the (usually float16) tensors and run our own ``HubertNet``.

Besides tensors and plain containers the files pickle a ``fairseq.data.dictionary.Dictionary``
(the label list, unused for inference) and, in older files, ``argparse.Namespace``
hyper-parameters.  We admit exactly those, as inert data; any other class is refused.
omegaconf containers are not admitted: fairseq stores ``cfg`` via ``OmegaConf.to_container``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..errors import WeightFileError
from ..weights import float_state, load_module_state, load_torch_file
from .base import ContentEncoder
from .files import require_dict_keys
from .hubert_net import (
    ACTIVATIONS,
    DEFAULT_CONV_LAYERS,
    EXTRACTOR_MODES,
    HubertArch,
    HubertNet,
    map_state_keys,
    parse_conv_layers,
)
from .registry import EncoderSpec

FairseqConfigT = TypeVar("FairseqConfigT", bound="FairseqConfig")
# Parameters used only in pre-training.
_UNUSED_KEYS = ("mask_emb", "label_embs_concat", "label_embs")


class FairseqDictionary:
    """Inert stand-in for ``fairseq.data.dictionary.Dictionary``: keeps its pickled attributes."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.state = dict(state)

    @property
    def symbols(self) -> list[str]:
        return list(self.state.get("symbols", []))


# The classes a fairseq checkpoint may pickle besides plain data, with their pickled names.
FAIRSEQ_GLOBALS = (
    (FairseqDictionary, "fairseq.data.dictionary.Dictionary"),
    (argparse.Namespace, "argparse.Namespace"),
)


class HubertEncoder(ContentEncoder):
    """A ``HubertNet`` read out at one layer, optionally through ``final_proj``."""

    def __init__(self, net: HubertNet, name: str, output_layer: int | None, use_final_proj: bool):
        super().__init__()
        self.net = net
        self.name = name
        self.output_layer = output_layer
        self.use_final_proj = use_final_proj
        self.dim = net.arch.final_dim if use_final_proj else net.arch.embed_dim

    def bfloat16_parts(self) -> list[torch.nn.Module]:
        return self.net.bfloat16_parts()

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
        raise WeightFileError(f"'{path}' is not a ContentVec checkpoint: it has no 'final_proj' layer")
    return HubertEncoder(net, spec.name, 9, True)


def load_cnhubert_large(path: Path, spec: EncoderSpec) -> HubertEncoder:
    """Chinese HuBERT Large: the last layer (with the final layer norm of pre-LN models)."""
    return HubertEncoder(load_fairseq_hubert(path, "a fairseq HuBERT checkpoint"), spec.name, None, False)


def load_fairseq_hubert(path: Path, what: str) -> HubertNet:
    """Build a ``HubertNet`` (float32, eval mode) from the fairseq checkpoint at ``path``."""
    ckpt = require_dict_keys(load_torch_file(path, what, FAIRSEQ_GLOBALS), ("model",), path, what)
    model_cfg = _model_config(ckpt, path, what)
    state = float_state(ckpt["model"])
    arch = arch_from_fairseq(read_fairseq_config(FairseqConfig, model_cfg, path, what), state)
    with torch.device("meta"):  # the file's tensors become the weights: no init, no second copy
        net = HubertNet(arch)
    load_module_state(net, map_fairseq_keys(state), path, what, assign=True)
    return net.eval()


def _model_config(ckpt: dict, path: Path, what: str) -> dict:
    cfg = ckpt.get("cfg")
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"]
    args = ckpt.get("args")
    if args is not None and hasattr(args, "__dict__"):
        return vars(args)
    raise WeightFileError(f"'{path}' is not {what}: it has no stored model config ('cfg' or 'args')")


@dataclass(frozen=True)
class FairseqConfig:
    """Network hyper-parameters of a fairseq HuBERT / wav2vec 2.0 / WavLM model config.

    Defaults are fairseq's ``HubertConfig``; training-only keys are ignored.
    """

    extractor_mode: str = "default"
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    conv_feature_layers: str = DEFAULT_CONV_LAYERS
    conv_bias: bool = False
    normalize: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16

    @classmethod
    def from_cfg(cls: type[FairseqConfigT], cfg: Mapping[str, Any]) -> FairseqConfigT:
        """The known keys of ``cfg``, as their field's type, over the defaults.

        Raises ``ValueError`` / ``TypeError`` / ``SyntaxError`` for values that do not convert
        or that this implementation does not support.
        """
        config = cls(**{f.name: type(f.default)(cfg[f.name]) for f in fields(cls)
                        if cfg.get(f.name) is not None})
        config.conv_layers()
        if config.extractor_mode not in EXTRACTOR_MODES or config.activation_fn not in ACTIVATIONS:
            raise ValueError(f"extractor_mode={config.extractor_mode!r}, activation_fn={config.activation_fn!r} "
                             "are not supported")
        if config.encoder_embed_dim % config.encoder_attention_heads:
            raise ValueError(f"encoder_embed_dim {config.encoder_embed_dim} is not divisible by "
                             f"{config.encoder_attention_heads} heads")
        return config

    def conv_layers(self) -> list[tuple[int, int, int]]:
        """``conv_feature_layers`` as ``[(channels, kernel, stride), ...]``."""
        return parse_conv_layers(self.conv_feature_layers)


def read_fairseq_config(cls: type[FairseqConfigT], cfg: Mapping[str, Any], path: Path,
                        what: str) -> FairseqConfigT:
    """``cls.from_cfg(cfg)``, with an unusable config as a ``WeightFileError``."""
    try:
        return cls.from_cfg(cfg)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise WeightFileError(f"'{path}' is not {what}: its model config is unusable ({exc})") from None


def arch_from_fairseq(cfg: FairseqConfig, state: dict[str, torch.Tensor]) -> HubertArch:
    """``HubertArch`` of a fairseq HuBERT model."""
    layers, heads = cfg.encoder_layers, cfg.encoder_attention_heads
    return HubertArch(
        conv_layers=tuple(cfg.conv_layers()),
        conv_bias=cfg.conv_bias,
        extractor_mode=cfg.extractor_mode,
        embed_dim=cfg.encoder_embed_dim,
        num_heads=(heads,) * layers,
        head_dim=cfg.encoder_embed_dim // heads,
        ffn_dims=(cfg.encoder_ffn_embed_dim,) * layers,
        layer_norm_first=cfg.layer_norm_first,
        norm_before_layers=not cfg.layer_norm_first,  # fairseq's TransformerEncoder
        conv_pos=cfg.conv_pos,
        conv_pos_groups=cfg.conv_pos_groups,
        # The stored final_proj decides its size (final_dim x number of label sets).
        final_dim=state["final_proj.weight"].shape[0] if "final_proj.weight" in state else 0,
        activation=cfg.activation_fn,
    )


_FAIRSEQ_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.(1\.)?", r"feature_extractor.conv_layers.\1.norm."),
]


def map_fairseq_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fairseq HubertModel (and WavLM) parameter names -> ``HubertNet`` names."""
    return map_state_keys(state, _FAIRSEQ_RENAMES, "encoder.pos_conv.0.", drop=_UNUSED_KEYS)

