"""Whisper's log-Mel front end: the exact recipe of openai/whisper ``audio.py``.

16 kHz input, 25 ms Hann window (n_fft 400), 10 ms hop, power spectrum, the librosa (Slaney)
Mel filterbank, log10, dynamic range clamped to 8 decades below the maximum, scaled to about
[-1, 1].  One encoder position covers two Mel frames, i.e. 320 samples (20 ms).
"""

from __future__ import annotations

import librosa
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
SAMPLES_PER_TOKEN = 2 * HOP_LENGTH  # conv2 has stride 2


def mel_filters(n_mels: int) -> torch.Tensor:
    """The ``[n_mels, 201]`` Slaney Mel filterbank whisper uses, computed with librosa."""
    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels))


def log_mel_spectrogram(audio: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Whisper log-Mel of ``audio`` ``(N,)`` at 16 kHz -> ``(n_mels, N // 160)``.

    The clamp to ``max - 8`` uses the maximum over the whole input, as whisper does.
    """
    window = torch.hann_window(N_FFT, device=audio.device)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    # whisper drops the last frame, so the frame count is N // 160
    magnitudes = stft[..., :-1].abs() ** 2
    mel = filters.to(audio.device) @ magnitudes
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def pad_or_trim(audio: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad or cut ``audio`` ``(N,)`` to exactly ``length`` samples."""
    if audio.shape[-1] > length:
        return audio[..., :length]
    return F.pad(audio, (0, length - audio.shape[-1]))
