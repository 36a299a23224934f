"""The diffusion model's ``config.yaml`` (so-vits-svc 4.1's ``diffusion.yaml``), read into a frozen dataclass.

Only the keys inference uses are kept; training keys (``train``, ``env``, ``device``, ...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

DEFAULT_TIMESTEPS = 1000
VOCODER_TYPES = ("nsf-hifigan", "nsf-hifigan-log10")


@dataclass(frozen=True)
class DiffusionConfig:
    """What shallow and only-diffusion inference read from the model's yaml."""

    sampling_rate: int
    block_size: int
    encoder: str
    encoder_out_channels: int
    unit_interpolate_mode: str
    n_spk: int
    use_pitch_aug: bool
    n_layers: int
    n_chans: int
    n_hidden: int
    timesteps: int
    k_step_max: int  # already resolved: 0, null or >= timesteps mean timesteps
    vocoder_type: str
    vocoder_ckpt: str
    speedup: int
    method: str
    spk: dict[str, int]

    @property
    def shallow_only(self) -> bool:
        """True when the model was trained on the last ``k_step_max`` steps only (no full sampling)."""
        return self.k_step_max < self.timesteps

    @classmethod
    def from_yaml(cls, path: str | Path) -> DiffusionConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"diffusion config '{path}' does not exist; put the model's config.yaml "
                              "beside it or pass --diffusion-config") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the diffusion config '{path}' ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the diffusion config '{path}' is not a YAML mapping")
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.yaml") -> DiffusionConfig:
        try:
            d, m, v, i = (_section(data, name, source) for name in ("data", "model", "vocoder", "infer"))
            timesteps = int(m.get("timesteps") or DEFAULT_TIMESTEPS)
            k_max = m.get("k_step_max")
            k_max = timesteps if not k_max or int(k_max) >= timesteps else int(k_max)
            cfg = cls(
                sampling_rate=int(d["sampling_rate"]),
                block_size=int(d["block_size"]),
                encoder=str(d["encoder"]),
                encoder_out_channels=int(d["encoder_out_channels"]),
                unit_interpolate_mode=str(d.get("unit_interpolate_mode") or "left"),
                n_spk=int(m.get("n_spk") or 1),
                use_pitch_aug=bool(m.get("use_pitch_aug", False)),
                n_layers=int(m["n_layers"]),
                n_chans=int(m["n_chans"]),
                n_hidden=int(m["n_hidden"]),
                timesteps=timesteps,
                k_step_max=k_max,
                vocoder_type=str(v.get("type", "nsf-hifigan")),
                vocoder_ckpt=str(v.get("ckpt", "pretrain/nsf_hifigan/model")),
                speedup=int(i.get("speedup", 10)),
                method=str(i.get("method", "dpm-solver++")),
                spk={str(k): int(val) for k, val in (data.get("spk") or {}).items()},
            )
        except KeyError as exc:
            raise ConfigError(f"the diffusion config '{source}' has no key {exc}; use the config.yaml "
                              "that training wrote beside the model") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the diffusion config '{source}' has a malformed value ({exc})") from None
        cfg._validate(source)
        return cfg

    def _validate(self, source: str) -> None:
        if self.vocoder_type not in VOCODER_TYPES:
            raise ConfigError(f"in '{source}', vocoder.type {self.vocoder_type!r} is not one of {VOCODER_TYPES}")
        for name in ("sampling_rate", "block_size", "encoder_out_channels", "n_layers", "n_chans", "n_hidden",
                     "timesteps", "speedup"):
            if getattr(self, name) < 1:
                raise ConfigError(f"in '{source}', {name} must be positive, got {getattr(self, name)}")
        if self.n_chans < 4 or self.n_chans % 2:
            raise ConfigError(f"in '{source}', model.n_chans must be an even number >= 4, got {self.n_chans}")


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    section = data.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"the diffusion config '{source}' has no '{name}' section; use the config.yaml "
                          "that training wrote beside the model")
    return section
