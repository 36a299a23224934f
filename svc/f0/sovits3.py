"""F0 for so-vits-svc 3.0 models.

3.0 models take no voicing input: the vocoder voices exactly the frames whose F0 is above 0,
and the reference never fills unvoiced gaps.  So every predictor's raw F0 (0 where unvoiced)
goes to the model as it is (``RawF0``).  ``pm`` follows 3.0's own rule (``Sovits3PmF0Predictor``):
Praat on the 16 kHz signal in 10 ms steps, centred zero padding to the 100 fps frame count,
and on 48 kHz models the reference's linear resize to 150 fps.
"""

from __future__ import annotations

import numpy as np
import torch

from ..audio import resample
from .base import F0Predictor, resize_linear_voiced
from .classic import PmF0Predictor

PRAAT_RATE = 16000  # 3.0 runs Praat on the signal HuBERT-soft sees
PRAAT_HOP = 160  # 10 ms


class Sovits3PmF0Predictor(PmF0Predictor):
    """3.0's ``get_f0``: Praat at 16 kHz / 10 ms (voicing 0.6, 50-1100 Hz), then the model frame rate."""

    def frame_f0(self, wav: np.ndarray, p_len: int) -> np.ndarray:
        wav16 = resample(torch.from_numpy(wav.astype(np.float32))[None], self.sampling_rate, PRAAT_RATE)[0]
        # Frames at 100 fps that span the same time as p_len model frames (2/3 of them at 48 kHz).
        frames_100 = round(p_len * self.hop_length * (PRAAT_RATE // PRAAT_HOP) / self.sampling_rate)
        praat = self.with_settings(hop_length=PRAAT_HOP, sampling_rate=PRAAT_RATE, threshold=self.threshold)
        f0 = PmF0Predictor.frame_f0(praat, wav16.numpy(), frames_100)
        if frames_100 == p_len:
            return f0
        # The 48k branch's resize2d_f0: left-aligned linear stretch; frames touching unvoiced ones become 0.
        return resize_linear_voiced(f0, p_len)


class RawF0:
    """A predictor whose ``compute_f0_uv`` returns the raw F0 (0 Hz where unvoiced) and the voicing."""

    def __init__(self, predictor: F0Predictor):
        self.predictor = predictor

    def __repr__(self) -> str:
        return f"RawF0({self.predictor!r})"

    def compute_f0_uv(self, wav: np.ndarray, p_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(f0, uv)``: ``f0`` is 0 wherever ``uv`` is 0 (no interpolation)."""
        f0, uv = self.predictor.compute_f0_uv(wav, p_len)
        return f0 * uv, uv


def sovits3_predictor(predictor: F0Predictor) -> RawF0:
    """The F0 a 3.0 model is driven with: ``predictor``'s raw F0, and 3.0's own rule for ``pm``."""
    if type(predictor) is PmF0Predictor:
        predictor = Sovits3PmF0Predictor(hop_length=predictor.hop_length, sampling_rate=predictor.sampling_rate,
                                         threshold=predictor.threshold, pretrain_dir=predictor.pretrain_dir)
    return RawF0(predictor)
