"""Regenerate tests/data/diffusion_reference.npz by running so-vits-svc 4.1's shallow and only diffusion.

Not run by the test suite.  Usage (the reference sources are not part of this project):

    REF_SOVITS=/path/to/so-vits-svc-4.1 python tests/data/make_diffusion_reference.py [--measure]

For every case of ``tests/diffusion_reference_fixtures.py`` it builds the conftest models, the test
ContentVec, the tiny diffusion model and its NSF-HiFiGAN, runs a fresh reference ``Svc``
(``shallow_diffusion`` or ``only_diffusion``, the case's sampler written into its loaded config)
through ``slice_inference`` and saves the output as 16-bit integers scaled to its peak
(``<case>_scale``).  ``--measure`` also runs our pipeline and prints the SNR.

Shims, besides those of ``make_pipeline_reference.py`` (stubbed fairseq/faiss, our ContentVec behind
the reference's encoder interface, torchaudio loading through soundfile):

* The reference builds its vocoder lazily on the first chunk, and building it draws from the global
  RNG between the diffusion and the vocoder's own draws (so the first chunk after loading differs
  from every later identical one).  The vocoder is built before converting, so every chunk is like
  the later ones.
* Only diffusion never seeds in the reference; ``infer`` is wrapped to seed 52468 first (what we
  do per piece).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import torch

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA))
sys.path.insert(0, str(DATA.parent))  # tests/ for the fixtures
sys.path.insert(0, str(DATA.parent.parent))  # the project root for svc

from diffusion_fixtures import write_diffusion_vocoder  # noqa: E402
from diffusion_reference_fixtures import (  # noqa: E402
    CASES,
    REFERENCE_FILE,
    case_input,
    diffusion_reference_kwargs,
    write_case_models,
)
from make_pipeline_reference import build_fixtures, import_reference  # noqa: E402

from svc import VitsSvc  # noqa: E402
from svc.encoders import load_encoder  # noqa: E402
from svc.options import DEFAULT_SEED  # noqa: E402


def build_all(root: Path) -> tuple[Path, Path]:
    pretrain, checkpoints = build_fixtures(root)
    write_diffusion_vocoder(pretrain)
    (root / "pretrain").mkdir(exist_ok=True)
    for model in ("tiny41", "tinyvol"):
        write_case_models(checkpoints / model)
    return pretrain, checkpoints


def reference_svc(infer_tool, model_dir: Path, case):
    only = bool(case.options.get("only_diffusion"))
    svc = infer_tool.Svc(str(model_dir / "G_100.pth"), str(model_dir / "config.json"), device="cpu",
                         diffusion_model_path=str(model_dir / case.diffusion_dir / "model_100.pt"),
                         diffusion_config_path=str(model_dir / case.diffusion_dir / "config.yaml"),
                         shallow_diffusion=not only, only_diffusion=only)
    svc.diffusion_args["infer"]["method"] = case.method  # DotDict attribute reads copy; write the dict itself
    svc.diffusion_args["infer"]["speedup"] = case.speedup
    from vdecoder.nsf_hifigan.models import load_model

    nsf = svc.vocoder.vocoder
    nsf.model, nsf.h = load_model(nsf.model_path, device="cpu")
    if only:
        infer = svc.infer

        def seeded_infer(*args, **kwargs):
            torch.manual_seed(DEFAULT_SEED)
            return infer(*args, **kwargs)

        svc.infer = seeded_infer
    return svc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="also run our pipeline and print the SNR")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pretrain, checkpoints = build_all(root)
        infer_tool = import_reference(os.environ["REF_SOVITS"], load_encoder("vec256l9", pretrain).eval())
        os.chdir(root)  # the diffusion config's vocoder.ckpt is relative to the working directory
        arrays: dict[str, np.ndarray] = {}
        for name, case in CASES.items():
            wav, sr = case_input(name)
            wav_path = root / f"{name}.wav"
            soundfile.write(wav_path, wav, sr, subtype="FLOAT")
            svc = reference_svc(infer_tool, checkpoints / case.model, case)
            options = case.convert_options()
            reference = np.asarray(svc.slice_inference(str(wav_path), **diffusion_reference_kwargs(options)))
            scale = float(np.abs(reference).max()) or 1.0
            arrays[name] = np.round(reference / scale * 32767).astype(np.int16)
            arrays[f"{name}_scale"] = np.float64(scale)
            if args.measure:
                session = VitsSvc(device="cpu", pretrain_dir=pretrain)
                if case.diffusion_dir == "diffusion":
                    session.load(checkpoints / case.model)
                else:
                    session.load_diffusion(checkpoints / case.model / case.diffusion_dir)
                ours = session.convert(wav, sr, options).audio
                n = min(len(ours), len(reference))
                err = np.sum((ours[:n] - reference[:n]) ** 2)
                print(f"{name:16s} len ours {len(ours)} ref {len(reference)}  "
                      f"SNR {10 * np.log10(np.sum(reference[:n] ** 2) / max(err, 1e-30)):.1f} dB  "
                      f"max|diff| {np.abs(ours[:n] - reference[:n]).max():.3g}  peak {scale:.3g}")
        np.savez_compressed(DATA / REFERENCE_FILE, **arrays)


if __name__ == "__main__":
    main()
