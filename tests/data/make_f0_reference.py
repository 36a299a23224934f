"""Regenerate tests/data/f0_reference.npz by running so-vits-svc 4.1's own F0 predictors.

Not part of the suite: it needs the reference source at /work/ref/so-vits-svc-4.1 (never
committed).  torchcrepe dithers with NumPy's global generator, so that is seeded with our
``DITHER_SEED`` (0) before each crepe call.  Run from the repository root:
``python tests/data/make_f0_reference.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "/work/ref/so-vits-svc-4.1"
SCRATCH = Path("/tmp/f0_reference_scratch")


def reference_classes():
    sys.path.insert(0, REFERENCE)
    from modules.F0Predictor.CrepeF0Predictor import CrepeF0Predictor
    from modules.F0Predictor.DioF0Predictor import DioF0Predictor
    from modules.F0Predictor.HarvestF0Predictor import HarvestF0Predictor
    from modules.F0Predictor.PMF0Predictor import PMF0Predictor
    from modules.F0Predictor.RMVPEF0Predictor import RMVPEF0Predictor

    return PMF0Predictor, DioF0Predictor, HarvestF0Predictor, CrepeF0Predictor, RMVPEF0Predictor


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    from f0_fixtures import gated, make_rmvpe_file, reference_signal, tone, vibrato

    torch.set_num_threads(2)
    make_rmvpe_file(SCRATCH / "pretrain" / "rmvpe.pt")
    os.chdir(SCRATCH)  # the reference loads pretrain/rmvpe.pt from the working directory
    pm, dio, harvest, crepe, rmvpe = reference_classes()
    arrays: dict[str, np.ndarray] = {}

    def record(key: str, predictor, wav: np.ndarray) -> None:
        np.random.seed(0)
        f0, uv = predictor.compute_f0_uv(wav)
        arrays[f"{key}_f0"] = np.asarray(f0, dtype=np.float64)
        arrays[f"{key}_uv"] = np.asarray(uv, dtype=np.float32)

    for sr, hop in ((44100, 512), (32000, 320)):
        wav = reference_signal(sr)
        record(f"pm_{sr}_{hop}", pm(hop_length=hop, sampling_rate=sr), wav)
        record(f"dio_{sr}_{hop}", dio(hop_length=hop, sampling_rate=sr), wav)
        record(f"harvest_{sr}_{hop}", harvest(hop_length=hop, sampling_rate=sr), wav)
        tiny = crepe(hop_length=hop, sampling_rate=sr, device="cpu", threshold=0.05, model="tiny")
        record(f"crepe-tiny_{sr}_{hop}", tiny, wav)
    strict = crepe(hop_length=512, sampling_rate=44100, device="cpu", threshold=0.3, model="tiny")
    record("crepe-tiny-t0.3_44100_512", strict, reference_signal(44100))
    full = crepe(hop_length=512, sampling_rate=44100, device="cpu", threshold=0.05, model="full")
    record("crepe_vibrato", full, tone(vibrato(330.0, 0.5, 5.0), 0.8))

    wav = tone(gated(vibrato(300, 1, 5), 0.2, 0.9), 1.0)
    for threshold in (0.05, 0.97):
        predictor = rmvpe(hop_length=512, sampling_rate=44100, device="cpu", threshold=threshold)
        record(f"rmvpe_thr{threshold}", predictor, wav)
    from torchaudio.transforms import Resample

    audio16k = Resample(44100, 16000, lowpass_filter_width=128)(torch.FloatTensor(wav)[None])
    net = predictor.rmvpe
    arrays["rmvpe_salience"] = net.mel2hidden(net.mel_extractor(audio16k, center=True))[0].numpy()
    np.savez_compressed(ROOT / "tests" / "data" / "f0_reference.npz", **arrays)


if __name__ == "__main__":
    main()
