"""Signal-processing F0 predictors: Praat autocorrelation (pm) and WORLD (dio, harvest). CPU only."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import F0_MAX, F0_MIN, F0Predictor, fit_length, resize_linear_voiced

PM_VOICING_THRESHOLD = 0.6
PM_PERIODS_PER_WINDOW = 3.0  # Praat's autocorrelation window is 3 periods of the lowest pitch


class PmF0Predictor(F0Predictor):
    """Praat's ``To Pitch (ac)`` through parselmouth, one frame per hop, centred in ``p_len``."""

    name = "pm"

    def frame_f0(self, wav: np.ndarray, p_len: int) -> np.ndarray:
        import parselmouth

        # Praat refuses sounds shorter than its analysis window; such a sound has no pitch.
        if wav.shape[0] <= PM_PERIODS_PER_WINDOW * self.sampling_rate / F0_MIN:
            return np.zeros(p_len)
        pitch = parselmouth.Sound(wav.astype(np.float64), self.sampling_rate).to_pitch_ac(
            time_step=self.hop_length / self.sampling_rate,
            voicing_threshold=PM_VOICING_THRESHOLD,
            pitch_floor=F0_MIN,
            pitch_ceiling=F0_MAX,
        )
        return fit_length(pitch.selected_array["frequency"], p_len, odd_pad_left=True)


class _WorldF0Predictor(F0Predictor):
    """WORLD estimate (``pyworld.<algorithm>``) refined by StoneMask, then stretched linearly to ``p_len`` frames."""

    algorithm: ClassVar[str]
    decimals: ClassVar[int | None] = None  # so-vits-svc rounds some estimates (after StoneMask)

    def frame_f0(self, wav: np.ndarray, p_len: int) -> np.ndarray:
        import pyworld

        x = np.ascontiguousarray(wav, dtype=np.float64)
        f0, times = getattr(pyworld, self.algorithm)(x, fs=self.sampling_rate, f0_floor=F0_MIN, f0_ceil=F0_MAX,
                                                     frame_period=1000.0 * self.hop_length / self.sampling_rate)
        f0 = pyworld.stonemask(x, f0, times, self.sampling_rate)
        if self.decimals is not None:
            f0 = np.round(f0, self.decimals)
        return resize_linear_voiced(f0, p_len)


class DioF0Predictor(_WorldF0Predictor):
    """WORLD DIO (fast); like so-vits-svc, the F0 is rounded to 0.1 Hz."""

    name = "dio"
    algorithm = "dio"
    decimals = 1


class HarvestF0Predictor(_WorldF0Predictor):
    """WORLD Harvest (slow, robust)."""

    name = "harvest"
    algorithm = "harvest"
