"""Synthesis-core benchmark: ``SynthesizerTrn.infer`` on 10 s of frames (optionally vs the reference)."""

from __future__ import annotations

import json
import logging
import sys
import time
import types
from pathlib import Path

import torch

from .fixtures import ROOT, model_dir
from .measure import summary, timed_runs

logger = logging.getLogger(__name__)

FRAMES_10S = 861  # 10 s at 44.1 kHz / hop 512
SEED = 52468


def make_inputs(cfg: dict, frames: int) -> dict[str, torch.Tensor]:
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    from model_fixtures import make_inputs as fixture_inputs

    return fixture_inputs(cfg, frames=frames)


def load_model(directory: Path):
    from svc.checkpoint import load_generator
    from svc.config import ModelConfig

    return load_generator(directory / "G_0.pth", ModelConfig.from_json(directory / "config.json")).model


def measure_load(repeats: int) -> dict:
    """Full-size model load (file read, checks, build, weight-norm fold) through ``VitsSvc.load``, warm disk."""
    from svc.session import VitsSvc

    directory = model_dir()
    session = VitsSvc(device="cpu", pretrain_dir=directory)
    stats, _ = timed_runs(lambda: session.load(directory), repeats, warmup=1)
    return stats


def measure_core(threads: list[int], precisions: list[str], repeats: int, device: str = "cpu",
                 frames: int = FRAMES_10S, reference: str | None = None) -> list[dict]:
    """One row per (device, precision or reference, threads): wall/CPU stats, RTF, output vs fp32.

    The cases of one thread count run interleaved (fp32, bf16, reference, fp32, ...), so that a
    change in the machine's load during the run affects them alike.
    """
    from svc.memory import keep_heap_pages
    from svc.precision import precision_dtype

    keep_heap_pages()  # as a VitsSvc session does (it applies to the reference's run alike)
    directory = model_dir()
    cfg = json.loads((directory / "config.json").read_text())
    model = load_model(directory).to(device)
    inputs = {k: v.to(device) for k, v in make_inputs(cfg, frames).items()}
    seconds = frames * cfg["data"]["hop_length"] / cfg["data"]["sampling_rate"]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    ref_net = _reference_net(reference, cfg, directory, device) if reference else None

    def ours(precision: str):
        dtype = precision_dtype(precision, device)

        def run():
            model.set_precision(dtype)
            return model.infer(inputs["c"], inputs["f0"], inputs["uv"], inputs["g"], seed=SEED)[0]
        return run

    def theirs():
        torch.manual_seed(SEED)
        with torch.no_grad():
            return ref_net.infer(inputs["c"], f0=inputs["f0"].clone(), uv=inputs["uv"], g=inputs["g"],
                                 noice_scale=0.4, seed=SEED)[0]

    cases = {p: ours(p) for p in precisions}
    if ref_net is not None:
        cases["reference fp32"] = theirs
    rows = []
    for n in threads if device == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(n)
        stats = interleaved_runs(cases, repeats, sync)
        fp32 = stats["fp32"][1].float().cpu() if "fp32" in stats else None
        for label, (timing, audio) in stats.items():
            audio = audio.float().cpu()
            row = {"device": device, "precision": label, "threads": n, "frames": frames, "audio_seconds": seconds,
                   **timing, "rtf": timing["wall"]["median"] / seconds, "rtf_min": timing["wall"]["min"] / seconds,
                   "rtf_cpu": timing["cpu"]["median"] / seconds}
            if fp32 is not None and label != "fp32":
                row["snr_db_vs_fp32"] = snr_db(fp32, audio)
                row["max_abs_vs_fp32"] = float((audio - fp32).abs().max())
            rows.append(row)
            logger.info("core %s %s %d threads: %.2f s (RTF %.3f)", device, label, n, timing["wall"]["median"],
                        row["rtf"])
    model.set_precision(torch.float32)
    return rows


def interleaved_runs(cases: dict, repeats: int, sync) -> dict:
    """``{label: (timing stats, last output)}``: one warm-up each, then ``repeats`` rounds over all cases."""
    walls = {label: [] for label in cases}
    cpus = {label: [] for label in cases}
    outputs = {label: fn() for label, fn in cases.items()}
    for _ in range(repeats):
        for label, fn in cases.items():
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            outputs[label] = fn()
            sync()
            walls[label].append(time.perf_counter() - wall)
            cpus[label].append(time.process_time() - cpu)
    return {label: ({"wall": summary(walls[label]), "cpu": summary(cpus[label])}, outputs[label])
            for label in cases}


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    noise = (other.double() - reference.double()).pow(2).sum()
    return float(10 * torch.log10(reference.double().pow(2).sum() / noise.clamp_min(1e-300)))


def _reference_net(path: str, cfg: dict, directory: Path, device: str):
    """so-vits-svc's own ``SynthesizerTrn`` from a checkout at ``path``, loaded with the bench checkpoint."""
    for stub in ("faiss", "fairseq"):
        sys.modules.setdefault(stub, types.ModuleType(stub))
    sys.path.insert(0, path)
    try:
        import models as ref_models  # the reference's models.py
    finally:
        sys.path.remove(path)
    sys.path.append(path)  # it imports its vocoder lazily
    net = ref_models.SynthesizerTrn(cfg["data"]["filter_length"] // 2 + 1,
                                    cfg["train"]["segment_size"] // cfg["data"]["hop_length"], **cfg["model"])
    state = torch.load(directory / "G_0.pth", map_location="cpu", weights_only=True)["model"]
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("enc_q.") for k in missing):
        raise RuntimeError(f"reference model does not match the bench checkpoint: {missing} {unexpected}")
    return net.eval().to(device)
