"""Synthetic signals with a known F0, and a random-weight RMVPE file, for the F0 tests.

Every signal is deterministic (closed-form or a seeded PCG64 generator) so expected arrays
saved under tests/data stay valid.  Signals return ``(wav float32, f0_of_time)`` where
``f0_of_time(t)`` gives the true F0 in Hz at times ``t`` (seconds), 0 where unvoiced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

SR = 44100
HOP = 512

F0Curve = Callable[[np.ndarray], np.ndarray]


def _harmonics(f0_per_sample: np.ndarray, sr: int, n_harmonics: int) -> np.ndarray:
    """Sawtooth-like tone (harmonic k at 1/k) following ``f0_per_sample``; no aliasing."""
    phase = 2 * np.pi * np.cumsum(f0_per_sample) / sr
    out = np.zeros_like(phase)
    for k in range(1, n_harmonics + 1):
        audible = (k * f0_per_sample < 0.45 * sr)
        out += audible * np.sin(k * phase) / k
    return out


def tone(curve: F0Curve, seconds: float, sr: int = SR, n_harmonics: int = 10, peak: float = 0.5) -> np.ndarray:
    """A harmonic tone whose F0 follows ``curve`` (zero = silent), at ``peak`` amplitude."""
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = curve(t)
    wav = _harmonics(f0, sr, n_harmonics) * (f0 > 0)
    scale = np.abs(wav).max()
    return (peak * wav / scale if scale > 0 else wav).astype(np.float32)


def steady(hz: float) -> F0Curve:
    return lambda t: np.full_like(t, hz)


def glide(start_hz: float, end_hz: float, seconds: float) -> F0Curve:
    """Exponential glide (constant semitones per second)."""
    return lambda t: start_hz * (end_hz / start_hz) ** np.clip(t / seconds, 0, 1)


def vibrato(center_hz: float, depth_semitones: float, rate_hz: float) -> F0Curve:
    return lambda t: center_hz * 2 ** (depth_semitones / 12 * np.sin(2 * np.pi * rate_hz * t))


def gated(curve: F0Curve, start: float, end: float) -> F0Curve:
    """``curve`` between ``start`` and ``end`` seconds, silence elsewhere."""
    return lambda t: np.where((t >= start) & (t < end), curve(t), 0.0)


def pure_sine(hz: float, seconds: float, sr: int = SR, peak: float = 0.5) -> np.ndarray:
    return (peak * np.sin(2 * np.pi * hz * np.arange(int(round(seconds * sr))) / sr)).astype(np.float32)


def white_noise(seconds: float, sr: int = SR, seed: int = 0, peak_rms: float = 0.1) -> np.ndarray:
    return (peak_rms * np.random.default_rng(seed).standard_normal(int(round(seconds * sr)))).astype(np.float32)


def frame_truth(curve: F0Curve, n_frames: int, hop: int = HOP, sr: int = SR) -> np.ndarray:
    """True F0 at each frame's time ``i * hop / sr``."""
    return curve(np.arange(n_frames) * hop / sr)


def cents_error(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute error in cents (both positive)."""
    return np.abs(1200 * np.log2(np.asarray(estimate, dtype=np.float64) / truth))


def rmvpe_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random RMVPE (E2E0) state dict with the key set of the published files.

    Includes the unused ``unet.tf.*`` timbre-filter weights those files carry.  Scales keep
    activations in a sensible range so the salience varies between frames.
    """
    from svc.f0.rmvpe_net import ResidualConv, RmvpeNet

    with torch.device("meta"):  # shapes only: skip the default initialisation
        state = dict(RmvpeNet().state_dict())
        for i, width in enumerate((16, 32, 64, 128, 256)):
            for key, value in ResidualConv(width, width).state_dict().items():
                state[f"unet.tf.layers.{i}.{key}"] = value
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(state):
        value = state[key]
        if not value.is_floating_point():
            out[key] = torch.zeros(value.shape, dtype=value.dtype)  # num_batches_tracked
            continue
        noise = torch.randn(value.shape, generator=generator)
        if key.endswith("running_var"):
            out[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * noise
        elif value.ndim == 1 and key.endswith("weight"):
            out[key] = 1.0 + 0.1 * noise  # batch-norm gains
        elif value.ndim == 1:
            out[key] = 0.1 * noise  # biases
        else:
            fan_in = value[0].numel() if value.ndim > 1 else value.numel()
            out[key] = noise * (2.0 / fan_in) ** 0.5
    return out


def make_rmvpe_file(path: str | Path, seed: int = 0, official: bool = True) -> Path:
    """Write a random RMVPE: ``{'model': state_dict}`` (yxlllc, official) or bare (RVC)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = rmvpe_state_dict(seed)
    torch.save({"model": state} if official else state, path)
    return path


def reference_signal(sr: int = SR) -> np.ndarray:
    """2.2 s: silence, a vibrato glide with soft onset, silence, then noise (for reference agreement)."""
    def curve(t: np.ndarray) -> np.ndarray:
        return glide(180, 420, 1.2)(t - 0.3) * 2 ** (0.5 / 12 * np.sin(2 * np.pi * 5 * t))

    voiced = tone(gated(curve, 0.3, 1.5), 1.8, sr=sr)
    fade = np.clip((np.arange(voiced.shape[0]) / sr - 0.3) / 0.05, 0, 1).astype(np.float32)
    return np.concatenate([voiced * fade, white_noise(0.4, sr=sr, seed=1, peak_rms=0.05)])
