"""Audio helpers: resampling (and, at the edges of the program, file I/O)."""

from __future__ import annotations

import torch
import torchaudio.functional as AF


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample along the last axis the way so-vits-svc does.

    so-vits-svc uses ``torchaudio.transforms.Resample(orig, new)`` with its defaults (Hann-windowed
    sinc, width 6, rolloff 0.99); the functional form computes the same kernel.
    """
    if orig_sr == new_sr:
        return wav
    return AF.resample(wav, int(orig_sr), int(new_sr))
