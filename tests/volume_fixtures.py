"""Deterministic signals for loudness tests (the reference's outputs on them are in tests/data/)."""

import numpy as np


def volume_input() -> np.ndarray:
    """3000 samples: a rising sine plus a little seeded noise."""
    rng = np.random.default_rng(11)
    ramp = np.linspace(0, 1, 3000)
    return (0.3 * np.sin(np.arange(3000) / 7) * ramp + 0.01 * rng.standard_normal(3000)).astype(np.float32)


def change_rms_inputs() -> tuple[np.ndarray, int, np.ndarray, int]:
    """A 1.7 s source at 4000 Hz and a differently shaped output at 6000 Hz."""
    t1 = np.arange(int(4000 * 1.7)) / 4000
    src = (np.sin(2 * np.pi * 200 * t1) * (0.05 + 0.5 * np.abs(np.sin(t1 * 4)))).astype(np.float32)
    t2 = np.arange(int(6000 * 1.7)) / 6000
    out = (0.2 * np.sin(2 * np.pi * 300 * t2) * (0.5 + 0.5 * np.cos(t2 * 5))).astype(np.float32)
    return src, 4000, out, 6000
