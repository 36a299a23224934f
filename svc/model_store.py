"""Model folders for the web UI: saving uploaded models, and loaded models shared by all visitors.

A model folder is ``checkpoints/<name>/`` holding one ``.pth`` and its ``config.json``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import CheckpointError, SvcError
from .storage import STAGING_PREFIX, apply_default_modes, discard, take_upload

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64
# A letter or digit (any script), then letters, digits, spaces, '_', '-' or '.': no '/', no '..'.
MODEL_NAME_PATTERN = re.compile(rf"[^\W_][\w .-]{{0,{MAX_NAME_LENGTH - 1}}}")
NAME_RULE = (f"use up to {MAX_NAME_LENGTH} letters, digits, spaces, '_', '-' or '.', "
             "starting with a letter or digit")
UPLOAD_PREFIX = STAGING_PREFIX  # hidden staging folders inside the checkpoints folder
DEFAULT_RENAME_TRIES = 20  # default names taken by concurrent uploads before we give up

Loader = Callable[[Path, str], Any]  # (model folder, device) -> a loaded session


def check_model_name(name: str) -> str:
    """``name`` (surrounding spaces removed) if it is a safe folder name, else a ``CheckpointError``.

    A typed name is never rewritten: the visitor sees their own text quoted back and fixes it.
    """
    stripped = name.strip()
    if not MODEL_NAME_PATTERN.fullmatch(stripped):
        raise CheckpointError(f"the model name '{name}' cannot be used as a folder name; {NAME_RULE}")
    return stripped


def default_model_name(checkpoints_dir: Path, files: Sequence[str | Path]) -> str:
    """The folder name for an upload with no name typed.

    Almost every so-vits-svc model is ``G_<steps>.pth``, so the name is the config's speaker when
    it has exactly one, else the ``.pth`` file's stem; characters that are not allowed become
    ``_``, and ``-2``, ``-3``... is added if a folder of that name exists.
    """
    paths = [Path(f) for f in files]
    return _unused_name(Path(checkpoints_dir), _safe_name(_speaker_or_stem(paths)))


def _speaker_or_stem(files: Sequence[Path]) -> str:
    config = next((p for p in files if p.suffix.lower() == ".json"), None)
    speakers = _config_speakers(config) if config is not None else []
    if len(speakers) == 1:
        return speakers[0]
    checkpoint = next((p for p in files if p.suffix.lower() == ".pth"), None)
    return checkpoint.stem if checkpoint is not None else ""


def _config_speakers(config: Path) -> list[str]:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []  # the model's validation reports an unreadable config
    speakers = data.get("spk") if isinstance(data, dict) else None
    return [str(s) for s in speakers] if isinstance(speakers, dict) else []


def _safe_name(text: str) -> str:
    name = re.sub(r"[^\w .-]", "_", text)
    name = re.sub(r"^[\W_]+", "", name)  # start with a letter or digit (no '.', so never hidden)
    return name[:MAX_NAME_LENGTH].rstrip() or "model"


def _unused_name(folder: Path, base: str) -> str:
    if not os.path.lexists(folder / base):
        return base
    for n in itertools.count(2):
        suffix = f"-{n}"
        candidate = base[: MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix
        if not os.path.lexists(folder / candidate):
            return candidate
    raise AssertionError("unreachable")


def _pick_upload_files(files: Sequence[Path]) -> tuple[Path, Path]:
    """The one ``.pth`` and the one ``.json`` among the uploaded files."""
    pth = [p for p in files if p.suffix.lower() == ".pth"]
    json_files = [p for p in files if p.suffix.lower() == ".json"]
    other = [p.name for p in files if p.suffix.lower() not in (".pth", ".json")]
    if other:
        raise CheckpointError(
            f"unexpected file(s) {', '.join(other)}; upload only the model's .pth file and its config.json"
        )
    if len(pth) != 1 or len(json_files) != 1:
        raise CheckpointError(
            f"upload exactly one .pth file and one config.json together "
            f"(got {len(pth)} .pth and {len(json_files)} .json)"
        )
    return pth[0], json_files[0]


def save_uploaded_model(
    checkpoints_dir: Path,
    files: Sequence[str | Path],
    validate: Callable[[Path], None],
    name: str | None = None,
    *,
    move: bool = False,
) -> Path:
    """Validate an uploaded ``.pth`` + ``config.json`` and save them as ``checkpoints_dir/<name>/``.

    With no ``name`` typed, ``default_model_name`` picks one.  The files are staged in a hidden
    folder beside the final one; ``validate(folder)`` must raise an ``SvcError`` if the model
    cannot be used (the web UI loads it on the CPU).  Only a model that passed is renamed into
    place, with the folder and file modes of the operator's umask, so a bad upload leaves nothing
    behind.  ``move`` moves the uploaded files instead of copying them, and deletes them if the
    upload fails, so no copy stays in the upload's temp folder either way.
    """
    paths = [Path(f) for f in files]
    try:
        return _save_model(Path(checkpoints_dir), paths, validate, name, move)
    finally:
        if move:
            discard(paths)  # after a success they were moved away already


def _save_model(checkpoints_dir: Path, paths: list[Path], validate: Callable[[Path], None],
                name: str | None, move: bool) -> Path:
    pth, config = _pick_upload_files(paths)
    typed = bool(name and name.strip())
    if typed:
        name = check_model_name(name or "")
        if os.path.lexists(checkpoints_dir / name):
            raise CheckpointError(f"a model named '{name}' already exists; type another name")
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=checkpoints_dir))
    try:
        take_upload(pth, staging / pth.name, move)
        take_upload(config, staging / "config.json", move)
        _validate_staged(staging, validate)
        apply_default_modes(staging)  # mkdtemp made it 0700
        final = _rename_into_place(staging, checkpoints_dir, name if typed else None, paths)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("saved uploaded model %s", final)
    return final


def _validate_staged(staging: Path, validate: Callable[[Path], None]) -> None:
    try:
        validate(staging)
    except SvcError as e:
        # Name the uploaded files, not the hidden staging folder they were checked in.
        message = str(e).replace(f"{staging}{os.sep}", "").replace(str(staging), "the uploaded model")
        raise type(e)(f"the model was not saved: {message}") from None


def _rename_into_place(staging: Path, checkpoints_dir: Path, typed: str | None, paths: list[Path]) -> Path:
    """Rename the staged folder to its name; a default name taken meanwhile moves on to the next."""
    for _ in range(1 if typed else DEFAULT_RENAME_TRIES):
        name = typed or default_model_name(checkpoints_dir, [staging / "config.json", *paths])
        final = checkpoints_dir / name
        try:
            staging.rename(final)  # atomic; fails if another upload took the name meanwhile
            return final
        except OSError as e:
            if not os.path.lexists(final):
                raise CheckpointError(f"the model could not be stored as '{name}' ({e.strerror})") from None
    raise CheckpointError(f"a model named '{name}' already exists; type another name")


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
