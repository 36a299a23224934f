"""The F0 predictor contract and the pure F0 helpers every predictor shares.

A predictor turns a mono float waveform at ``sampling_rate`` into one F0 value per hop
(``len(wav) // hop_length`` frames), 0 Hz meaning unvoiced.  ``compute_f0_uv`` then fills the
unvoiced frames the way so-vits-svc does, so the synthesiser always gets a usable pitch.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..crossfade import fit_length  # noqa: F401  (re-exported for the predictors)
from ..errors import OptionsError
from ..pitch import F0_MAX, F0_MIN  # noqa: F401  (re-exported: the predictors' search range)
from ..weights import DEFAULT_PRETRAIN_DIR

P_LEN_SLACK = 4  # how far an explicit p_len may stray from len(wav) // hop (the reference asserts this)


def interpolate_unvoiced(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill unvoiced frames (f0 <= 0) linearly between voiced ones; return ``(f0, uv)``.

    Frames before the first / after the last voiced frame hold its value; with nothing voiced
    both arrays are zeros.  ``uv`` is 1.0 on voiced frames.  Both are float32 of the input length.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    uv = (f0 > 0.0).astype(np.float32)
    voiced = np.flatnonzero(uv)
    if voiced.size == 0:
        return np.zeros(f0.shape[0], dtype=np.float32), uv
    # np.interp holds fp[0] / fp[-1] outside the voiced span, which is the reference's rule.
    filled = np.interp(np.arange(f0.shape[0], dtype=np.float64), voiced.astype(np.float64), f0[voiced])
    return filled.astype(np.float32), uv


def resize_linear_voiced(f0: np.ndarray, length: int) -> np.ndarray:
    """Stretch ``f0`` to ``length`` frames linearly; a frame touching an unvoiced one is unvoiced.

    This is so-vits-svc's ``resize_f0`` for the WORLD predictors: unvoiced frames become NaN so
    that any interpolation involving them yields NaN, which ends up as 0.
    """
    source = np.where(f0 < 0.001, np.nan, f0.astype(np.float64))
    n = source.shape[0]
    if n == 0 or length == 0:
        return np.zeros(length, dtype=np.float64)
    positions = np.arange(0, n * length, n, dtype=np.float64) / length
    return np.nan_to_num(np.interp(positions, np.arange(n, dtype=np.float64), source))


class F0Predictor(ABC):
    """One F0 estimation method at a fixed hop, sample rate, device and voicing threshold.

    Subclasses implement ``frame_f0``; everything else (length rules, interpolation) is shared.
    ``threshold`` is so-vits-svc's ``cr_threshold``; methods without a confidence ignore it.
    """

    name: ClassVar[str]
    uses_device: ClassVar[bool] = False

    def __init__(
        self,
        *,
        hop_length: int,
        sampling_rate: int,
        device: str = "cpu",
        threshold: float = 0.05,
        pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
    ) -> None:
        _check_settings(hop_length, sampling_rate, threshold)
        self.hop_length = int(hop_length)
        self.sampling_rate = int(sampling_rate)
        self.device = str(device)
        self.threshold = float(threshold)
        self.pretrain_dir = Path(pretrain_dir)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(hop_length={self.hop_length}, sampling_rate={self.sampling_rate}, "
                f"device={self.device!r}, threshold={self.threshold})")

    @abstractmethod
    def frame_f0(self, wav: np.ndarray, p_len: int) -> np.ndarray:
        """Raw F0 of ``wav`` at ``p_len`` frames, 0 where unvoiced (no interpolation)."""

    def compute_f0_uv(self, wav: np.ndarray, p_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(f0, uv)`` with ``p_len`` (default ``len(wav) // hop_length``) float32 frames each.

        Unvoiced frames of ``f0`` are interpolated (see ``interpolate_unvoiced``); ``uv`` is 1.0
        where the predictor found voicing.
        """
        wav = _check_wav(wav)
        p_len = self._check_p_len(wav, p_len)
        if p_len == 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
        raw = np.asarray(self.frame_f0(wav, p_len), dtype=np.float64)
        if raw.shape != (p_len,):
            raise AssertionError(f"{type(self).__name__} returned {raw.shape} frames, expected ({p_len},)")
        return interpolate_unvoiced(raw)

    def compute_f0(self, wav: np.ndarray, p_len: int | None = None) -> np.ndarray:
        """Interpolated F0 only (see ``compute_f0_uv``)."""
        return self.compute_f0_uv(wav, p_len)[0]

    def with_settings(self, *, hop_length: int, sampling_rate: int, threshold: float) -> F0Predictor:
        """A copy with other hop / rate / threshold that shares any loaded network."""
        _check_settings(hop_length, sampling_rate, threshold)
        clone = copy.copy(self)
        clone.hop_length, clone.sampling_rate, clone.threshold = int(hop_length), int(sampling_rate), float(threshold)
        return clone

    def _check_p_len(self, wav: np.ndarray, p_len: int | None) -> int:
        natural = wav.shape[0] // self.hop_length
        if p_len is None:
            return natural
        if int(p_len) != p_len or p_len < 0 or abs(p_len - natural) >= P_LEN_SLACK:
            raise ValueError(f"p_len={p_len} does not fit {wav.shape[0]} samples at hop {self.hop_length}")
        return int(p_len)


def _check_settings(hop_length: int, sampling_rate: int, threshold: float) -> None:
    if int(hop_length) != hop_length or hop_length <= 0:
        raise OptionsError(f"hop_length must be a positive integer, got {hop_length!r}")
    if int(sampling_rate) != sampling_rate or sampling_rate < 1000:
        raise OptionsError(f"sampling_rate must be an integer of at least 1000 Hz, got {sampling_rate!r}")
    if not (0.0 <= float(threshold) <= 1.0):
        raise OptionsError(f"the F0 voicing threshold must be between 0 and 1, got {threshold!r}")


def _check_wav(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav)
    if wav.ndim != 1 or not np.issubdtype(wav.dtype, np.floating):
        raise ValueError(f"F0 prediction needs a 1-D float waveform, got {wav.dtype} of shape {wav.shape}")
    if not np.all(np.isfinite(wav)):
        raise ValueError("F0 prediction got a waveform containing NaN or infinity")
    return wav
