"""Where training progress goes: losses.csv, TensorBoard event files, a loss plot, listeners."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

LOSS_FIELDS = ("step", "epoch", "lr", "loss_d", "loss_g", "loss_fm", "loss_mel", "loss_kl", "loss_lf0",
               "grad_norm_g", "grad_norm_d", "steps_per_s")


class TrainLog:
    """Appends loss records to ``losses.csv``, mirrors them to TensorBoard when it is installed,
    and passes them to ``listener`` (the web UI's live view).  Only rank 0 creates one."""

    def __init__(self, run_dir: Path, sampling_rate: int, listener: Callable[[dict], None] | None = None):
        self.run_dir = run_dir
        self.sampling_rate = sampling_rate
        self.listener = listener
        self.csv_path = run_dir / "losses.csv"
        new = not self.csv_path.is_file()
        self._file = self.csv_path.open("a", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._file, fieldnames=LOSS_FIELDS, extrasaction="ignore")
        if new:
            self._csv.writeheader()
        self.writer = self.eval_writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the tensorboard package is optional
            logger.info("tensorboard is not installed: losses go to %s only", self.csv_path)
        else:
            self.writer = SummaryWriter(log_dir=str(run_dir))
            self.eval_writer = SummaryWriter(log_dir=str(run_dir / "eval"))

    def losses(self, record: dict) -> None:
        """One training log record (the ``LOSS_FIELDS`` keys)."""
        self._csv.writerow(record)
        self._file.flush()
        if self.writer is not None:
            step = record["step"]
            names = {"loss_d": "loss/d/total", "loss_g": "loss/g/total", "loss_fm": "loss/g/fm",
                     "loss_mel": "loss/g/mel", "loss_kl": "loss/g/kl", "loss_lf0": "loss/g/lf0",
                     "lr": "learning_rate", "grad_norm_g": "grad_norm_g", "grad_norm_d": "grad_norm_d",
                     "steps_per_s": "steps_per_s"}
            for key, tag in names.items():
                if record.get(key) is not None:
                    self.writer.add_scalar(tag, record[key], step)
            self.writer.flush()
        if self.listener:
            self.listener({"kind": "losses", **record})

    def validation(self, step: int, mel_loss: float, samples: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Validation mel loss and ``(name, generated, ground truth)`` audio of ``step``."""
        if self.eval_writer is not None and samples:
            self.eval_writer.add_scalar("loss/val/mel", mel_loss, step)
            for i, (_, gen, gt) in enumerate(samples):
                self.eval_writer.add_audio(f"gen/audio_{i}", gen[None], step, sample_rate=self.sampling_rate)
                self.eval_writer.add_audio(f"gt/audio_{i}", gt[None], step, sample_rate=self.sampling_rate)
            self.eval_writer.flush()
        plot_losses(self.csv_path, self.run_dir / "losses.png")
        if self.listener:
            self.listener({"kind": "validation", "step": step, "val_mel": mel_loss})

    def close(self) -> None:
        self._file.close()
        for writer in (self.writer, self.eval_writer):
            if writer is not None:
                writer.close()


def read_losses(csv_path: Path) -> list[dict]:
    """The records of a ``losses.csv`` as dicts of floats (a resumed run's restarts included)."""
    if not csv_path.is_file():
        return []
    with csv_path.open(encoding="utf-8") as f:
        rows = []
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if v not in (None, "")})
        return rows


def plot_losses(csv_path: Path, png_path: Path) -> Path | None:
    """Draw the generator/discriminator losses over steps into ``png_path`` (matplotlib, no display)."""
    rows = read_losses(csv_path)
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6))
    axes = fig.subplots(2, 1, sharex=True)
    steps = [r["step"] for r in rows]
    for key in ("loss_mel", "loss_kl", "loss_fm", "loss_lf0"):
        axes[0].plot(steps, [r.get(key, np.nan) for r in rows], label=key[5:])
    for key in ("loss_d", "loss_g"):
        axes[1].plot(steps, [r.get(key, np.nan) for r in rows], label=key[5:])
    axes[0].set_ylabel("generator terms")
    axes[1].set_ylabel("adversarial")
    axes[1].set_xlabel("step")
    for ax in axes:
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    tmp.replace(png_path)
    return png_path
