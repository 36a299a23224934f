"""Linear and mel spectrograms of the 4.1 training recipe (VITS ``mel_processing``).

The linear magnitude spectrogram is the posterior encoder's input (cached per clip by
``prepare``); the log-mel spectrogram is what the mel L1 loss compares.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import torch
import torch.nn.functional as F


def spectrogram(wav: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Magnitude STFT ``(B, N)`` -> ``(B, n_fft//2+1, frames)``.

    Reflect-padded by ``(n_fft-hop)/2`` on each side and not centred, so a clip of ``k*hop``
    samples gives ``k`` frames, aligned with the F0/content frames; ``sqrt(re²+im²+1e-6)``.
    """
    dtype = wav.dtype
    wav = wav.float()
    pad = (n_fft - hop) // 2
    wav = F.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]
    window = torch.hann_window(win, device=wav.device)
    spec = torch.stft(wav, n_fft, hop_length=hop, win_length=win, window=window, center=False,
                      normalized=False, onesided=True, return_complex=True)
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-6).to(dtype)


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)


def spec_to_mel(spec: torch.Tensor, sr: int, n_fft: int, n_mels: int, fmin: float,
                fmax: float | None) -> torch.Tensor:
    """Linear magnitudes ``(B, n_fft//2+1, T)`` -> natural-log mel ``(B, n_mels, T)`` (floor 1e-5)."""
    basis = torch.from_numpy(_mel_basis(sr, n_fft, n_mels, fmin, fmax)).to(spec.device, torch.float32)
    mel = torch.matmul(basis, spec.float())
    return torch.log(torch.clamp(mel, min=1e-5))


def mel_spectrogram(wav: torch.Tensor, sr: int, n_fft: int, hop: int, win: int, n_mels: int, fmin: float,
                    fmax: float | None) -> torch.Tensor:
    """``(B, N)`` audio -> log-mel ``(B, n_mels, N//hop)``."""
    return spec_to_mel(spectrogram(wav, n_fft, hop, win), sr, n_fft, n_mels, fmin, fmax)
