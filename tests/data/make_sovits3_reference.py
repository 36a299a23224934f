"""Regenerate tests/data/sovits3_reference.npz by running the so-vits-svc 3.0 reference code.

Not run by the test suite.  Usage (the reference sources are not part of this project):

    REF_SOVITS3_32K=/path/to/so-vits-svc@Mera-SVC-32k REF_SOVITS3_48K=/path/to/so-vits-svc@Mera-SVC-48k \
        python tests/data/make_sovits3_reference.py

Synthesis: for every case it builds the fixture checkpoint with ``tests/sovits3_fixtures.py``
(enc_q included, so the reference loads it with strict=True), runs the reference
``SynthesizerTrn.infer(c, f0=f0, g=sid)`` right after ``torch.manual_seed(SEED)`` (3.0 never
seeds by itself) and stores the audio.

F0: the reference ``get_f0`` of each branch (Praat at 16 kHz, p_len = 2 x units; the 48k
branch then ``resize2d_f0`` to 3 x units) on ``f0_fixtures.reference_signal`` brought to the
model rate and back to 16 kHz as the reference does (torchaudio), stored per branch.  3.0's
``get_f0`` casts with ``np.int``, which current NumPy removed; the script restores the alias.
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
import torchaudio

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parent))  # tests/ for the fixtures
sys.path.insert(0, str(DATA.parent.parent))  # the project root for svc

from f0_fixtures import reference_signal  # noqa: E402
from sovits3_fixtures import FRAMES, make_sovits3_checkpoint, sovits3_inputs  # noqa: E402

from svc.audio import resample  # noqa: E402

SEED = 52468
# case -> (rate, speakers, speaker id)
CASES = {
    "32k": (32000, ("nen", "paimon", "yunhao"), 1),
    "48k": (48000, ("nen", "paimon", "yunhao"), 1),
    "32k_1spk": (32000, ("solo",), 0),
}
_REFERENCE_MODULES = ("models", "modules", "utils", "vdecoder", "hubert", "inference", "attentions", "commons")


def import_reference(path: str) -> types.ModuleType:
    """Import the reference's ``models`` from ``path`` (stubbing what inference does not use)."""
    for name in list(sys.modules):
        if name.split(".")[0] in _REFERENCE_MODULES:
            del sys.modules[name]
    for stub in ("torchvision", "maad"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    sys.path[:] = [p for p in sys.path if not p.startswith("/") or "Mera-SVC" not in p]
    sys.path.insert(0, path)
    import models  # the reference's models.py

    return models


def run_case(ref_models: types.ModuleType, rate: int, speakers: tuple[str, ...], sid: int, workdir: Path):
    model_dir = make_sovits3_checkpoint(workdir / f"{rate}-{len(speakers)}", rate, speakers=speakers)
    cfg = json.loads((model_dir / "config.json").read_text())
    net = ref_models.SynthesizerTrn(cfg["data"]["filter_length"] // 2 + 1,
                                    cfg["train"]["segment_size"] // cfg["data"]["hop_length"], **cfg["model"])
    state = torch.load(model_dir / "model.pth", map_location="cpu", weights_only=True)["model"]
    net.load_state_dict(state, strict=True)
    net.eval()
    x = sovits3_inputs(FRAMES)
    torch.manual_seed(SEED)
    with torch.no_grad():
        audio = net.infer(x["c"], f0=x["f0"].clone(), g=torch.LongTensor([[sid]]))
    return audio.numpy().astype(np.float32).reshape(-1)


def reference_f0(path: str, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(model-rate input, the branch's F0 for it)."""
    import_reference(path)
    np.int = int  # 3.0 was written for NumPy < 1.24
    if rate == 32000:
        from inference.infer_tool_grad import get_f0
        resize = None
    else:
        from inference.infer_tool import get_f0
        from inference.infer_tool import resize2d_f0 as resize
    wav16 = reference_signal(16000)
    wav = resample(torch.from_numpy(wav16)[None], 16000, rate)[0]
    n = wav.shape[0] - wav.shape[0] % (rate // 50)  # whole content frames, as the pipeline pads to
    wav = wav[:n]
    source = torchaudio.functional.resample(wav[None], rate, 16000)[0].numpy()
    units = source.shape[0] // 320
    _, f0 = get_f0(source, units * 2)
    if resize is not None:
        f0 = resize(f0, units * 3)
    return wav.numpy().astype(np.float32), np.asarray(f0, dtype=np.float32)


def main() -> None:
    refs = {32000: os.environ["REF_SOVITS3_32K"], 48000: os.environ["REF_SOVITS3_48K"]}
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rate, path in refs.items():
            ref_models = import_reference(path)
            for case, (case_rate, speakers, sid) in CASES.items():
                if case_rate == rate:
                    out[f"audio_{case}"] = run_case(ref_models, rate, speakers, sid, Path(tmp))
                    print(case, out[f"audio_{case}"].shape, float(np.abs(out[f"audio_{case}"]).max()))
            tag = f"{rate // 1000}k"
            out[f"pm_f0_{tag}"] = reference_f0(path, rate)[1]
            print("pm", tag, out[f"pm_f0_{tag}"].shape, int((out[f"pm_f0_{tag}"] > 0).sum()), "voiced")
    np.savez_compressed(DATA / "sovits3_reference.npz", **out)


if __name__ == "__main__":
    main()
