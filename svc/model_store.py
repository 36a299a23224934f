"""Model folders for the web UI: saving uploaded models, and loaded models shared by all visitors.

A model folder is ``checkpoints/<name>/`` holding one ``.pth`` and its ``config.json``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import CheckpointError, SvcError

log = logging.getLogger(__name__)

MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}$")
UPLOAD_PREFIX = ".upload-"  # hidden staging folders inside the checkpoints folder

Loader = Callable[[Path, str], Any]  # (model folder, device) -> a loaded session


def model_name_for(files: Sequence[Path], name: str | None = None) -> str:
    """The folder name for an upload: ``name`` if given, else the ``.pth`` file's stem."""
    name = (name or "").strip()
    if not name:
        checkpoints = [p for p in files if p.suffix.lower() == ".pth"]
        name = checkpoints[0].stem if checkpoints else ""
    name = re.sub(r"[^A-Za-z0-9_.\- ]", "_", name).strip(" .")
    if not MODEL_NAME_PATTERN.match(name):
        raise CheckpointError(
            f"model name {name!r} cannot be used as a folder name; use letters, digits, '-', '_' or '.'"
        )
    return name


def _pick_upload_files(files: Sequence[Path]) -> tuple[Path, Path]:
    """The one ``.pth`` and the one ``.json`` among the uploaded files."""
    pth = [p for p in files if p.suffix.lower() == ".pth"]
    json = [p for p in files if p.suffix.lower() == ".json"]
    other = [p.name for p in files if p.suffix.lower() not in (".pth", ".json")]
    if other:
        raise CheckpointError(
            f"unexpected file(s) {', '.join(other)}; upload only the model's .pth file and its config.json"
        )
    if len(pth) != 1 or len(json) != 1:
        raise CheckpointError(
            f"upload exactly one .pth file and one config.json together (got {len(pth)} .pth and {len(json)} .json)"
        )
    return pth[0], json[0]


def save_uploaded_model(
    checkpoints_dir: Path,
    files: Sequence[str | Path],
    validate: Callable[[Path], None],
    name: str | None = None,
) -> Path:
    """Validate an uploaded ``.pth`` + ``config.json`` and save them as ``checkpoints_dir/<name>/``.

    The files are staged in a hidden folder beside the final one; ``validate(folder)`` must
    raise an ``SvcError`` if the model cannot be used (the web UI loads it on the CPU).  Only a
    model that passed is renamed into place, so a bad upload leaves nothing behind.
    """
    paths = [Path(f) for f in files]
    pth, config = _pick_upload_files(paths)
    name = model_name_for(paths, name)
    checkpoints_dir = Path(checkpoints_dir)
    final = checkpoints_dir / name
    if final.exists():
        raise CheckpointError(f"a model named '{name}' already exists in '{checkpoints_dir}'; choose another name")
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=checkpoints_dir))
    try:
        shutil.copyfile(pth, staging / pth.name)
        shutil.copyfile(config, staging / "config.json")
        try:
            validate(staging)
        except SvcError as e:
            # Name the uploaded files, not the hidden staging folder they were checked in.
            message = str(e).replace(f"{staging}{os.sep}", "").replace(str(staging), "the uploaded model")
            raise type(e)(f"the model was not saved: {message}") from None
        try:
            staging.rename(final)  # atomic; fails if another upload took the name meanwhile
        except OSError:
            raise CheckpointError(f"a model named '{name}' already exists in '{checkpoints_dir}'") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("saved uploaded model %s", final)
    return final


class ModelManager:
    """Loaded models shared read-only by all web sessions, keyed by (model folder, device).

    A session object is never changed after it is loaded: loading another model or device makes
    a new entry, so one visitor's load cannot alter another's conversion midway.  Loading waits
    only for another load of the same model on the same device (which it then shares), never for
    conversions: those are queued by ``svc.scheduler``.  At most ``max_loaded`` models stay in
    memory (least recently used first out; a conversion holding one keeps it alive until it ends).
    """

    def __init__(self, loader: Loader, max_loaded: int = 2) -> None:
        self._loader = loader
        self._max_loaded = max(1, max_loaded)
        self._cache: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._load_locks: dict[tuple[str, str, int], threading.Lock] = {}

    def get(self, model_dir: Path, device: str) -> Any:
        """The loaded session for ``model_dir`` on ``device``, loading it if needed."""
        key = _cache_key(model_dir, device)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._cache_lock:  # another thread may have loaded it while we waited
                if key in self._cache:
                    return self._cache[key]
            try:
                session = self._loader(Path(model_dir), device)
            except BaseException:
                with self._cache_lock:
                    self._load_locks.pop(key, None)
                raise
            with self._cache_lock:
                self._load_locks.pop(key, None)
                self._cache[key] = session
                while len(self._cache) > self._max_loaded:
                    dropped, _ = self._cache.popitem(last=False)
                    log.info("unloaded %s on %s", dropped[0], dropped[1])
            return session

    def holds(self, model_dir: Path, device: str) -> bool:
        """Whether ``model_dir`` is in memory on ``device`` (so ``get`` returns at once)."""
        key = _cache_key(model_dir, device)
        with self._cache_lock:
            return key in self._cache

    def loaded(self) -> list[tuple[str, str]]:
        """(model folder, device) of the models in memory, oldest first."""
        with self._cache_lock:
            return [(k[0], k[1]) for k in self._cache]


def _cache_key(model_dir: Path, device: str) -> tuple[str, str, int]:
    # The newest file time is part of the key so a replaced model is loaded afresh.
    model_dir = Path(model_dir).resolve()
    try:
        stamp = max((p.stat().st_mtime_ns for p in model_dir.iterdir() if p.is_file()), default=0)
    except OSError as e:
        raise SvcError(f"model folder '{model_dir}' cannot be read: {e}") from None
    return str(model_dir), device, stamp
