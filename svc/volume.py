"""Loudness measures: frame RMS, the model's volume feature, and the loudness-envelope mix."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Frames per block in :func:`frame_rms`: the temporary buffer holds about block * hop samples
# (512 * 882 float64 ≈ 3.6 MB at 44.1 kHz with a 20 ms hop), whatever the input length.
_RMS_BLOCK_FRAMES = 512


def frame_rms(wav: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Centred RMS per frame (float64), equal to ``librosa.feature.rms(y=wav, ...)[0]``.

    Frame ``t`` covers ``wav[t*hop - frame_length//2 :][:frame_length]`` with zeros outside the
    signal (librosa's ``center=True, pad_mode="constant"``). Computed in blocks of frames from a
    strided view, so the extra memory does not grow with the input length.
    """
    if not hasattr(wav, "ndim"):  # (svc.audio.AudioFileSamples: read block by block, never whole)
        wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"frame_rms expects a 1-D signal, got shape {wav.shape}")
    half = frame_length // 2
    n = wav.shape[0]
    n_frames = max(1 + (n + 2 * half - frame_length) // hop_length, 0)
    out = np.empty(n_frames, dtype=np.float64)
    for first in range(0, n_frames, _RMS_BLOCK_FRAMES):
        last = min(first + _RMS_BLOCK_FRAMES, n_frames)
        # The samples (in unpadded coordinates) that frames [first, last) cover.
        lo = first * hop_length - half
        hi = (last - 1) * hop_length - half + frame_length
        seg = np.zeros(hi - lo, dtype=np.float64)
        src_lo, src_hi = max(lo, 0), min(hi, n)
        seg[src_lo - lo: src_hi - lo] = wav[src_lo:src_hi]
        seg *= seg
        windows = np.lib.stride_tricks.sliding_window_view(seg, frame_length)[::hop_length]
        out[first:last] = windows.mean(axis=-1)
    return np.sqrt(out)


def extract_volume(wav: torch.Tensor, hop_size: int) -> torch.Tensor:
    """The model's volume feature: RMS of each hop, centred; ``[N]`` or ``[1, N]`` → ``[N // hop]``.

    As 4.1-Stable's ``Volume_Extractor``: square, reflect-pad by ``(hop//2, (hop+1)//2)``,
    cut into non-overlapping hop-long frames (the incomplete last one dropped), mean, sqrt.
    """
    wav = torch.as_tensor(wav)
    if wav.dim() == 2 and wav.shape[0] == 1:
        wav = wav[0]
    if wav.dim() != 1:
        raise ValueError(f"extract_volume expects mono audio [N] or [1, N], got {tuple(wav.shape)}")
    n_frames = wav.shape[-1] // hop_size
    if n_frames == 0:  # shorter than a hop: no frame (and too short to reflect-pad)
        return wav.new_zeros(0, dtype=torch.float32)
    power = F.pad((wav.float() ** 2)[None, None], (hop_size // 2, (hop_size + 1) // 2), mode="reflect")[0, 0]
    return power[: n_frames * hop_size].reshape(n_frames, hop_size).mean(dim=1).sqrt()


def _envelope(wav: np.ndarray, sr: int, length: int) -> torch.Tensor:
    """Half-second RMS (frame ``sr//2*2``, hop ``sr//2``) linearly stretched to ``length`` samples."""
    rms = torch.from_numpy(frame_rms(np.asarray(wav, dtype=np.float32), sr // 2 * 2, sr // 2)).float()
    return F.interpolate(rms[None, None], size=length, mode="linear")[0, 0]


def change_rms(src: np.ndarray, src_sr: int, out: torch.Tensor, out_sr: int, rate: float) -> torch.Tensor:
    """Mix the loudness envelope of ``src`` into ``out`` (``[N]``); ``rate`` = 1 leaves ``out`` as is.

    As so-vits-svc's ``utils.change_rms`` (from RVC): ``out * rms_src^(1-rate) * rms_out^(rate-1)``
    with both envelopes measured over half-second frames and interpolated to ``len(out)``; the
    output envelope is floored at 1e-6. Unlike the reference, ``out`` is not modified in place.
    """
    out = torch.as_tensor(out)
    if rate == 1:
        return out
    n = out.shape[-1]
    rms_src = _envelope(src, src_sr, n).to(out.device)
    rms_out = _envelope(out.detach().float().cpu().numpy(), out_sr, n).to(out.device).clamp_min(1e-6)
    gain = rms_src.pow(torch.tensor(1 - rate)) * rms_out.pow(torch.tensor(rate - 1))
    return out * gain.to(out.dtype)
