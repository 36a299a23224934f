"""Synthetic signals for slicer tests.

tests/data/slicer_reference.json holds the reference slicer's chunks for each case at -30/-40/-50 dB
(made by running so-vits-svc 4.1 ``inference/slicer.py`` on exactly these arrays).
"""

import numpy as np


def tone(sr: int, secs: float, f: float = 220.0, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(sr * secs)) / sr
    rng = np.random.default_rng(seed)
    return (amp * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def sil(sr: int, secs: float, amp: float = 0.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal(int(sr * secs))).astype(np.float32)


def cases() -> dict[str, tuple[np.ndarray, int]]:
    out = {}
    sr = 44100
    out["leading_trailing"] = (
        np.concatenate([sil(sr, 1.0), tone(sr, 6), sil(sr, 0.8, 1e-4), tone(sr, 7, 330), sil(sr, 2.0)]), sr)
    out["no_silence"] = (tone(16000, 12), 16000)
    out["all_silence"] = (sil(22050, 8, 1e-4), 22050)
    out["short_with_lead"] = (np.concatenate([sil(48000, 0.5), tone(48000, 1.5)]), 48000)
    out["tiny"] = (tone(16000, 0.01)[:200], 16000)
    sr = 32000
    out["long_gaps"] = (np.concatenate([
        sil(sr, 12), tone(sr, 6), sil(sr, 7, 1e-5), tone(sr, 5.5), sil(sr, 11), tone(sr, 6), sil(sr, 0.2),
        tone(sr, 1)]), sr)
    # Sections of varied level separated by short, not quite silent gaps.
    parts = []
    rng = np.random.default_rng(5)
    for k in range(12):
        parts.append(tone(24000, rng.uniform(0.5, 4), f=rng.uniform(100, 500), amp=rng.uniform(0.02, 0.5), seed=k))
        parts.append(sil(24000, rng.uniform(0.1, 1.5), amp=rng.uniform(0, 0.005), seed=100 + k))
    out["mixed"] = (np.concatenate(parts), 24000)
    return out
