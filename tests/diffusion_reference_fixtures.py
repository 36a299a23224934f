"""Inputs and settings of the shallow/only-diffusion comparison with so-vits-svc 4.1's ``Svc.slice_inference``.

``tests/data/make_diffusion_reference.py`` runs the reference on these cases and saves its output;
``tests/test_diffusion_reference.py`` runs ours and compares.  Both sides use the conftest models
(``tiny41``, ``tinyvol``), the test ContentVec, the tiny diffusion model of ``diffusion_fixtures``
(in each model's ``diffusion/`` folder) and its NSF-HiFiGAN.  Inputs are 16-bit-quantised, as in
``pipeline_reference_fixtures``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from conftest import sung_note
from diffusion_fixtures import write_diffusion_model
from pipeline_reference_fixtures import quantise16, reference_kwargs

from svc.options import ConvertOptions

REFERENCE_FILE = "diffusion_reference.npz"
DEFAULT_METHOD, DEFAULT_SPEEDUP = "dpm-solver++", 10  # the fixture config's infer section
ONLY_DIR = "only_diffusion"  # tiny41/only_diffusion/: a model for only diffusion (not found automatically)
ONLY_TIMESTEPS = 100


def write_case_models(model_dir) -> None:
    """The diffusion models the cases use, inside a conftest model folder."""
    if not (model_dir / "diffusion").is_dir():
        write_diffusion_model(model_dir / "diffusion")
    write_diffusion_model(model_dir / ONLY_DIR, model_timesteps=ONLY_TIMESTEPS)


@dataclass(frozen=True)
class Case:
    """One conversion: a conftest model, our options, and the sampler the reference's config is set to."""

    model: str = "tiny41"
    options: dict[str, Any] = field(default_factory=dict)
    method: str = DEFAULT_METHOD
    speedup: int = DEFAULT_SPEEDUP
    diffusion_dir: str = "diffusion"  # the diffusion model's folder inside the model's folder

    def convert_options(self) -> ConvertOptions:
        sampler = {}
        if (self.method, self.speedup) != (DEFAULT_METHOD, DEFAULT_SPEEDUP):
            sampler = {"diffusion_method": self.method, "diffusion_speedup": self.speedup}
        mode = {} if self.options.get("only_diffusion") else {"shallow_diffusion": True}
        return ConvertOptions(speaker="bob", **mode, **sampler, **self.options)


CASES: dict[str, Case] = {
    "shallow_default": Case(),  # the config's sampler (dpm-solver++, speedup 10), k_step 100
    "shallow_k20": Case(options={"k_step": 20}),  # 2 solver steps: both first order
    "ddim": Case(options={"k_step": 50}, method="ddim"),
    "pndm": Case(options={"k_step": 50}, method="pndm"),
    "dpm_solver": Case(method="dpm-solver"),
    "unipc": Case(method="unipc"),
    "ddpm_speedup1": Case(options={"k_step": 20}, speedup=1),
    "second_encoding": Case(options={"k_step": 50, "second_encoding": True}),
    "vol_embedding": Case("tinyvol", {"k_step": 50}),
    "clip_crossfade": Case(options={"k_step": 30, "clip_seconds": 0.5, "crossfade_seconds": 0.1}),
    # A 100-step model: a random denoiser cannot undo 1000 steps from pure noise (the mel explodes).
    "only_diffusion": Case(options={"only_diffusion": True}, diffusion_dir=ONLY_DIR),
}


def case_input(name: str) -> tuple[np.ndarray, int]:
    """The (16-bit-quantised) mono input of case ``name`` at 44.1 kHz."""
    sr = 44100
    seconds = 1.5 if name == "clip_crossfade" else 1.0
    return quantise16(sung_note(seconds, sr, 240.0, 3)), sr


def diffusion_reference_kwargs(options: ConvertOptions) -> dict[str, Any]:
    """The reference ``Svc.slice_inference`` arguments that mean the same as ``options``."""
    return {**reference_kwargs(options), "k_step": options.k_step, "second_encoding": options.second_encoding}


def load_reference(path, name: str) -> np.ndarray:
    """The reference output of case ``name`` from the ``.npz`` at ``path`` (float64)."""
    with np.load(path) as data:
        return data[name].astype(np.float64) * float(data[f"{name}_scale"]) / 32767
