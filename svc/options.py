"""Conversion settings shared by the Python API, the CLI and the web UI."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import OptionsError

DEFAULT_SEED = 52468  # the seed so-vits-svc 4.1 uses for every call


def _opt(default: Any, help: str) -> Any:
    """A field with a one-line description that the CLI and the web UI show."""
    return field(default=default, metadata={"help": help})


def _path_opt(help: str) -> Any:
    """A setting that names a file (the CLI takes a path, the API also the content)."""
    return field(default=None, metadata={"help": help, "path": True})


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that controls one conversion (besides the model and the input).

    Defaults follow the so-vits-svc 4.1 web UI except where the README says otherwise.
    """

    speaker: str | int | None = _opt(None, "speaker name from the model's config (or its id); default: the first")
    transpose: float = _opt(0.0, "pitch shift in semitones")
    f0_method: str = _opt("pm", "F0 predictor")
    auto_f0: bool = _opt(False, "let the model predict F0 (for speech; the transpose is then ignored)")
    cr_threshold: float = _opt(0.05, "voicing threshold of the crepe, rmvpe and fcpe predictors")
    noise_scale: float = _opt(0.4, "noise scale of the prior (variation in the voice)")
    slice_db: float = _opt(-40.0, "silence threshold in dB for slicing the input")
    pad_seconds: float = _opt(0.5, "silence padded around every chunk (removes edge artefacts)")
    clip_seconds: float = _opt(0.0, "force chunks of this many seconds (0 = only slice on silence)")
    crossfade_seconds: float = _opt(0.0, "crossfade between forced chunks, in seconds")
    crossfade_keep: float = _opt(0.75, "share of the crossfade region that is blended, in (0, 1]")
    loudness_mix: float = _opt(1.0, "1 keeps the output's loudness; 0 follows the input's loudness envelope")
    enhance: bool = _opt(False, "run the NSF-HiFiGAN enhancer on the output")
    enhancer_adaptive_key: float = _opt(0.0, "semitones the enhancer's range is shifted by")
    seed: int = _opt(DEFAULT_SEED, "random seed (the same seed gives the same audio)")
    cluster: str | None = _path_opt("kmeans_*.pt cluster model or feature_and_index.pkl feature index "
                                    "(default: the one in the model's folder)")
    cluster_ratio: float = _opt(0.0, "timbre: share of cluster / retrieved features mixed into the content (0 = off)")
    spk_mix: str | dict | None = _path_opt("speaker mix over time: a JSON file {speaker: [[t0, t1, w0, w1], ...]}")

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
        _check_range("cluster_ratio", self.cluster_ratio, 0.0, 1.0)
        if self.spk_mix is not None and self.cluster_ratio > 0:
            raise OptionsError("cluster_ratio must be 0 with spk_mix (so-vits-svc does not mix clusters into a "
                               "speaker mix)")
        if not isinstance(self.f0_method, str) or not self.f0_method:
            raise OptionsError(f"f0_method must be a predictor name, got {self.f0_method!r}")

    def with_(self, **changes: Any) -> ConvertOptions:
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
