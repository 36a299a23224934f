"""Conversion settings shared by the Python API, the CLI and the web UI."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import OptionsError

DEFAULT_SEED = 52468  # the seed so-vits-svc 4.1 uses for every call


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that controls one conversion (besides the model and the input).

    Defaults follow the so-vits-svc 4.1 web UI except where the README says otherwise.
    """

    speaker: str | int | None = None  # name from the config's `spk` map, or its id; None = first
    transpose: float = 0.0  # semitones
    f0_method: str = "pm"  # a key of svc.f0.F0_PREDICTORS
    auto_f0: bool = False  # let the model's F0 decoder predict F0 (loses the transpose)
    cr_threshold: float = 0.05  # voicing threshold of crepe / rmvpe / fcpe
    noise_scale: float = 0.4
    slice_db: float = -40.0  # silence threshold of the slicer
    pad_seconds: float = 0.5  # zero padding around every chunk, cut off after synthesis
    clip_seconds: float = 0.0  # forced chunk length; 0 = off
    crossfade_seconds: float = 0.0  # overlap between forced chunks ("lg")
    crossfade_keep: float = 0.75  # share of the overlap that is crossfaded ("lgr"), in (0, 1]
    loudness_mix: float = 1.0  # 1 = keep the output's loudness; 0 = take the input's envelope
    enhance: bool = False  # NSF-HiFiGAN enhancer
    enhancer_adaptive_key: float = 0.0  # semitones
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``OptionsError`` naming the first setting that is out of range."""
        _check_range("transpose", self.transpose, -48, 48)
        _check_range("cr_threshold", self.cr_threshold, 0.0, 1.0)
        _check_range("noise_scale", self.noise_scale, 0.0, 10.0)
        _check_range("slice_db", self.slice_db, -100.0, 0.0)
        _check_range("pad_seconds", self.pad_seconds, 0.0, 10.0)
        _check_range("clip_seconds", self.clip_seconds, 0.0, 3600.0)
        _check_range("crossfade_seconds", self.crossfade_seconds, 0.0, 60.0)
        _check_range("loudness_mix", self.loudness_mix, 0.0, 1.0)
        _check_range("enhancer_adaptive_key", self.enhancer_adaptive_key, -24, 24)
        if not (0.0 < self.crossfade_keep <= 1.0) or not math.isfinite(self.crossfade_keep):
            raise OptionsError(f"crossfade_keep must be in (0, 1], got {self.crossfade_keep}")
        if self.clip_seconds > 0 and self.crossfade_seconds >= self.clip_seconds:
            raise OptionsError(
                f"crossfade_seconds ({self.crossfade_seconds}) must be shorter than clip_seconds ({self.clip_seconds})"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not (0 <= self.seed < 2**63):
            raise OptionsError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.f0_method, str) or not self.f0_method:
            raise OptionsError(f"f0_method must be a predictor name, got {self.f0_method!r}")

    def with_(self, **changes: Any) -> "ConvertOptions":
        """A copy with some settings changed (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise OptionsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionsError(f"{name} must be a number, got {value!r}")
    if not (low <= value <= high):
        raise OptionsError(f"{name} must be between {low} and {high}, got {value}")
