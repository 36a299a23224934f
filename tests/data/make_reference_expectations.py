"""Regenerate tests/data/reference_*.npy by running the so-vits-svc reference implementation.

Not run by the test suite.  Usage (the reference sources are not part of this project):

    REF_SOVITS=/path/to/so-vits-svc-4.1 REF_SOVITS_40=/path/to/so-vits-svc-4.0 \
        python tests/data/make_reference_expectations.py

For every case it builds the fixture checkpoint with ``tests/model_fixtures.py`` (enc_q
included, so the reference loads it with strict=True), runs the reference
``SynthesizerTrn.infer`` with seed 52468 and saves the audio (and the F0 for predict_f0 cases).
The 4.0 reference never seeds; this script calls ``torch.manual_seed`` before its ``infer``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parent))  # tests/ for model_fixtures
sys.path.insert(0, str(DATA.parent.parent))  # the project root for svc

from model_fixtures import FRAMES, PARITY_CASES, make_checkpoint, make_inputs  # noqa: E402

SEED = 52468
NOISE_SCALE = 0.4
_REFERENCE_MODULES = ("models", "modules", "utils", "vdecoder", "hubert", "inference")
_imported_paths: list[str] = []


def import_reference(path: str):
    """Import the reference ``models`` module from ``path`` (stubbing imports inference does not use)."""
    for name in list(sys.modules):
        if name.split(".")[0] in _REFERENCE_MODULES:
            del sys.modules[name]
    for stub in ("faiss", "fairseq"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    # The reference imports its vocoder lazily, so its directory stays first on the path.
    sys.path[:] = [p for p in sys.path if p not in _imported_paths]
    _imported_paths.append(path)
    sys.path.insert(0, path)
    import models  # the reference's models.py

    return models


def run_case(ref_models, variant: str, predict_f0: bool, use_vol: bool, workdir: Path, fp16: bool = False,
             half_compute: bool = False):
    model_dir = make_checkpoint(workdir / variant, variant, enc_q=True, fp16=fp16)
    cfg = json.loads((model_dir / "config.json").read_text())
    net = ref_models.SynthesizerTrn(
        cfg["data"]["filter_length"] // 2 + 1, cfg["train"]["segment_size"] // cfg["data"]["hop_length"],
        **cfg["model"],
    )
    state = torch.load(model_dir / "G_100.pth", map_location="cpu", weights_only=True)["model"]
    net.load_state_dict(state, strict=True)
    net.eval()
    x = make_inputs(cfg, FRAMES)
    if half_compute:
        # what the reference's utils.load_checkpoint does with an fp16 file: the whole model is cast
        # to the file's dtype, so it computes in half precision even on the CPU
        net = net.half()
        x = {k: v.half() if v.is_floating_point() else v for k, v in x.items()}
    torch.manual_seed(SEED)
    with torch.no_grad():
        if variant == "4.0":
            audio = net.infer(x["c"], f0=x["f0"].clone(), uv=x["uv"], g=x["g"], noice_scale=NOISE_SCALE,
                              predict_f0=predict_f0)
            f0 = None
        else:
            audio, f0 = net.infer(x["c"], f0=x["f0"].clone(), uv=x["uv"], g=x["g"], noice_scale=NOISE_SCALE,
                                  seed=SEED, predict_f0=predict_f0, vol=x["vol"] if use_vol else None)
    return audio, f0


def main() -> None:
    refs = {"4.1": os.environ["REF_SOVITS"], "4.0": os.environ.get("REF_SOVITS_40")}
    with tempfile.TemporaryDirectory() as tmp:
        for version in ("4.1", "4.0"):
            if not refs[version]:
                continue
            ref_models = import_reference(refs[version])
            for case, (variant, predict_f0, use_vol) in PARITY_CASES.items():
                if (variant == "4.0") != (version == "4.0"):
                    continue
                audio, f0 = run_case(ref_models, variant, predict_f0, use_vol, Path(tmp))
                np.save(DATA / f"reference_{case}.npy", audio.numpy().astype(np.float32).reshape(-1))
                if predict_f0 and f0 is not None:
                    np.save(DATA / f"reference_{case}_f0.npy", f0.numpy().astype(np.float32).reshape(-1))
                print(case, tuple(audio.shape), float(audio.abs().max()))
            if version == "4.1":
                # an fp16 file (compress_model.py -hf): computed in fp32 from its weights, and as the
                # reference computes it (in half precision)
                for name, half in (("4.1_fp16", False), ("4.1_fp16_half", True)):
                    audio, _ = run_case(ref_models, "4.1", False, False, Path(tmp) / name, fp16=True,
                                        half_compute=half)
                    np.save(DATA / f"reference_{name}.npy", audio.float().numpy().reshape(-1))
                    print(name, tuple(audio.shape), float(audio.abs().max()))


if __name__ == "__main__":
    main()
