"""Conversion settings shared by the Python API, the CLI and the web UI."""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, field, fields, replace
from typing import Any

from .errors import OptionsError

DEFAULT_SEED = 52468  # the seed so-vits-svc 4.1 uses for every call


def _opt(default: Any, help: str, low: float | None = None, high: float | None = None,
         step: float | None = None) -> Any:
    """A field with its one-line description and, for numbers, its valid range and the UI's step.

    The CLI, the web UI and ``validate`` all read these, so each fact is written once.
    """
    metadata: dict[str, Any] = {"help": help}
    if low is not None and high is not None:
        metadata["range"] = (low, high)
    if step is not None:
        metadata["step"] = step
    return field(default=default, metadata=metadata)


def _path_opt(help: str) -> Any:
    """A setting that names a file (the CLI takes a path, the API also the content)."""
    return field(default=None, metadata={"help": help, "path": True})


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that controls one conversion (besides the model and the input).

    Defaults follow the so-vits-svc 4.1 web UI except where the README says otherwise.
    """

    speaker: str | int | None = _opt(None, "speaker name from the model's config (or its id); default: the first")
    transpose: float = _opt(0.0, "pitch shift in semitones", -48, 48, 1)
    f0_method: str = _opt("pm", "F0 predictor")
    auto_f0: bool = _opt(False, "let the model predict F0 (for speech; the transpose is then ignored)")
    cr_threshold: float = _opt(0.05, "voicing threshold of the crepe, rmvpe and fcpe predictors", 0.0, 1.0, 0.01)
    noise_scale: float = _opt(0.4, "noise scale of the prior (variation in the voice)", 0.0, 2.0, 0.01)
    slice_db: float = _opt(-40.0, "silence threshold in dB for slicing the input", -100.0, 0.0, 1)
    pad_seconds: float = _opt(0.5, "silence padded around every chunk (removes edge artefacts)", 0.0, 2.0, 0.05)
    clip_seconds: float = _opt(0.0, "force chunks of this many seconds (0 = only slice on silence)", 0.0, 600.0, 1)
    crossfade_seconds: float = _opt(0.0, "crossfade between forced chunks, in seconds", 0.0, 10.0, 0.05)
    crossfade_keep: float = _opt(0.75, "share of the crossfade region that is blended, in (0, 1]", 0.05, 1.0, 0.05)
    loudness_mix: float = _opt(1.0, "1 keeps the output's loudness; 0 follows the input's loudness envelope",
                               0.0, 1.0, 0.01)
    enhance: bool = _opt(False, "run the NSF-HiFiGAN enhancer on the output")
    enhancer_adaptive_key: float = _opt(0.0, "semitones the enhancer's range is shifted by", -24, 24, 1)
    seed: int = _opt(DEFAULT_SEED, "random seed (the same seed gives the same audio)")
    shallow_diffusion: bool = _opt(False, "refine the output with the diffusion model (shallow diffusion)")
    only_diffusion: bool = _opt(False, "synthesise with the diffusion model alone (no voice model needed)")
    k_step: int = _opt(100, "shallow diffusion: noise steps added to the output and removed again (1 to k_step_max)",
                       1, 1000, 1)
    second_encoding: bool = _opt(False, "shallow diffusion: take the content from the voice model's output")
    diffusion_method: str | None = _opt(None, "diffusion sampler (default: the diffusion model's config)")
    diffusion_speedup: int = _opt(0, "diffusion speedup: sampler steps = k_step // speedup "
                                     "(0 = the diffusion model's config; 1 = every step, DDPM)", 0, 500, 1)
    cluster: str | None = _path_opt("kmeans_*.pt cluster model or feature_and_index.pkl feature index "
                                    "(default: the one in the model's folder)")
    cluster_ratio: float = _opt(0.0, "timbre: share of cluster / retrieved features mixed into the content (0 = off)",
                                0.0, 1.0, 0.01)
    spk_mix: str | dict | None = _path_opt("speaker mix over time: a JSON file {speaker: [[t0, t1, w0, w1], ...]}")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``OptionsError`` naming the first setting that is out of range."""
        for f in fields(self):
            if "range" in f.metadata:
                _check_range(f.name, getattr(self, f.name), *f.metadata["range"])
        if self.clip_seconds > 0 and self.crossfade_seconds >= self.clip_seconds:
            raise OptionsError(
                f"crossfade_seconds ({self.crossfade_seconds}) must be shorter than clip_seconds ({self.clip_seconds})"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not (0 <= self.seed < 2**63):
            raise OptionsError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.spk_mix is not None and self.cluster_ratio > 0:
            raise OptionsError("cluster_ratio must be 0 with spk_mix (so-vits-svc does not mix clusters into a "
                               "speaker mix)")
        if not isinstance(self.f0_method, str) or not self.f0_method:
            raise OptionsError(f"f0_method must be a predictor name, got {self.f0_method!r}")
        self._validate_diffusion()

    def _validate_diffusion(self) -> None:
        for name in ("k_step", "diffusion_speedup"):  # whole numbers within their ranges
            _check_int(name, getattr(self, name), *option_range(name))
        if self.diffusion_method is not None and (not isinstance(self.diffusion_method, str)
                                                  or not self.diffusion_method):
            raise OptionsError(f"diffusion_method must be a sampler name, got {self.diffusion_method!r}")
        if self.shallow_diffusion and self.only_diffusion:
            raise OptionsError("choose shallow_diffusion or only_diffusion, not both")

    @property
    def uses_diffusion(self) -> bool:
        return self.shallow_diffusion or self.only_diffusion

    def with_(self, **changes: Any) -> ConvertOptions:
        """A copy with some settings changed (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise OptionsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def option_field(name: str) -> Field:
    """The dataclass field of setting ``name`` (its default and metadata)."""
    for f in fields(ConvertOptions):
        if f.name == name:
            return f
    raise OptionsError(f"unknown setting {name!r}")


def option_range(name: str) -> tuple[float, float]:
    """``(low, high)`` of a numeric setting."""
    return option_field(name).metadata["range"]


def check_option(name: str, value: float) -> float:
    """``value`` if it is in setting ``name``'s range, else an ``OptionsError`` that says the range."""
    _check_range(name, value, *option_range(name))
    return value


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise OptionsError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionsError(f"{name} must be a number, got {value!r}")
    if not (low <= value <= high):
        raise OptionsError(f"{name} must be between {low} and {high}, got {value}")
