"""The state the page's handlers share: folders, loaded models, the job queue, outputs."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..audio import check_input_file
from ..device import resolve_device
from ..encoders.registry import get_spec
from ..errors import OptionsError, SvcError
from ..f0 import F0PredictorCache
from ..memory import limit_onednn_cache
from ..model_store import UPLOAD_PREFIX, ModelManager
from ..naming import output_filename
from ..precision import precision_dtype
from ..progress import Progress
from ..scheduler import QueueStatus, Scheduler
from ..session import VitsSvc, describe_model_dir, list_model_dirs
from ..storage import remove_stale_staging
from .common import canonical_device, log

DELETE_CACHE = (1800, 7200)  # every 30 min, delete uploads/outputs older than 2 h
OUTPUT_FORMATS = ("wav", "flac")
DEFAULT_MAX_INPUT_MINUTES = 30.0


@dataclass(frozen=True)
class LoadedChoice:
    """What one browser session has loaded: kept in its ``gr.State``."""

    model_dir: str
    device: str


class WebApp:
    """Folders, the model manager, the job scheduler and the share status, shared by all visitors."""

    def __init__(self, checkpoints_dir: Path, pretrain_dir: Path, device: str = "auto", max_loaded: int = 2,
                 output_dir: Path | None = None, allow_weight_uploads: bool = False,
                 max_input_minutes: float = DEFAULT_MAX_INPUT_MINUTES, precision: str = "fp32") -> None:
        # Checked against the default device before anything runs (an unsupported choice is an
        # OptionsError); sized before the first convolution, oneDNN's kernel cache fits bf16's shapes.
        self.precision = str(precision).strip().lower()
        precision_dtype(self.precision, resolve_device(device))
        limit_onednn_cache(self.precision)
        self.checkpoints_dir = Path(checkpoints_dir)
        self.pretrain_dir = Path(pretrain_dir)
        self.default_device = device
        self.allow_weight_uploads = allow_weight_uploads
        self.max_input_seconds = max_input_minutes * 60 if max_input_minutes > 0 else None
        self.manager = ModelManager(self._load_session, max_loaded=max_loaded)
        self.scheduler = Scheduler()
        # Converted files are written here, then served (Gradio copies them into its own cache).
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="svc-webui-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.banner = ""  # set by the launcher when a share link could not be made
        self.f0_cache = F0PredictorCache(max_entries=4)  # predictors for plots, shared by all sessions
        for folder in (self.checkpoints_dir, self.pretrain_dir):  # half-saved uploads of a crashed server
            if folder.is_dir():
                remove_stale_staging(folder)

    # --- models -------------------------------------------------------------------------------

    def _load_session(self, model_dir: Path, device: str) -> VitsSvc:
        try:
            session = VitsSvc(device=device, pretrain_dir=self.pretrain_dir, precision=self.precision)
            note = None
        except OptionsError as e:  # the server's precision on a device without it (bf16 on MPS, fp16 on a CPU)
            session = VitsSvc(device=device, pretrain_dir=self.pretrain_dir)
            note = f"{e}; this model runs in fp32 on {device}"
        session.load(model_dir)
        if note:
            session.load_notes.append(note)
        return session

    def model_dirs(self) -> dict[str, Path]:
        if not self.checkpoints_dir.is_dir():
            return {}
        return {p.name: p for p in list_model_dirs(self.checkpoints_dir) if not p.name.startswith(UPLOAD_PREFIX)}

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, folder name) pairs for the model dropdown."""
        choices = []
        for name, path in self.model_dirs().items():
            try:
                info = describe_model_dir(path)
                count = len(info.speakers)
                label = (f"{name} — {info.label}, {info.speech_encoder}, "
                         f"{count} speaker{'s' * (count != 1)}" + (", diffusion" if info.diffusion else ""))
            except SvcError as e:
                label = f"{name} — unusable: {e}"
            choices.append((label, name))
        return choices

    def refresh(self, current: str | None = None):
        """The model list again, keeping the current choice; nothing is pre-selected that is not loaded."""
        choices = self.model_choices()
        names = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in names else None)

    def model_path(self, name: str | None) -> Path:
        if not name:
            raise SvcError("choose a model first (the 'Model' list at the top), or add one under 'Add a model'")
        dirs = self.model_dirs()
        if name not in dirs:
            raise SvcError(f"there is no model '{name}' in '{self.checkpoints_dir}'; press refresh and choose again")
        return dirs[name]

    def device_name(self, device: str | None) -> str:
        return canonical_device(device or self.default_device)

    def session_for(self, choice: LoadedChoice | None) -> VitsSvc:
        if choice is None:
            raise SvcError("load a model first: choose one in the 'Model' list at the top")
        return self.manager.get(Path(choice.model_dir), choice.device)

    def missing_encoders(self) -> dict[str, list[str]]:
        """Encoder weight file -> the models that need it, for files not in ``pretrain/``."""
        missing: dict[str, list[str]] = {}
        for name, path in self.model_dirs().items():
            try:
                spec = get_spec(describe_model_dir(path).speech_encoder)
            except SvcError:
                continue
            if not (self.pretrain_dir / spec.filename).is_file():
                missing.setdefault(spec.filename, []).append(name)
        return missing

    # --- inputs and outputs ---------------------------------------------------------------------

    def check_input(self, path: str) -> float:
        """The recording's duration; an empty, unreadable or too long file is an ``AudioError``
        naming the file as the visitor knows it (Gradio keeps the original name as the base name)."""
        return check_input_file(path, Path(path).name, self.max_input_seconds)

    def output_path(self, audio_path: str, speaker: str, transpose: float, fmt: str) -> Path:
        if fmt not in OUTPUT_FORMATS:
            raise OptionsError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
        self._prune_outputs()
        folder = self.output_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        return folder / output_filename(Path(audio_path).stem, speaker, transpose, fmt)

    def _prune_outputs(self) -> None:
        limit = time.time() - DELETE_CACHE[1]
        for folder in self.output_dir.iterdir():
            if folder.stat().st_mtime < limit:
                shutil.rmtree(folder, ignore_errors=True)

    def discard_output(self, path: Path) -> None:
        """Remove an output (and its folder) that a cancelled or failed job left unfinished."""
        shutil.rmtree(path.parent, ignore_errors=True)

    # --- jobs -------------------------------------------------------------------------------------

    def run_job(self, visitor: str, device: str, label: str, work_seconds: float, kind: str,
                progress: gr.Progress, work: Callable[[Progress], Any]) -> Any:
        """Queue ``work(report)`` on ``device`` for ``visitor`` and run it when its turn comes.

        While waiting, the page shows the place in line and the expected wait; while running,
        ``report(fraction, text)`` moves the bar and raises ``Cancelled`` once the visitor cancels.
        """
        job = self.scheduler.submit(visitor, device, label, work_seconds, kind)

        def waiting(status: QueueStatus) -> None:
            job.token.check()
            progress(0.0, desc=status.describe())

        def report(fraction: float, text: str) -> None:
            job.token.check()
            job.report(fraction)
            progress(fraction, desc=text)

        with self.scheduler.turn(job, on_wait=waiting):
            log.info("job %s: %s on %s (%.0f s of audio)", visitor[:8] or "api", label, device, work_seconds)
            return work(report)

    def cancel(self, visitor: str, reason: str = "cancelled by the user") -> int:
        """Cancel the visitor's queued and running jobs; returns how many."""
        count = self.scheduler.cancel(visitor, reason)
        if count:
            log.info("cancelled %d job(s) of %s: %s", count, visitor[:8] or "api", reason)
        return count

    def close(self) -> None:
        """Remove this app's temporary outputs (on shutdown)."""
        shutil.rmtree(self.output_dir, ignore_errors=True)
