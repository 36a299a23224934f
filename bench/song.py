"""A synthetic singing-like test signal: harmonic notes with vibrato, breath noise and short pauses."""

from __future__ import annotations

import numpy as np

SAMPLING_RATE = 44100
MELODY = (0, 2, 4, 5, 7, 9, 7, 5, 4, 2, 0, -3, -5, -3)  # semitones around A3


def synth_song(seconds: float, sr: int = SAMPLING_RATE, seed: int = 0) -> np.ndarray:
    """``seconds`` of mono float32 audio at ``sr``: notes of 0.4-1.6 s, a 0.25-0.6 s pause every 2-6 notes.

    Each note is eight harmonics (falling 1/k, with a slow formant-like sway) at a melody pitch,
    with 5.5 Hz vibrato of ±30 cents, attack/release ramps and a little noise; deterministic per seed.
    """
    rng = np.random.default_rng(seed)
    total = int(round(seconds * sr))
    out = np.zeros(total, dtype=np.float32)
    pos = 0
    notes_left = rng.integers(2, 7)
    phase = 0.0
    index = 0
    while pos < total:
        if notes_left == 0:
            pos += int(rng.uniform(0.25, 0.6) * sr)
            notes_left = rng.integers(2, 7)
            continue
        n = min(int(rng.uniform(0.4, 1.6) * sr), total - pos)
        out[pos:pos + n], phase = _note(220.0 * 2 ** (MELODY[index % len(MELODY)] / 12), n, sr, phase, rng)
        index += 1
        notes_left -= 1
        pos += n
    return out


def _note(f0: float, n: int, sr: int, phase: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    t = np.arange(n) / sr
    cents = 30 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
    inst = f0 * 2 ** (cents / 1200)
    phi = phase + 2 * np.pi * np.cumsum(inst) / sr
    sway = 1 + 0.3 * np.sin(2 * np.pi * 0.7 * t)
    wave = np.zeros(n)
    for k in range(1, 9):
        wave += np.sin(k * phi) * (sway if k in (2, 3) else 1.0) / k
    ramp = min(n // 4, int(0.04 * sr))
    env = np.ones(n)
    if ramp:
        env[:ramp] = np.linspace(0, 1, ramp)
        env[-ramp:] = np.linspace(1, 0, ramp)
    note = 0.25 * env * wave + 0.003 * rng.standard_normal(n)
    return note.astype(np.float32), float(phi[-1] % (2 * np.pi)) if n else phase
