"""Inputs and settings of the whole-pipeline comparison with so-vits-svc 4.1.

``tests/data/make_pipeline_reference.py`` runs the reference ``Svc.slice_inference`` on these
inputs and saves its output; ``tests/test_pipeline_reference.py`` runs ours and compares.
Both sides use the conftest models (``tiny41``, ``tinyvol``) and test ContentVec.

Every input is quantised to 16-bit steps (``k / 32768``, ``|x| < 0.5``): the reference writes each
chunk to a 16-bit WAV and reads it back before synthesis, and such samples survive that round
trip exactly, so both pipelines see identical samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from conftest import sung_note

from svc.options import ConvertOptions

REFERENCE_FILE = "pipeline_reference.npz"


@dataclass(frozen=True)
class Case:
    """One conversion: a model of the conftest ``checkpoints_dir``, an input and our options."""

    model: str
    sr: int
    options: dict[str, Any] = field(default_factory=dict)
    reference_extra: int = 0  # samples the reference's output is longer than ours (README: exact length)

    def convert_options(self) -> ConvertOptions:
        return ConvertOptions(speaker="bob", **self.options)


def quantise16(wav: np.ndarray) -> np.ndarray:
    """``wav`` rounded to multiples of 1/32768 (what a 16-bit WAV holds), as float32."""
    return (np.round(np.asarray(wav, np.float64) * 32768.0) / 32768.0).astype(np.float32)


def case_input(name: str, quantised: bool = True) -> tuple[np.ndarray, int]:
    """The mono input of case ``name`` and its rate."""
    sr = CASES[name].sr
    if name == "trailing_silence":
        # the slicer makes the last 0.8 s a silent chunk (silence at the end needs only 0.3 s)
        wav = np.concatenate([sung_note(1.0, sr, 250.0, 3), np.zeros(int(0.8 * sr), np.float32)])
    elif name == "input_16000":
        # a voiced chunk of 17600 samples (then silence): float rounding makes the reference's
        # per-chunk int(np.ceil(17600 / 16000 * 44100)) one sample too long
        wav = np.concatenate([sung_note(1.1, sr, 230.0, 5)[:16960], np.zeros(8960, np.float32)])
    elif name == "clip_crossfade":
        wav = sung_note(1.5, sr, 260.0, 2)
    elif name == "loudness_0.5":
        # a swell, so the input's loudness envelope visibly reshapes the output
        note = sung_note(1.2, sr, 200.0, 4)
        wav = note * np.linspace(0.1, 1.0, len(note), dtype=np.float32)
    else:
        wav = sung_note(1.2, sr, 220.0, 1)
    return (quantise16(wav) if quantised else wav.astype(np.float32)), sr


CASES: dict[str, Case] = {
    "pm_default": Case("tiny41", 44100),
    "transpose_5": Case("tiny41", 44100, {"transpose": 5}),
    "clip_crossfade": Case("tiny41", 44100, {"clip_seconds": 0.5, "crossfade_seconds": 0.1, "crossfade_keep": 0.75}),
    "trailing_silence": Case("tiny41", 44100, {"slice_db": -40.0}),
    "vol_embedding": Case("tinyvol", 44100),
    "loudness_0.5": Case("tiny41", 44100, {"loudness_mix": 0.5}),
    "dio": Case("tiny41", 44100, {"f0_method": "dio"}),
    "auto_f0": Case("tiny41", 44100, {"auto_f0": True}),
    "input_16000": Case("tiny41", 16000, reference_extra=1),
}


def reference_kwargs(options: ConvertOptions) -> dict[str, Any]:
    """The reference ``Svc.slice_inference`` arguments that mean the same as ``options``."""
    return {
        "spk": options.speaker, "tran": options.transpose, "slice_db": options.slice_db,
        "cluster_infer_ratio": 0, "auto_predict_f0": options.auto_f0, "noice_scale": options.noise_scale,
        "pad_seconds": options.pad_seconds, "clip_seconds": options.clip_seconds,
        "lg_num": options.crossfade_seconds, "lgr_num": options.crossfade_keep, "f0_predictor": options.f0_method,
        "enhancer_adaptive_key": options.enhancer_adaptive_key, "cr_threshold": options.cr_threshold,
        "loudness_envelope_adjustment": options.loudness_mix,
    }


def load_reference(path, name: str) -> np.ndarray:
    """The reference output of case ``name`` from the ``.npz`` at ``path`` (float64)."""
    with np.load(path) as data:
        return data[name].astype(np.float64) * float(data[f"{name}_scale"]) / 32767
