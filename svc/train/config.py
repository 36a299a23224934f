"""The training ``config.json``: the 4.1 templates, what preprocessing changes, and typed access.

A run folder's config.json is a complete so-vits-svc 4.1 config (its ``model``/``data``/``spk``
sections are what inference reads, ``train`` is the training schedule), so the trained model
can be used by so-vits-svc itself as well as by this project.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..encoders.registry import ENCODERS
from ..errors import ConfigError

TEMPLATES = ("default", "tiny")

# so-vits-svc 4.1's configs_template/config_template.json (values, not code).
_DEFAULT_TEMPLATE: dict[str, Any] = {
    "train": {
        "log_interval": 200, "eval_interval": 800, "seed": 1234, "epochs": 10000, "learning_rate": 0.0001,
        "betas": [0.8, 0.99], "eps": 1e-09, "batch_size": 6, "fp16_run": False, "half_type": "fp16",
        "lr_decay": 0.999875, "segment_size": 10240, "init_lr_ratio": 1, "warmup_epochs": 0, "c_mel": 45,
        "c_kl": 1.0, "use_sr": True, "max_speclen": 512, "port": "8001", "keep_ckpts": 3, "all_in_mem": False,
        "vol_aug": False,
    },
    "data": {
        "training_files": "filelists/train.txt", "validation_files": "filelists/val.txt",
        "max_wav_value": 32768.0, "sampling_rate": 44100, "filter_length": 2048, "hop_length": 512,
        "win_length": 2048, "n_mel_channels": 80, "mel_fmin": 0.0, "mel_fmax": 22050,
        "unit_interpolate_mode": "nearest",
    },
    "model": {
        "inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
        "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [8, 8, 2, 2, 2],
        "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 4, 4, 4], "n_layers_q": 3,
        "n_layers_trans_flow": 3, "n_flow_layer": 4, "use_spectral_norm": False, "gin_channels": 768,
        "ssl_dim": 768, "n_speakers": 200, "vocoder_name": "nsf-hifigan", "speech_encoder": "vec768l12",
        "speaker_embedding": False, "vol_embedding": False, "use_depthwise_conv": False,
        "flow_share_parameter": False, "use_automatic_f0_prediction": True, "use_transformer_flow": False,
    },
    "spk": {},
}
# config_tiny_template.json differs from the default in these model keys only.
_TINY_MODEL = {"filter_channels": 512, "upsample_initial_channel": 400, "use_depthwise_conv": True,
               "flow_share_parameter": True}


def template(name: str = "default") -> dict[str, Any]:
    """A fresh copy of the 4.1 config template ``name`` ("default" or "tiny")."""
    if name not in TEMPLATES:
        raise ConfigError(f"unknown config template {name!r}; choose one of: {', '.join(TEMPLATES)}")
    cfg = copy.deepcopy(_DEFAULT_TEMPLATE)
    if name == "tiny":
        cfg["model"].update(_TINY_MODEL)
    return cfg


def build_config(template_name: str, speakers: list[str], speech_encoder: str, *,
                 vol_embedding: bool = False) -> dict[str, Any]:
    """The config.json so-vits-svc's ``preprocess_flist_config.py`` writes for these choices.

    Speaker ids follow ``speakers``' order; ssl/gin/filter sizes follow the encoder's width
    (the 256-dim encoders keep the template's filter_channels); ``vol_embedding`` is the
    reference's ``--vol_aug`` (volume embedding and volume augmentation).
    """
    if speech_encoder not in ENCODERS:
        raise ConfigError(f"unknown speech encoder {speech_encoder!r}; available: {', '.join(ENCODERS)}")
    cfg = template(template_name)
    model = cfg["model"]
    dim = ENCODERS[speech_encoder].dim
    model["ssl_dim"] = model["gin_channels"] = dim
    if dim != 256:
        model["filter_channels"] = dim
    if template_name == "tiny":
        model["filter_channels"] = 512  # the reference re-applies the tiny width after the encoder's
    model["speech_encoder"] = speech_encoder
    model["n_speakers"] = len(speakers)
    cfg["spk"] = {name: i for i, name in enumerate(speakers)}
    if vol_embedding:
        cfg["train"]["vol_aug"] = model["vol_embedding"] = True
    return cfg


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` and ``data`` keys the training loop uses, validated."""

    learning_rate: float
    betas: tuple[float, float]
    eps: float
    batch_size: int
    lr_decay: float
    segment_size: int
    c_mel: float
    c_kl: float
    seed: int
    epochs: int
    log_interval: int
    eval_interval: int
    keep_ckpts: int
    warmup_epochs: int
    fp16_run: bool
    half_type: str
    vol_aug: bool
    max_speclen: int
    sampling_rate: int
    hop_length: int
    filter_length: int
    win_length: int
    n_mel_channels: int
    mel_fmin: float
    mel_fmax: float | None
    p_dropout: float
    use_spectral_norm: bool

    @property
    def segment_frames(self) -> int:
        return self.segment_size // self.hop_length

    @property
    def spec_channels(self) -> int:
        return self.filter_length // 2 + 1


@dataclass(frozen=True)
class RunConfig:
    """A run's config.json: the raw dict (written back unchanged), the model config and the settings."""

    raw: dict[str, Any]
    model: ModelConfig
    train: TrainSettings
    path: Path | None = None

    @classmethod
    def from_json(cls, path: str | Path) -> RunConfig:
        model = ModelConfig.from_json(path)
        raw = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        return cls(raw=raw, model=model, train=_settings(raw, str(path)), path=Path(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        return cls(raw=raw, model=ModelConfig.from_dict(raw), train=_settings(raw, "config.json"))


def write_config(cfg: dict[str, Any], path: str | Path) -> None:
    """Write ``cfg`` as so-vits-svc does (JSON, indent 2)."""
    Path(path).write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")


def _settings(raw: dict[str, Any], source: str) -> TrainSettings:
    train = raw.get("train")
    if not isinstance(train, dict):
        raise ConfigError(f"'{source}': train section is missing; a training run needs the full 4.1 config")
    data, model = raw["data"], raw["model"]
    defaults = _DEFAULT_TEMPLATE["train"]

    def get(section: dict, key: str, kind: type, fallback: Any) -> Any:
        value = section.get(key, fallback)
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"'{source}': {key} must be {kind.__name__}, got {value!r}") from None

    hop = get(data, "hop_length", int, 512)
    segment = get(train, "segment_size", int, defaults["segment_size"])
    if segment <= 0 or segment % hop:
        raise ConfigError(f"'{source}': train.segment_size {segment} must be a positive multiple of hop_length {hop}")
    betas = train.get("betas", defaults["betas"])
    if not (isinstance(betas, list | tuple) and len(betas) == 2):
        raise ConfigError(f"'{source}': train.betas must be two numbers, got {betas!r}")
    half_type = str(train.get("half_type", "fp16"))
    fmax = data.get("mel_fmax")
    return TrainSettings(
        learning_rate=get(train, "learning_rate", float, defaults["learning_rate"]),
        betas=(float(betas[0]), float(betas[1])), eps=get(train, "eps", float, defaults["eps"]),
        batch_size=get(train, "batch_size", int, defaults["batch_size"]),
        lr_decay=get(train, "lr_decay", float, defaults["lr_decay"]), segment_size=segment,
        c_mel=get(train, "c_mel", float, 45), c_kl=get(train, "c_kl", float, 1.0),
        seed=get(train, "seed", int, 1234), epochs=get(train, "epochs", int, 10000),
        log_interval=max(1, get(train, "log_interval", int, 200)),
        eval_interval=max(1, get(train, "eval_interval", int, 800)),
        keep_ckpts=get(train, "keep_ckpts", int, 3), warmup_epochs=get(train, "warmup_epochs", int, 0),
        fp16_run=bool(train.get("fp16_run", False)), half_type=half_type,
        vol_aug=bool(train.get("vol_aug", False)) and bool(model.get("vol_embedding", False)),
        max_speclen=get(train, "max_speclen", int, 512),
        sampling_rate=get(data, "sampling_rate", int, 44100), hop_length=hop,
        filter_length=get(data, "filter_length", int, 2048), win_length=get(data, "win_length", int, 2048),
        n_mel_channels=get(data, "n_mel_channels", int, 80), mel_fmin=get(data, "mel_fmin", float, 0.0),
        mel_fmax=None if fmax is None else float(fmax),
        p_dropout=float(model.get("p_dropout", 0.1)), use_spectral_norm=bool(model.get("use_spectral_norm", False)),
    )
