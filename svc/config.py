"""``config.json`` of a so-vits-svc model, parsed and validated into frozen dataclasses.

Defaults are the reference's for keys that old configs lack.  A config with none of the
4.1-only model keys is a 4.0 config (4.0 vocoder padding and f0_to_coarse rule), or a 3.0 one
when it has the 3.0 templates' rate (32 or 48 kHz) and hop (320).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .models.sovits3 import DECODER as SOVITS3_DECODER
from .models.sovits3 import HOP_LENGTH as SOVITS3_HOP
from .models.sovits3 import SAMPLING_RATES as SOVITS3_RATES
from .models.sovits3 import fixed_decoder_params as sovits3_params
from .models.synthesizer import VOCODERS, SynthesizerParams

DEFAULT_SPEECH_ENCODER = "vec768l12"  # what the reference assumes when the key is missing
SOVITS3_SPEECH_ENCODER = "hubertsoft"
INTERPOLATE_MODES = ("left", "nearest")
KEYS_ONLY_IN_41 = (
    "speech_encoder", "vol_embedding", "vocoder_name", "use_depthwise_conv", "flow_share_parameter",
    "use_automatic_f0_prediction", "use_transformer_flow", "n_flow_layer", "n_layers_trans_flow",
    "speaker_embedding",
)
_REQUIRED_INTS = (
    "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size",
    "upsample_initial_channel", "gin_channels", "ssl_dim", "n_speakers",
)
_REQUIRED_INT_LISTS = ("resblock_kernel_sizes", "upsample_rates", "upsample_kernel_sizes")
_OPTIONAL = {  # key: (default, type)
    "vol_embedding": (False, bool),
    "use_depthwise_conv": (False, bool),
    "use_automatic_f0_prediction": (True, bool),
    "flow_share_parameter": (False, bool),
    "use_transformer_flow": (False, bool),
    "n_flow_layer": (4, int),
    "n_layers_trans_flow": (3, int),
}


@dataclass(frozen=True)
class DataConfig:
    """The ``data`` keys inference uses."""

    sampling_rate: int
    hop_length: int
    unit_interpolate_mode: str = "left"


@dataclass(frozen=True)
class ModelConfig:
    """A validated config.json: audio settings, speakers, encoder and generator parameters."""

    data: DataConfig
    model: SynthesizerParams
    spk: dict[str, int]
    speech_encoder: str
    speech_encoder_given: bool = True
    path: Path | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def sampling_rate(self) -> int:
        return self.data.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.data.hop_length

    @property
    def speakers(self) -> list[str]:
        """Speaker names in id order."""
        return sorted(self.spk, key=lambda name: self.spk[name])

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        """Read and validate ``path``; any problem is a ``ConfigError`` naming the file and key."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' does not exist")
        try:
            raw = json.loads(path.read_text(encoding="utf-8-sig"))  # Windows editors add a BOM
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"'{path}' is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix the syntax"
            ) from None
        except (UnicodeDecodeError, OSError) as exc:
            raise ConfigError(f"cannot read config file '{path}': {exc}") from None
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: Any, path: str | Path | None = None) -> ModelConfig:
        """Validate an already parsed config.json dict."""
        reader = _Reader(raw, str(path) if path else "config.json")
        model = reader.section("model")
        data = reader.section("data")
        spk = reader.section("spk")
        version = _detect_version(model, data)
        notes: list[str] = []
        params = _synth_params(reader, model, version, notes)
        if version == "3.0":
            params = _sovits3_params(reader, params, notes)
        data_cfg = _data_config(reader, data, params)
        speakers = _speakers(reader, spk)
        encoder = model.get("speech_encoder")
        if encoder is not None and not isinstance(encoder, str):
            reader.fail("model.speech_encoder", f"must be a string, got {encoder!r}")
        if version == "3.0":
            encoder = SOVITS3_SPEECH_ENCODER  # 3.0 always used HuBERT-soft; its configs never name it
        return cls(
            data=data_cfg, model=params, spk=speakers,
            speech_encoder=encoder or DEFAULT_SPEECH_ENCODER, speech_encoder_given=encoder is not None,
            path=Path(path) if path else None, notes=tuple(notes),
        )


def _detect_version(model: dict[str, Any], data: dict[str, Any]) -> str:
    """"4.1" if any 4.1-only key is present; else "3.0" for the 3.0 templates' rate and hop; else "4.0".

    3.0 and 4.0 configs have the same keys; 3.0 models run at 32 or 48 kHz with hop 320 (4.0: 44.1 kHz,
    hop 512).  ``svc.checkpoint`` confirms the guess from the state dict.
    """
    if any(k in model for k in KEYS_ONLY_IN_41) or "unit_interpolate_mode" in data:
        return "4.1"
    if data.get("sampling_rate") in SOVITS3_RATES and data.get("hop_length") == SOVITS3_HOP:
        return "3.0"
    return "4.0"


def _sovits3_params(r: _Reader, params: SynthesizerParams, notes: list[str]) -> SynthesizerParams:
    """3.0's generator takes its decoder from a fixed dict, so the config's decoder keys are ignored
    (noted when they differ) and the widths that meet the decoder must equal it."""
    for key in ("inter_channels", "gin_channels"):
        if getattr(params, key) != SOVITS3_DECODER[key]:
            r.fail(f"model.{key}", f"must be {SOVITS3_DECODER[key]} for a so-vits-svc 3.0 model (its decoder is "
                                   f"fixed), got {getattr(params, key)}")
    if params.ssl_dim != 256:
        r.fail("model.ssl_dim", f"must be 256 for a so-vits-svc 3.0 model (HuBERT-soft units), got {params.ssl_dim}")
    fixed = sovits3_params(params)
    ignored = [key for key in SOVITS3_DECODER if getattr(params, key) != getattr(fixed, key)]
    if ignored:
        notes.append(f"so-vits-svc 3.0 ignores the config's {', '.join(ignored)}: using its fixed decoder")
    return fixed


class _Reader:
    """Typed access to the raw dict with errors that name the file and the key."""

    def __init__(self, raw: Any, source: str):
        if not isinstance(raw, dict):
            raise ConfigError(f"'{source}' must hold a JSON object, not {type(raw).__name__}")
        self.raw = raw
        self.source = source

    def fail(self, key: str, problem: str) -> None:
        raise ConfigError(f"'{self.source}': {key} {problem}")

    def section(self, name: str) -> dict[str, Any]:
        if name not in self.raw:
            self.fail(name, "is missing; this does not look like a so-vits-svc config.json")
        if not isinstance(self.raw[name], dict):
            self.fail(name, "must be a JSON object")
        return self.raw[name]

    def require(self, section: dict[str, Any], prefix: str, key: str) -> Any:
        if key not in section:
            self.fail(f"{prefix}.{key}", "is missing (a required key); use the config.json the model was trained with")
        return section[key]

    def integer(self, section: dict[str, Any], prefix: str, key: str, default: Any = None) -> int:
        value = self.require(section, prefix, key) if default is None else section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(f"{prefix}.{key}", f"must be a non-negative integer, got {value!r}")
        return value

    def int_list(self, section: dict[str, Any], prefix: str, key: str) -> tuple[int, ...]:
        value = self.require(section, prefix, key)
        if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        ):
            self.fail(f"{prefix}.{key}", f"must be a non-empty list of positive integers, got {value!r}")
        return tuple(value)

    def flag(self, section: dict[str, Any], prefix: str, key: str, default: bool) -> bool:
        value = section.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(f"{prefix}.{key}", f"must be true or false, got {value!r}")
        return value


def _synth_params(r: _Reader, model: dict[str, Any], version: str, notes: list[str]) -> SynthesizerParams:
    ints = {key: r.integer(model, "model", key) for key in _REQUIRED_INTS}
    lists = {key: r.int_list(model, "model", key) for key in _REQUIRED_INT_LISTS}
    dilations = r.require(model, "model", "resblock_dilation_sizes")
    if not isinstance(dilations, list) or len(dilations) != len(lists["resblock_kernel_sizes"]) or not all(
        isinstance(d, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in d) for d in dilations
    ):
        r.fail("model.resblock_dilation_sizes", "must be one list of integers per resblock kernel size")
    resblock = str(r.require(model, "model", "resblock"))
    if resblock not in ("1", "2"):
        r.fail("model.resblock", f'must be "1" or "2", got {resblock!r}')
    if len(lists["upsample_rates"]) != len(lists["upsample_kernel_sizes"]):
        r.fail("model.upsample_kernel_sizes", "must have as many entries as model.upsample_rates")
    if ints["n_heads"] == 0 or ints["hidden_channels"] % ints["n_heads"]:
        r.fail("model.n_heads", f"must divide hidden_channels ({ints['hidden_channels']}), got {ints['n_heads']}")
    if ints["inter_channels"] % 2:
        r.fail("model.inter_channels", f"must be even, got {ints['inter_channels']}")
    options: dict[str, Any] = {}
    for key, (default, kind) in _OPTIONAL.items():
        options[key] = r.flag(model, "model", key, default) if kind is bool else r.integer(model, "model", key, default)
    vocoder = model.get("vocoder_name") or "nsf-hifigan"
    if vocoder not in VOCODERS:
        # The reference warns and builds nsf-hifigan, so the model was trained with that.
        notes.append(f"unknown vocoder_name {vocoder!r} in config: using nsf-hifigan, as so-vits-svc does")
        vocoder = "nsf-hifigan"
    return SynthesizerParams(
        **ints, **lists, resblock=resblock,
        resblock_dilation_sizes=tuple(tuple(d) for d in dilations),
        vocoder_name=vocoder, version=version, **options,
    )


def _data_config(r: _Reader, data: dict[str, Any], params: SynthesizerParams) -> DataConfig:
    sampling_rate = r.integer(data, "data", "sampling_rate")
    hop = r.integer(data, "data", "hop_length")
    if sampling_rate == 0 or hop == 0:
        r.fail("data.sampling_rate/hop_length", "must be positive")
    if hop != math.prod(params.upsample_rates):
        r.fail(
            "data.hop_length",
            f"is {hop} but the product of model.upsample_rates {list(params.upsample_rates)} is "
            f"{math.prod(params.upsample_rates)}; they must be equal",
        )
    mode = data.get("unit_interpolate_mode") or "left"
    if mode not in INTERPOLATE_MODES:
        r.fail("data.unit_interpolate_mode", f"must be one of {', '.join(INTERPOLATE_MODES)}, got {mode!r}")
    return DataConfig(sampling_rate=sampling_rate, hop_length=hop, unit_interpolate_mode=mode)


def _speakers(r: _Reader, spk: dict[str, Any]) -> dict[str, int]:
    if not spk:
        r.fail("spk", "is empty; it must map each speaker name to its id")
    for name, sid in spk.items():
        if isinstance(sid, bool) or not isinstance(sid, int) or sid < 0:
            r.fail(f"spk.{name}", f"must be a non-negative integer speaker id, got {sid!r}")
    return dict(spk)
