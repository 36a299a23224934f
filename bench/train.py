"""``python -m bench.train``: training steps per second on the CPU (tiny and default 4.1 configs).

    python -m bench.train                          # 2 speakers x 4 synthetic clips, 3 timed steps per config
    python -m bench.train --steps 5 --batch-size 6 --threads 2
    REF_SOVITS=/path/to/so-vits-svc python -m bench.train   # also time so-vits-svc's own training step

Both configs train the full-size generator and the full-size discriminator on the same
prepared run (pm F0; the content features are random 768-dim vec768l12-shaped tensors, which
cost the same to train on as real ones).  With
``REF_SOVITS`` the reference's ``SynthesizerTrn`` / ``MultiPeriodDiscriminator`` and losses
run the body of its ``train_and_evaluate`` step on the same batch, in the same process, so the
two are compared on equal terms.  The run folder is laid out as so-vits-svc expects
(filelists, ``*.soft.pt``, ``*.f0.npy``, ``*.spec.pt``), so on a GPU its own train.py runs on
it unchanged: ``cd RUN && python $REF_SOVITS/train.py -c config.json -m bench``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .fixtures import CACHE_DIR, _tests_on_path

logger = logging.getLogger(__name__)
SR = 44100


def _voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)) / SR
    wav = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.4 * wav / np.abs(wav).max() + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def prepared_run(root: Path) -> Path:
    """A prepared run (default template) of a synthetic two-speaker set, built once."""
    from svc.train.prepare import PrepareOptions, prepare

    run = root / "run_default"
    if (run / "filelists" / "train.txt").is_file():
        return run
    data = root / "dataset"
    for s, (speaker, f0) in enumerate((("alto", 220.0), ("bass", 110.0))):
        (data / speaker).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            sf.write(data / speaker / f"take{i}.wav", _voice(3.0, f0 * (1 + 0.03 * i), 10 * s + i), SR)
    # A small test ContentVec (vec256l9) prepares the clips quickly; its units are then replaced by
    # random 768-dim ones and the config rebuilt for vec768l12, the 4.1 default.
    _tests_on_path()
    from conftest import write_test_contentvec

    from svc.train.config import build_config, write_config

    encoders = root / "pretrain"
    encoders.mkdir(parents=True, exist_ok=True)
    write_test_contentvec(encoders / "checkpoint_best_legacy_500.pt")
    report = prepare(data, run, PrepareOptions(speech_encoder="vec256l9", f0_method="pm", pretrain_dir=encoders))
    gen = torch.Generator().manual_seed(0)
    for soft in (run / "dataset").rglob("*.soft.pt"):
        frames = torch.load(soft).shape[-1]
        torch.save(torch.randn(1, 768, frames, generator=gen), soft)
    write_config(build_config("default", report.speakers, "vec768l12"), run / "config.json")
    return run


def run_for_template(root: Path, template: str) -> Path:
    """The prepared run with config.json rebuilt from ``template`` (the features do not depend on it)."""
    from svc.train.config import build_config, write_config

    base = prepared_run(root)
    if template == "default":
        return base
    run = root / f"run_{template}"
    if not run.exists():
        run.mkdir()
        for name in ("dataset", "filelists"):
            (run / name).symlink_to(base / name, target_is_directory=True)
    spk = json.loads((base / "config.json").read_text())["spk"]
    write_config(build_config(template, list(spk), "vec768l12"), run / "config.json")
    return run


def time_ours(run: Path, steps: int, batch_size: int) -> tuple[float, dict]:
    from svc.train.loop import RunOptions, Trainer

    trainer = Trainer(run, RunOptions(device="cpu", workers=0, batch_size=batch_size))
    batch = next(iter(trainer._make_loader()))
    trainer._train_step(batch)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        trainer._train_step(batch)
    per_step = (time.perf_counter() - start) / steps
    return per_step, batch


def time_reference(ref: str, run: Path, batch: dict, steps: int) -> float:
    """so-vits-svc's training step (train.py's train_and_evaluate body, fp32, CPU) on ``batch``."""
    for name in ("faiss", "fairseq", "sklearn", "sklearn.cluster"):
        module = types.ModuleType(name)
        module.__spec__ = __import__("importlib.machinery").machinery.ModuleSpec(name, None)
        sys.modules.setdefault(name, module)
    sys.modules["sklearn.cluster"].MiniBatchKMeans = object
    sys.path.insert(0, ref)
    import models as ref_models
    import modules.commons as commons
    from modules.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
    from modules.mel_processing import mel_spectrogram_torch, spec_to_mel_torch
    from torch.nn import functional as F

    cfg = json.loads((run / "config.json").read_text())
    d, t = cfg["data"], cfg["train"]
    net_g = ref_models.SynthesizerTrn(d["filter_length"] // 2 + 1, t["segment_size"] // d["hop_length"], **cfg["model"])
    net_d = ref_models.MultiPeriodDiscriminator(False)
    optim_g = torch.optim.AdamW(net_g.parameters(), t["learning_rate"], betas=t["betas"], eps=t["eps"])
    optim_d = torch.optim.AdamW(net_d.parameters(), t["learning_rate"], betas=t["betas"], eps=t["eps"])
    net_g.train()
    net_d.train()

    def step() -> None:
        mel = spec_to_mel_torch(batch["spec"], d["filter_length"], d["n_mel_channels"], d["sampling_rate"],
                                d["mel_fmin"], d["mel_fmax"])
        y_hat, ids, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q), pred_lf0, norm_lf0, lf0 = net_g(
            batch["c"], batch["f0"], batch["uv"], batch["spec"], g=batch["sid"], c_lengths=batch["lengths"],
            spec_lengths=batch["lengths"], vol=None)
        seg = t["segment_size"] // d["hop_length"]
        y_mel = commons.slice_segments(mel, ids, seg)
        y_hat_mel = mel_spectrogram_torch(y_hat.squeeze(1), d["filter_length"], d["n_mel_channels"],
                                          d["sampling_rate"], d["hop_length"], d["win_length"], d["mel_fmin"],
                                          d["mel_fmax"])
        y = commons.slice_segments(batch["audio"], ids * d["hop_length"], t["segment_size"])
        r, g, _, _ = net_d(y, y_hat.detach())
        loss_d, _, _ = discriminator_loss(r, g)
        optim_d.zero_grad()
        loss_d.backward()
        optim_d.step()
        r, g, fr, fg = net_d(y, y_hat)
        loss = (F.l1_loss(y_mel, y_hat_mel) * t["c_mel"] + kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * t["c_kl"]
                + feature_loss(fr, fg) + generator_loss(g)[0] + F.mse_loss(pred_lf0, lf0))
        optim_g.zero_grad()
        loss.backward()
        optim_g.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--templates", default="tiny,default")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per config (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", default=os.environ.get("REF_SOVITS"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    root = CACHE_DIR / "train"
    rows = []
    for template in args.templates.split(","):
        run = run_for_template(root, template)
        ours, batch = time_ours(run, args.steps, args.batch_size)
        ref = time_reference(args.reference, run, batch, args.steps) if args.reference else None
        rows.append((template, ours, ref))
        logger.info("%s: %.2f s/step%s", template, ours, f" (so-vits-svc {ref:.2f} s/step)" if ref else "")
    print(f"\nCPU, {args.threads} threads, batch {args.batch_size}, segment 10240 samples, fp32")
    print("| config | svc s/step (steps/s) | so-vits-svc s/step (steps/s) |")
    print("| --- | ---: | ---: |")
    for template, ours, ref in rows:
        ref_text = f"{ref:.2f} ({1 / ref:.2f})" if ref else "—"
        print(f"| {template} | {ours:.2f} ({1 / ours:.2f}) | {ref_text} |")


if __name__ == "__main__":
    main()
