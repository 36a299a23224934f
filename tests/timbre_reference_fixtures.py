"""Inputs and settings of the timbre-control comparison with so-vits-svc 4.1 (kmeans, retrieval, speaker mix).

``tests/data/make_timbre_reference.py`` runs the reference ``Svc.slice_inference`` on these cases
and saves its output in ``tests/data/timbre_reference.npz``; ``tests/test_timbre_reference.py``
runs ours and compares.  Both sides use the conftest model ``tiny41`` with the test ContentVec,
the cluster model and feature index of ``write_timbre_files`` and 16-bit-quantised inputs (see
``pipeline_reference_fixtures``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from conftest import SPEAKERS, sung_note
from pipeline_reference_fixtures import quantise16
from timbre_fixtures import write_feature_index, write_kmeans

from svc.options import ConvertOptions

REFERENCE_FILE = "timbre_reference.npz"
KMEANS_NAME = "kmeans_10000.pt"
INDEX_NAME = "feature_and_index.pkl"

# A ramp from alice to carol over the first half, bob fading in over the second half.
RAMP_MIX = {
    "alice": [[0.0, 0.5, 1.0, 0.0], [0.5, 1.0, 0.0, 0.0]],
    "bob": [[0.0, 0.5, 0.0, 0.0], [0.5, 1.0, 0.0, 1.0]],
    "carol": [[0.0, 0.5, 0.0, 1.0], [0.5, 1.0, 1.0, 0.2]],
}
STATIC_MIX = {"alice": [[0.0, 1.0, 0.3, 0.3]], "bob": [[0.0, 1.0, 0.7, 0.7]], "carol": [[0.0, 1.0, 0.0, 0.0]]}


@dataclass(frozen=True)
class Case:
    """One conversion of ``tiny41`` (speaker bob unless a mix is given)."""

    options: dict[str, Any] = field(default_factory=dict)
    timbre_file: str | None = None  # KMEANS_NAME or INDEX_NAME
    mix: dict[str, list[list[float]]] | None = None
    reference_extra: int = 0

    def convert_options(self, folder: Path) -> ConvertOptions:
        extra: dict[str, Any] = {}
        if self.timbre_file:
            extra["cluster"] = str(folder / self.timbre_file)
        if self.mix:
            extra["spk_mix"] = self.mix
        return ConvertOptions(speaker="bob", **self.options, **extra)


CASES: dict[str, Case] = {
    "kmeans_0.5": Case({"cluster_ratio": 0.5}, KMEANS_NAME),
    "kmeans_1.0_transpose": Case({"cluster_ratio": 1.0, "transpose": 4}, KMEANS_NAME),
    "retrieval_0.7": Case({"cluster_ratio": 0.7}, INDEX_NAME),
    "retrieval_1.0_clip": Case({"cluster_ratio": 1.0, "clip_seconds": 0.5, "crossfade_seconds": 0.1}, INDEX_NAME),
    "spkmix_ramp_silence": Case(mix=RAMP_MIX),
    "spkmix_static": Case(mix=STATIC_MIX),
    "spkmix_ramp_clip": Case({"clip_seconds": 0.5, "crossfade_seconds": 0.1}, mix=RAMP_MIX),
}


def case_input(name: str) -> tuple[np.ndarray, int]:
    """The mono input of case ``name`` (44.1 kHz, quantised to 16-bit steps)."""
    sr = 44100
    if name == "spkmix_ramp_silence":
        # voiced, silent (a silent chunk of its own), voiced: the mix timeline spans all three
        wav = np.concatenate([sung_note(0.9, sr, 240.0, 6), np.zeros(int(0.7 * sr), np.float32),
                              sung_note(0.8, sr, 300.0, 7)])
    elif name.endswith("clip"):
        wav = sung_note(1.5, sr, 260.0, 2)
    else:
        wav = sung_note(1.2, sr, 220.0, 1)
    return quantise16(wav), sr


def write_timbre_files(folder: Path) -> None:
    """The cluster model and feature index of the tiny41 model's 3 speakers (256-dim)."""
    write_kmeans(folder / KMEANS_NAME, SPEAKERS, dim=256, n_clusters=48, seed=3)
    write_feature_index(folder / INDEX_NAME, [0, 1, 2], dim=256, n_vectors=400, seed=5)


def reference_mix(mix: dict[str, list[list[float]]]) -> dict[int, list[list[float]]]:
    """The same mix as so-vits-svc's ``spk_mix_map`` (keys are speaker ids)."""
    return {SPEAKERS.index(name): segs for name, segs in mix.items()}


def load_reference(path, name: str) -> np.ndarray:
    with np.load(path) as data:
        return data[name].astype(np.float64) * float(data[f"{name}_scale"]) / 32767
