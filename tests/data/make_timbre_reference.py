"""Regenerate tests/data/timbre_reference.npz by running so-vits-svc 4.1 with cluster, retrieval and speaker mix.

Not run by the test suite.  Needs faiss-cpu and scikit-learn (the reference's own loaders use
them; ours do not).  Usage:

    REF_SOVITS=/path/to/so-vits-svc-4.1 python tests/data/make_timbre_reference.py [--measure]

Shimmed as in ``make_pipeline_reference.py`` (our ContentVec behind the reference's encoder
interface, torchaudio loading).  The reference's ``cluster.get_cluster_model`` calls ``torch.load``
without ``weights_only=False``, which torch >= 2.6 refuses for kmeans files; the script loads our
fixture file with ``weights_only=False`` for it.  Outputs are stored as 16-bit integers scaled to
each case's peak (at most ``scale / 65534`` from the exact value).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

import faiss  # noqa: F401  (the real one, before the reference's import could stub it)
import numpy as np
import soundfile
import torch

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA))
sys.path.insert(0, str(DATA.parent))
sys.path.insert(0, str(DATA.parent.parent))

from make_pipeline_reference import build_fixtures, import_reference, report  # noqa: E402
from timbre_reference_fixtures import (  # noqa: E402
    CASES,
    INDEX_NAME,
    REFERENCE_FILE,
    case_input,
    reference_mix,
    write_timbre_files,
)

from svc import VitsSvc  # noqa: E402
from svc.encoders import load_encoder  # noqa: E402


def run_reference(infer_tool, model_dir: Path, name: str, workdir: Path) -> np.ndarray:
    case = CASES[name]
    options = case.convert_options(model_dir)
    wav, sr = case_input(name)
    wav_path = workdir / f"{name}.wav"
    soundfile.write(wav_path, wav, sr, subtype="FLOAT")
    kwargs = {}
    if case.timbre_file:
        kwargs = {"cluster_model_path": str(model_dir / case.timbre_file),
                  "feature_retrieval": case.timbre_file == INDEX_NAME}
    svc = infer_tool.Svc(str(model_dir / "G_100.pth"), str(model_dir / "config.json"), device="cpu",
                         spk_mix_enable=case.mix is not None, **kwargs)
    spk = reference_mix(case.mix) if case.mix else options.speaker
    out = svc.slice_inference(
        str(wav_path), spk=spk, tran=options.transpose, slice_db=options.slice_db,
        cluster_infer_ratio=options.cluster_ratio, auto_predict_f0=options.auto_f0,
        noice_scale=options.noise_scale, pad_seconds=options.pad_seconds, clip_seconds=options.clip_seconds,
        lg_num=options.crossfade_seconds, lgr_num=options.crossfade_keep, f0_predictor=options.f0_method,
        cr_threshold=options.cr_threshold, loudness_envelope_adjustment=options.loudness_mix,
        use_spk_mix=case.mix is not None,
    )
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="also run our pipeline and print differences")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pretrain, checkpoints = build_fixtures(root)
        model_dir = checkpoints / "tiny41"
        write_timbre_files(model_dir)
        infer_tool = import_reference(os.environ["REF_SOVITS"], load_encoder("vec256l9", pretrain).eval())
        import cluster  # the reference's package

        cluster.torch = type(sys)("torch_for_cluster")
        cluster.torch.load = functools.partial(torch.load, weights_only=False)
        os.chdir(root)
        arrays: dict[str, np.ndarray] = {}
        session = VitsSvc(device="cpu", pretrain_dir=pretrain)
        session.load(model_dir)
        for name, case in CASES.items():
            reference = run_reference(infer_tool, model_dir, name, root)
            scale = float(np.abs(reference).max()) or 1.0
            arrays[name] = np.round(reference / scale * 32767).astype(np.int16)
            arrays[f"{name}_scale"] = np.float64(scale)
            if args.measure:
                wav, sr = case_input(name)
                ours = session.convert(wav, sr, case.convert_options(model_dir)).audio
                report(name, ours, reference, "quantised")
                n = min(len(ours), len(reference))
                err = np.sum((ours[:n] - reference[:n]) ** 2)
                print(f"{'':18s} SNR {10 * np.log10(np.sum(reference[:n] ** 2) / max(err, 1e-30)):.1f} dB")
        np.savez_compressed(DATA / REFERENCE_FILE, **arrays)


if __name__ == "__main__":
    main()
