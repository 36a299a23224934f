"""Training jobs run in child processes, for the web UI: prepare, train, stop, watch, export.

Each job is ``python -m svc train prepare|run ...`` in its own process (its output goes to
``RUN/job.log``), so a crash or an out-of-memory kill cannot take the web server down, and
stopping is a SIGINT, on which ``train run`` saves a checkpoint.  Progress is read back from
the run folder itself (``losses.csv``, ``G_*.pth``, ``eval/*.wav``).  One job runs at a time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DatasetError
from .checkpoints import checkpoint_steps
from .report import read_losses

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RELEASE_PREFIXES_DROPPED = ("enc_q.",)  # training-only, as so-vits-svc's compress_model.py drops it


@dataclass
class RunStatus:
    """What the UI shows about one run folder."""

    name: str
    state: str  # "idle", "preparing", "training", "finished", "failed", "stopped"
    step: int = 0
    steps_per_s: float | None = None
    losses: list[dict] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    log_tail: str = ""


class TrainingJobs:
    """Starts and watches the one training job of a web UI; run folders live under ``runs_dir``."""

    def __init__(self, runs_dir: str | Path, checkpoints_dir: str | Path, pretrain_dir: str | Path,
                 env: dict[str, str] | None = None):
        self.runs_dir = Path(runs_dir)
        self.checkpoints_dir = Path(checkpoints_dir)
        self.pretrain_dir = Path(pretrain_dir)
        self.env = {**os.environ, **(env or {})}
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._job: tuple[str, str] | None = None  # (run name, "preparing" | "training")
        self._stopped = False

    def run_dir(self, name: str) -> Path:
        if not name or not _NAME.match(name):
            raise DatasetError(f"run name {name!r} must be 1-64 letters, digits, '-', '_' or '.'")
        return self.runs_dir / name

    def runs(self) -> list[str]:
        """Names of the run folders (those with a config.json)."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if (p / "config.json").is_file())

    def prepare(self, dataset_dir: str | Path, name: str, template: str, speech_encoder: str, f0_method: str,
                device: str = "cpu") -> None:
        """Start ``train prepare`` of ``dataset_dir`` into run ``name``."""
        if not Path(dataset_dir).is_dir():
            raise DatasetError(f"dataset folder '{dataset_dir}' does not exist (give a folder on the server)")
        args = ["prepare", str(dataset_dir), "-o", str(self.run_dir(name)), "--template", template,
                "--speech-encoder", speech_encoder, "--f0", f0_method, "--pretrain", str(self.pretrain_dir),
                "--device", device, "--no-progress"]
        self._start(name, "preparing", args)

    def start(self, name: str, *, max_steps: int | None = None, batch_size: int | None = None,
              eval_interval: int | None = None, device: str = "auto", precision: str = "fp32",
              log_interval: int = 10, extra_args: tuple[str, ...] = ()) -> None:
        """Start (or resume) training run ``name``; losses are recorded every ``log_interval`` steps."""
        run = self.run_dir(name)
        if not (run / "config.json").is_file():
            raise DatasetError(f"run '{name}' is not prepared yet; prepare a dataset into it first")
        args = ["run", str(run), "--device", device, "--precision", precision, "--pretrain", str(self.pretrain_dir)]
        for flag, value in (("--max-steps", max_steps), ("--batch-size", batch_size),
                            ("--eval-interval", eval_interval), ("--log-interval", log_interval)):
            if value:
                args += [flag, str(int(value))]
        self._start(name, "training", [*args, *extra_args])

    def _start(self, name: str, kind: str, args: list[str]) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise DatasetError(f"a job is already running ({self._job[1]} '{self._job[0]}'); stop it first")
            run = self.run_dir(name)
            run.mkdir(parents=True, exist_ok=True)
            log = (run / "job.log").open("w", encoding="utf-8")
            project = str(Path(__file__).resolve().parents[2])
            env = {**self.env, "PYTHONPATH": os.pathsep.join(filter(None, [project, self.env.get("PYTHONPATH")]))}
            self._proc = subprocess.Popen([sys.executable, "-m", "svc", "train", *args], stdout=log,
                                          stderr=subprocess.STDOUT, env=env, cwd=project)
            log.close()
            self._job, self._stopped = (name, kind), False

    def stop(self) -> bool:
        """Ask the running job to stop (training finishes its step and saves a checkpoint); False if none runs."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                return False
            self._stopped = True
            self._proc.send_signal(signal.SIGINT)
            return True

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the running job; its exit status (None if there is no job)."""
        proc = self._proc
        return None if proc is None else proc.wait(timeout)

    def status(self, name: str) -> RunStatus:
        run = self.run_dir(name)
        losses = read_losses(run / "losses.csv")
        state = "idle"
        if self._job is not None and self._job[0] == name and self._proc is not None:
            code = self._proc.poll()
            if code is None:
                state = self._job[1]
            else:
                state = "stopped" if self._stopped else ("finished" if code == 0 else "failed")
        last = losses[-1] if losses else {}
        log_path = run / "job.log"
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:] if log_path.is_file() else ""
        return RunStatus(name=name, state=state, step=int(last.get("step", 0)), steps_per_s=last.get("steps_per_s"),
                         losses=losses, checkpoints=checkpoint_steps(run, "G"),
                         samples=sorted((run / "eval").glob("*.wav")) if (run / "eval").is_dir() else [],
                         log_tail=tail)

    def export(self, name: str) -> Path:
        """Copy the newest generator of run ``name`` to ``checkpoints/<name>/`` as a release file.

        The release file is what so-vits-svc's compress_model.py writes: the generator without
        the training-only ``enc_q`` and without optimizer state (about a quarter of the size).
        """
        run = self.run_dir(name)
        steps = checkpoint_steps(run, "G")
        if not steps:
            raise DatasetError(f"run '{name}' has no checkpoint yet; train it first")
        saved = torch.load(run / f"G_{steps[-1]}.pth", map_location="cpu", weights_only=True)
        model = {k: v for k, v in saved["model"].items() if not k.startswith(RELEASE_PREFIXES_DROPPED)}
        out = self.checkpoints_dir / name
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.pth"):
            old.unlink()
        target = out / f"G_{steps[-1]}.pth"
        torch.save({"model": model, "iteration": 0, "optimizer": None,
                    "learning_rate": saved.get("learning_rate", 1e-4)}, target)
        (out / "config.json").write_text((run / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
        return target
