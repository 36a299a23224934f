"""``train run``: the so-vits-svc 4.1 GAN training loop (one process, or one per GPU with torchrun).

Per step, as the reference's ``train.py``: the discriminator learns on real vs. generated
segments, then the generator on mel L1 (x c_mel) + KL (x c_kl) + feature matching +
adversarial + F0-decoder MSE (when auto-F0 is on); AdamW for both, learning rate decayed per
epoch.  Every ``eval_interval`` steps rank 0 renders the validation clips, logs, and writes
``G_<step>.pth`` / ``D_<step>.pth`` (step = optimizer steps done, so ``G_0`` is the untrained
or base model), keeping the newest ``keep_ckpts`` pairs.  A new run resumes from the newest
G/D pair in the run folder; a run without one starts from base models ``G_0.pth`` /
``D_0.pth`` found in ``RUN/pretrain/`` or the pretrain folder, if any (fine-tuning).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ..device import resolve_device
from ..errors import DatasetError, OptionsError
from ..precision import precision_dtype
from ..weights import DEFAULT_PRETRAIN_DIR
from .checkpoints import clean_checkpoints, latest_pair, load_checkpoint, save_checkpoint, unwrap
from .config import RunConfig
from .dataset import ClipDataset, Collate
from .losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from .model import MultiPeriodDiscriminator, TrainGenerator, segment_audio, slice_segments
from .report import TrainLog
from .spectral import mel_spectrogram, spec_to_mel

logger = logging.getLogger(__name__)

VALIDATION_NOISE_SCALE = 0.35  # the reference's infer() default, which its evaluation uses


@dataclass(frozen=True)
class RunOptions:
    """Command-line overrides of the config's ``train`` section, and where/how to run."""

    max_steps: int | None = None
    eval_interval: int | None = None
    batch_size: int | None = None
    log_interval: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    workers: int | None = None
    pretrain_dir: Path | None = None
    val_samples: int = 4
    discriminator_divisor: int = 1  # > 1: a smaller, non-standard discriminator (tests, quick trials)


@dataclass
class TrainResult:
    """What a run did: its step range, per-step losses (rank 0) and the checkpoints it wrote."""

    start_step: int
    step: int
    epoch: int
    history: list[dict] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    resumed_from: Path | None = None


class Trainer:
    """Builds the models, optimizers and data of a run folder; ``run()`` trains."""

    def __init__(self, run_dir: str | Path, options: RunOptions = RunOptions(),
                 listener: Callable[[dict], None] | None = None, stop: threading.Event | None = None):
        self.run_dir = Path(run_dir)
        self.options = options
        self.stop = stop or threading.Event()
        self.rank, self.world, local_rank = _init_distributed()
        self.device = _device(options.device, local_rank, self.world)
        self.cfg = _load_run_config(self.run_dir, options)
        t = self.cfg.train
        self.amp_dtype = None if options.precision == "fp32" else precision_dtype(options.precision, self.device)
        torch.manual_seed(t.seed)
        net_g = TrainGenerator(self.cfg.model.model, t.spec_channels, t.segment_frames, t.p_dropout)
        self.net_g = net_g.to(self.device)
        self.net_d = MultiPeriodDiscriminator(options.discriminator_divisor).to(self.device)
        self.optim_g = torch.optim.AdamW(self.net_g.parameters(), t.learning_rate, betas=t.betas, eps=t.eps)
        self.optim_d = torch.optim.AdamW(self.net_d.parameters(), t.learning_rate, betas=t.betas, eps=t.eps)
        self.step, self.epoch, self.resumed_from = self._restore()
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net_g = DistributedDataParallel(self.net_g, device_ids=ids)
            self.net_d = DistributedDataParallel(self.net_d, device_ids=ids)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.train_set = ClipDataset(self.run_dir, "train.txt", self.cfg, augment=True)
        if len(self.train_set) == 0:
            raise DatasetError(f"'{self.run_dir}/filelists/train.txt' lists no clips; run 'train prepare' first")
        self.val_set = ClipDataset(self.run_dir, "val.txt", self.cfg, augment=False)
        self.listener = listener
        self.log: TrainLog | None = None  # opened by run(), on rank 0

    # --- setup -------------------------------------------------------------------------------------

    def _restore(self) -> tuple[int, int, Path | None]:
        """Resume from the newest G/D pair, else load base models; returns (step, epoch, source)."""
        step = latest_pair(self.run_dir)
        if step is not None:
            g = load_checkpoint(self.run_dir / f"G_{step}.pth", self.net_g, self.optim_g)
            load_checkpoint(self.run_dir / f"D_{step}.pth", self.net_d, self.optim_d)
            return step, max(g.iteration, 1), self.run_dir / f"G_{step}.pth"
        for folder in (self.run_dir / "pretrain", self.options.pretrain_dir or DEFAULT_PRETRAIN_DIR):
            base_g, base_d = folder / "G_0.pth", folder / "D_0.pth"
            if base_g.is_file() and base_d.is_file():
                logger.info("fine-tuning from the base models in %s", folder)
                load_checkpoint(base_g, self.net_g, self.optim_g)
                load_checkpoint(base_d, self.net_d, self.optim_d)
                return 0, 1, base_g
        return 0, 1, None

    def _make_loader(self) -> DataLoader:
        """One loader for the whole run (workers persist); ``self.sampler.set_epoch`` reshuffles."""
        self.sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=self.rank, shuffle=True,
                                          seed=self.cfg.train.seed)
        workers = self.options.workers
        if workers is None:
            workers = min(4, max(0, (os.cpu_count() or 1) - 1))
        return DataLoader(self.train_set, batch_size=self.cfg.train.batch_size, sampler=self.sampler,
                          num_workers=workers, collate_fn=Collate(self.cfg.train.hop_length,
                                                                  self.cfg.train.segment_frames),
                          pin_memory=self.device.type == "cuda", persistent_workers=workers > 0)

    # --- training ----------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train until ``max_steps`` (or the config's epochs, or ``stop``); save and return."""
        t = self.cfg.train
        max_steps = self.options.max_steps if self.options.max_steps is not None else math.inf
        result = TrainResult(start_step=self.step, step=self.step, epoch=self.epoch, resumed_from=self.resumed_from)
        if self.rank == 0:
            self.log = TrainLog(self.run_dir, t.sampling_rate, self.listener)
        self.net_g.train()
        self.net_d.train()
        last_saved = self.step if self.resumed_from is not None and self.resumed_from.parent == self.run_dir else None
        tick, tick_step = time.perf_counter(), self.step
        loader = self._make_loader()
        try:
            while self.step < max_steps and self.epoch <= t.epochs and not self.stop.is_set():
                self._set_learning_rate()
                self.sampler.set_epoch(self.epoch)
                for batch in loader:
                    losses = self._train_step(batch)
                    self.step += 1
                    if self.rank == 0:
                        losses["step"], losses["epoch"] = self.step, self.epoch
                        result.history.append(losses)
                        if self.step % t.log_interval == 0:
                            now = time.perf_counter()
                            losses["steps_per_s"] = (self.step - tick_step) / max(now - tick, 1e-9)
                            tick, tick_step = now, self.step
                            self.log.losses(losses)
                        if self.step % t.eval_interval == 0:
                            result.checkpoints += self._evaluate_and_save()
                            last_saved = self.step
                    if self.step >= max_steps or self.stop.is_set():
                        break
                else:
                    self.epoch += 1
            if self.rank == 0 and last_saved != self.step:
                result.checkpoints += self._evaluate_and_save()
        except KeyboardInterrupt:
            if self.rank == 0 and last_saved != self.step:  # keep what was learnt
                result.checkpoints += self._save()
            raise
        finally:
            if self.log is not None:
                self.log.close()
            if self.world > 1 and dist.is_initialized():
                dist.destroy_process_group()
        result.step, result.epoch = self.step, self.epoch
        return result

    def _set_learning_rate(self) -> None:
        t = self.cfg.train
        lr = t.learning_rate * t.lr_decay ** (self.epoch - 1)
        if self.epoch <= t.warmup_epochs:
            lr = t.learning_rate / t.warmup_epochs * self.epoch
        for optim in (self.optim_g, self.optim_d):
            for group in optim.param_groups:
                group["lr"] = lr

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict:
        t = self.cfg.train
        b = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        use_vol = self.cfg.model.model.vol_embedding
        mel = spec_to_mel(b["spec"], t.sampling_rate, t.filter_length, t.n_mel_channels, t.mel_fmin, t.mel_fmax)
        with self._autocast():
            out = self.net_g(b["c"], b["f0"], b["uv"], b["spec"], b["sid"], b["lengths"],
                             b["vol"] if use_vol else None)
            y_hat = out["audio"]
            y_mel = slice_segments(mel, out["starts"], t.segment_frames)
            y_hat_mel = mel_spectrogram(y_hat.squeeze(1).float(), t.sampling_rate, t.filter_length, t.hop_length,
                                        t.win_length, t.n_mel_channels, t.mel_fmin, t.mel_fmax)
            y = segment_audio(b["audio"], out["starts"], t.segment_frames, t.hop_length)
            real, fake, _, _ = self.net_d(y, y_hat.detach())
        loss_d = discriminator_loss(real, fake)
        self.optim_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.unscale_(self.optim_d)
        grad_d = _grad_norm(self.net_d)
        self.scaler.step(self.optim_d)

        with self._autocast():
            real, fake, fmap_real, fmap_fake = self.net_d(y, y_hat)
        loss_mel = F.l1_loss(y_mel, y_hat_mel) * t.c_mel
        loss_kl = kl_loss(out["z_p"], out["logs_q"], out["m_p"], out["logs_p"], out["mask"]) * t.c_kl
        loss_fm = feature_loss(fmap_real, fmap_fake)
        loss_gen = generator_loss(fake)
        loss_lf0 = F.mse_loss(out["pred_lf0"].float(), out["lf0"].float()) if "lf0" in out else torch.zeros(())
        loss_g = loss_gen + loss_fm + loss_mel + loss_kl + loss_lf0.to(loss_gen.device)
        self.optim_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.unscale_(self.optim_g)
        grad_g = _grad_norm(self.net_g)
        self.scaler.step(self.optim_g)
        self.scaler.update()
        return {"lr": self.optim_g.param_groups[0]["lr"], "loss_d": loss_d.item(), "loss_g": loss_gen.item(),
                "loss_fm": loss_fm.item(), "loss_mel": loss_mel.item(), "loss_kl": loss_kl.item(),
                "loss_lf0": float(loss_lf0.detach()), "grad_norm_g": grad_g, "grad_norm_d": grad_d}

    # --- validation and checkpoints (rank 0) -------------------------------------------------------

    def _evaluate_and_save(self) -> list[Path]:
        val_mel, samples = self.validate()
        if self.log is not None:
            self.log.validation(self.step, val_mel, samples)
        return self._save()

    def _save(self) -> list[Path]:
        t = self.cfg.train
        paths = [
            save_checkpoint(self.net_g, self.optim_g, t.learning_rate, self.epoch, self.run_dir / f"G_{self.step}.pth"),
            save_checkpoint(self.net_d, self.optim_d, t.learning_rate, self.epoch, self.run_dir / f"D_{self.step}.pth"),
        ]
        clean_checkpoints(self.run_dir, t.keep_ckpts)
        logger.info("step %d: saved %s", self.step, paths[0].name)
        return paths

    def validate(self) -> tuple[float, list[tuple[str, np.ndarray, np.ndarray]]]:
        """Render up to ``val_samples`` validation clips; their mean mel L1 and the audio (also under eval/)."""
        from ..audio import write_audio

        t = self.cfg.train
        net = unwrap(self.net_g)
        net.eval()
        losses, samples = [], []
        out_dir = self.run_dir / "eval"
        try:
            for i in range(min(self.options.val_samples, len(self.val_set))):
                clip = self.val_set.load(i)
                vol = clip.vol[None].to(self.device) if net.params.vol_embedding else None
                audio, _ = net.infer(clip.c[None].to(self.device), clip.f0[None].to(self.device),
                                     clip.uv[None].to(self.device), torch.LongTensor([[clip.sid]]).to(self.device),
                                     noise_scale=VALIDATION_NOISE_SCALE, vol=vol)
                gen = audio[0, 0].float().cpu()
                mel_gen = mel_spectrogram(gen[None], t.sampling_rate, t.filter_length, t.hop_length, t.win_length,
                                          t.n_mel_channels, t.mel_fmin, t.mel_fmax)
                mel_gt = spec_to_mel(clip.spec[None], t.sampling_rate, t.filter_length, t.n_mel_channels,
                                     t.mel_fmin, t.mel_fmax)
                n = min(mel_gen.shape[-1], mel_gt.shape[-1])
                losses.append(float(F.l1_loss(mel_gen[..., :n], mel_gt[..., :n])))
                name = self.val_set.paths[i].stem
                write_audio(out_dir / f"{name}_generated.wav", gen.numpy(), t.sampling_rate)
                write_audio(out_dir / f"{name}_original.wav", clip.audio[0].numpy(), t.sampling_rate)
                samples.append((name, gen.numpy(), clip.audio[0].numpy()))
        finally:
            net.train()
        return (float(np.mean(losses)) if losses else float("nan")), samples


def train(run_dir: str | Path, options: RunOptions = RunOptions(), listener: Callable[[dict], None] | None = None,
          stop: threading.Event | None = None) -> TrainResult:
    """Train the run in ``run_dir`` (see the module docstring)."""
    return Trainer(run_dir, options, listener, stop).run()


def _grad_norm(model: torch.nn.Module) -> float:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0


def _load_run_config(run_dir: Path, options: RunOptions) -> RunConfig:
    path = run_dir / "config.json"
    if not path.is_file():
        raise DatasetError(f"'{run_dir}' has no config.json; run 'python -m svc train prepare DATASET -o {run_dir}'")
    cfg = RunConfig.from_json(path)
    overrides = {k: v for k, v in (("eval_interval", options.eval_interval), ("batch_size", options.batch_size),
                                   ("log_interval", options.log_interval)) if v is not None}
    for key, value in overrides.items():
        if value < 1:
            raise OptionsError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    return replace(cfg, train=replace(cfg.train, **overrides)) if overrides else cfg


def _init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group when torchrun set WORLD_SIZE."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("SVC_DIST_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _device(name: str, local_rank: int, world: int) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device
