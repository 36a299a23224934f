"""Regenerate tests/data/pipeline_reference.npz by running so-vits-svc 4.1's whole pipeline.

Not run by the test suite.  Usage (the reference sources are not part of this project):

    REF_SOVITS=/path/to/so-vits-svc-4.1 python tests/data/make_pipeline_reference.py [--measure]

For every case of ``tests/pipeline_reference_fixtures.py`` it builds the conftest model and test
ContentVec, runs a fresh reference ``Svc`` (``slice_inference`` -> ``infer``) on the case's input
and saves the output as 16-bit integers scaled to the case's peak (``<case>_scale``; at most
``scale / 65534`` from the exact value, about 1.4e-5).  ``--measure`` also runs our pipeline and
prints the differences (with the 16-bit-quantised inputs the test uses, and with unquantised ones).

The reference cannot run unchanged here, so this script shims it:

* ``fairseq`` and ``faiss`` are stubbed; the speech encoder the reference builds is replaced by an
  adapter around *our* ContentVec encoder's ``forward`` (fed the reference's own 16 kHz audio), so
  both sides use the same encoder, which its own tests compare with independent implementations.
* ``torchaudio.set_audio_backend`` (gone from torchaudio) is a no-op, and ``torchaudio.load`` reads
  with soundfile (float32 ``[channels, N]``, as torchaudio's soundfile backend returned).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parent))  # tests/ for the fixtures
sys.path.insert(0, str(DATA.parent.parent))  # the project root for svc

from conftest import FAST_41, SPEAKERS, write_test_contentvec  # noqa: E402
from model_fixtures import make_checkpoint  # noqa: E402
from pipeline_reference_fixtures import CASES, REFERENCE_FILE, case_input, reference_kwargs  # noqa: E402

from svc import VitsSvc  # noqa: E402
from svc.encoders import load_encoder  # noqa: E402


class EncoderAdapter:
    """Stands in for the reference's ``SpeechEncoder``: ``encoder(wav16k [N]) -> [1, dim, frames]``."""

    def __init__(self, encoder: torch.nn.Module):
        self.encoder_module = encoder

    def encoder(self, wav16k: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder_module(wav16k.float().view(1, -1))


def _soundfile_load(path, *args, **kwargs):
    data, sr = soundfile.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(np.ascontiguousarray(data.T)), sr


def import_reference(path: str, encoder: torch.nn.Module):
    """The reference's ``inference.infer_tool`` module, shimmed to run here."""
    for stub in ("faiss", "fairseq"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    torchaudio.set_audio_backend = lambda backend: None
    torchaudio.load = _soundfile_load
    sys.path.insert(0, path)
    import utils  # the reference's utils.py
    from inference import infer_tool

    utils.get_speech_encoder = lambda name, device=None, **kwargs: EncoderAdapter(encoder)
    return infer_tool


def build_fixtures(root: Path) -> tuple[Path, Path]:
    """The conftest ``pretrain_dir`` and ``checkpoints_dir`` (only the models the cases use)."""
    pretrain, checkpoints = root / "pretrain", root / "checkpoints"
    pretrain.mkdir()
    write_test_contentvec(pretrain / "checkpoint_best_legacy_500.pt")
    make_checkpoint(checkpoints / "tiny41", "4.1", speakers=SPEAKERS, **FAST_41)
    make_checkpoint(checkpoints / "tinyvol", "vol_embedding", speakers=SPEAKERS, **FAST_41)
    return pretrain, checkpoints


def run_reference(infer_tool, model_dir: Path, name: str, workdir: Path) -> np.ndarray:
    case = CASES[name]
    wav, sr = case_input(name)
    wav_path = workdir / f"{name}.wav"
    soundfile.write(wav_path, wav, sr, subtype="FLOAT")  # float, so the file holds exactly `wav`
    svc = infer_tool.Svc(str(model_dir / "G_100.pth"), str(model_dir / "config.json"), device="cpu")
    return np.asarray(svc.slice_inference(str(wav_path), **reference_kwargs(case.convert_options())))


def report(name: str, ours: np.ndarray, reference: np.ndarray, label: str) -> None:
    n = min(len(ours), len(reference))
    diff = np.abs(ours[:n].astype(np.float64) - reference[:n])
    print(f"{name:18s} {label:11s} len ours {len(ours)} ref {len(reference)}  max|diff| {diff.max():.3g}  "
          f"mean|diff| {diff.mean():.3g}  max|ref| {np.abs(reference).max():.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="also run our pipeline and print differences")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pretrain, checkpoints = build_fixtures(root)
        infer_tool = import_reference(os.environ["REF_SOVITS"], load_encoder("vec256l9", pretrain).eval())
        os.chdir(root)  # the reference looks for optional files relative to the working directory
        arrays: dict[str, np.ndarray] = {}
        for name, case in CASES.items():
            reference = run_reference(infer_tool, checkpoints / case.model, name, root)
            scale = float(np.abs(reference).max()) or 1.0
            arrays[name] = np.round(reference / scale * 32767).astype(np.int16)
            arrays[f"{name}_scale"] = np.float64(scale)
            if args.measure:
                session = VitsSvc(device="cpu", pretrain_dir=pretrain)
                session.load(checkpoints / case.model)
                for quantised in (True, False):
                    wav, sr = case_input(name, quantised)
                    ours = session.convert(wav, sr, case.convert_options()).audio
                    report(name, ours, reference, "quantised" if quantised else "float")
        np.savez_compressed(DATA / REFERENCE_FILE, **arrays)


if __name__ == "__main__":
    main()
