"""Shallow-diffusion cost: the template-size diffusion model (20 layers, 512 channels, 128 mels, vec768l12)
denoising 10 s of frames, per sampler and k-step.

The cost is the denoiser's evaluations (``k_step // speedup`` for the solvers, one more for pndm) plus
one NSF-HiFiGAN pass, which costs about what the voice model's own decoder does (see the core table).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from .fixtures import CACHE_DIR, _tests_on_path
from .measure import timed_runs

logger = logging.getLogger(__name__)

FRAMES_10S = 861
MEL_BINS = 128
# (sampler, k_step, speedup): the default sampler over k-steps, then every sampler at the default k-step.
CASES = [("dpm-solver++", k, 10) for k in (20, 50, 100, 200)] + [
    (m, 100, 10) for m in ("dpm-solver", "unipc", "ddim", "pndm")]
# Quick: one run each (no warm-up); the per-evaluation cost is the same for every sampler.
QUICK_CASES = [("dpm-solver++", 20, 10), ("ddim", 50, 10), ("dpm-solver++", 100, 10)]


def diffusion_dir(cache: Path = CACHE_DIR) -> Path:
    """``cache/diffusion`` with a template-size random ``model_0.pt`` + ``config.yaml`` (built on first use)."""
    directory = cache / "diffusion"
    if not (directory / "model_0.pt").is_file():
        _tests_on_path()
        from diffusion_fixtures import write_diffusion_model

        logger.info("building template-size diffusion model in %s", directory)
        write_diffusion_model(directory, step=0, mel_bins=MEL_BINS, gain=1.0, data_encoder="vec768l12",
                              data_encoder_out_channels=768, model_n_layers=20, model_n_chans=512,
                              model_n_hidden=256)
    return directory


def measure_diffusion(threads: int, repeats: int, device: str = "cpu", quick: bool = False,
                      on_row: Callable[[dict], None] = lambda row: None) -> list[dict]:
    """One row per (sampler, k_step, speedup): wall time for 10 s of frames and per denoiser evaluation.

    ``on_row`` gets each row as soon as it is measured (so an interrupted run keeps it).
    """
    from svc.diffusion import get_sampler, load_diffusion, resolve_diffusion_files

    torch.set_num_threads(threads)
    model = load_diffusion(resolve_diffusion_files(diffusion_dir())).to(device)
    net, gen = model.net, torch.Generator().manual_seed(0)
    units = torch.randn(1, FRAMES_10S, 768, generator=gen).to(device)
    f0 = (220 + 20 * torch.rand(1, FRAMES_10S, 1, generator=gen)).to(device)
    vol = (0.1 * torch.rand(1, FRAMES_10S, 1, generator=gen)).to(device)
    x0 = (torch.rand(1, 1, MEL_BINS, FRAMES_10S, generator=gen) * 2 - 1).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    rows = []
    for method, k_step, speedup in QUICK_CASES if quick else CASES:
        sampler = get_sampler(method, speedup)

        def run(sampler=sampler, k_step=k_step, speedup=speedup):
            with torch.inference_mode():
                cond = net.condition(units, f0, vol, 0)
                x = net.decoder.q_sample(x0, k_step - 1, torch.randn(x0.shape, device=device))
                return sampler.sample(net.decoder, x, cond, k_step, speedup)

        stats, _ = timed_runs(run, 1 if quick else repeats, warmup=0 if quick else 1, sync=sync)
        evaluations = sampler.evaluations(k_step, speedup)
        rows.append({"device": device, "threads": threads, "method": method, "k_step": k_step, "speedup": speedup,
                     "evaluations": evaluations, "wall": stats["wall"], "cpu": stats["cpu"],
                     "per_evaluation": stats["wall"]["median"] / evaluations})
        on_row(rows[-1])
        logger.info("diffusion %s k=%d: %.2f s", method, k_step, stats["wall"]["median"])
    return rows


def format_rows(rows: list[dict]) -> list[str]:
    lines = ["", "| diffusion, 10 s of frames | k_step | speedup | denoiser evaluations | wall median s | "
             "wall s per evaluation | CPU s per evaluation | RTF |", "| --- " * 8 + "|"]
    for r in rows:
        cpu = r["cpu"]["median"] / r["evaluations"]
        lines.append(f"| {r['device']} {r['method']} ({r['threads']} threads) | {r['k_step']} | {r['speedup']} | "
                     f"{r['evaluations']} | {r['wall']['median']:.2f} | {r['per_evaluation']:.3f} | {cpu:.3f} | "
                     f"{r['wall']['median'] / 10:.3f} |")
    return lines
