"""Fixtures for the training tests: a synthetic two-speaker dataset and reference-layout D files.

``reference_discriminator_shapes`` lists so-vits-svc 4.1's ``MultiPeriodDiscriminator`` tensors
(written down from its architecture, independently of ``svc.train.model``): one scale
discriminator and period discriminators 2, 3, 5, 7, 11, every convolution weight-normed
(``weight_g``/``weight_v``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SR = 44100


def voice(seconds: float, f0: float, formants: tuple[float, ...], seed: int, sr: int = SR) -> np.ndarray:
    """A sung vowel stand-in: harmonics of a vibrato tone shaped by formant peaks, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    freq = f0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.0 * t) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    wav = np.zeros_like(t)
    for k in range(1, 25):
        gain = sum(np.exp(-(((k * freq) - f) / 150.0) ** 2) for f in formants) + 0.02
        wav += gain * np.sin(k * phase)
    wav = 0.5 * wav / np.abs(wav).max() + 0.01 * rng.standard_normal(len(t))
    return wav.astype(np.float32)


SPEAKER_VOICES = {"alto": (220.0, (800.0, 1200.0, 2600.0)), "bass": (110.0, (450.0, 1600.0, 2400.0))}


def write_dataset(root: Path, clips_per_speaker: int = 3, seconds: float = 1.0) -> Path:
    """DATASET/<speaker>/take<i>.wav (44.1 kHz, 16-bit) for two synthetic voices; returns ``root``."""
    for s, (speaker, (f0, formants)) in enumerate(SPEAKER_VOICES.items()):
        folder = root / speaker
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(clips_per_speaker):
            wav = voice(seconds + 0.1 * i, f0 * (1 + 0.04 * i), formants, seed=10 * s + i)
            sf.write(folder / f"take{i}.wav", wav, SR, subtype="PCM_16")
    return root


def reference_discriminator_shapes(divisor: int = 1) -> dict[str, tuple[int, ...]]:
    """Key -> shape of so-vits-svc 4.1's ``D_*.pth`` model state, in its order.

    ``divisor`` divides every channel and group count (the cheap discriminator of the tests).
    """
    shapes: dict[str, tuple[int, ...]] = {}
    d = divisor

    def conv(prefix: str, out_ch: int, in_per_group: int, kernel: tuple[int, ...]) -> None:
        shapes[prefix + "bias"] = (out_ch,)
        shapes[prefix + "weight_g"] = (out_ch,) + (1,) * (len(kernel) + 1)
        shapes[prefix + "weight_v"] = (out_ch, in_per_group, *kernel)

    # (out channels, in channels, groups, kernel) of the scale discriminator
    scale = [(16, 1, 1, 15), (64, 16, 4, 41), (256, 64, 16, 41), (1024, 256, 64, 41), (1024, 1024, 256, 41),
             (1024, 1024, 1, 5)]
    for i, (out_ch, in_ch, groups, k) in enumerate(scale):
        in_ch = 1 if i == 0 else in_ch // d
        conv(f"discriminators.0.convs.{i}.", out_ch // d, in_ch // max(1, groups // d), (k,))
    conv("discriminators.0.conv_post.", 1, 1024 // d, (3,))
    period = [(32, 1), (128, 32), (512, 128), (1024, 512), (1024, 1024)]
    for n in range(1, 6):
        for i, (out_ch, in_ch) in enumerate(period):
            conv(f"discriminators.{n}.convs.{i}.", out_ch // d, 1 if i == 0 else in_ch // d, (5, 1))
        conv(f"discriminators.{n}.conv_post.", 1, 1024 // d, (3, 1))
    return shapes


def adamw_state(shapes: list[tuple[int, ...]], steps: int, seed: int = 0) -> dict:
    """An AdamW ``state_dict`` after ``steps`` steps for parameters of ``shapes``.

    Each moment tensor is filled with a value that identifies its parameter index, so a
    loader that pairs states with the wrong parameters is caught by the values, not only shapes.
    """
    state = {i: {"step": torch.tensor(float(steps)), "exp_avg": torch.full(s, 1e-3 * (i + seed + 1)),
                 "exp_avg_sq": torch.full(s, 1e-6 * (i + 1))} for i, s in enumerate(shapes)}
    group = {"lr": 1e-4, "betas": (0.8, 0.99), "eps": 1e-9, "weight_decay": 0.01, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "decoupled_weight_decay": True, "initial_lr": 1e-4, "params": list(range(len(shapes)))}
    return {"state": state, "param_groups": [group]}
