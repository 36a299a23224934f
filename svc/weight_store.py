"""Pretrained files a visitor may add to ``pretrain/`` (the web UI's optional Weights panel).

Every file the app can use comes from the component registries: the speech encoders
(``ENCODERS``), the F0 predictors that need a weight file (``F0_PREDICTORS``) and the NSF-HiFiGAN
enhancer.  An upload is identified by its published file name, checked by loading it with the
app's own loaders on the CPU in a hidden staging copy of ``pretrain/``, and only then renamed
into place, so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from . import enhancer
from .encoders import ENCODERS, load_encoder
from .errors import SvcError, WeightFileError
from .f0 import F0_PREDICTORS, get_f0_predictor
from .storage import STAGING_PREFIX, discard, place_file, take_upload
from .weights import DEFAULT_PRETRAIN_DIR

log = logging.getLogger(__name__)

MB = 1_000_000
# Rough sizes of the published files, by component name: an upload may be SIZE_MARGIN times
# as large.  A component missing here (added to a registry later) gets UNKNOWN_MB.
PUBLISHED_MB = {
    "vec768l12": 200, "vec256l9": 200,  # checkpoint_best_legacy_500.pt
    "hubertsoft": 380,
    "whisper-ppg": 1530,  # medium.pt
    "whisper-ppg-large": 3090,  # large-v2.pt
    "cnhubertlarge": 3900,  # a fairseq training checkpoint: may carry the optimizer state
    "dphubert": 100,
    "wavlmbase+": 380,
    "rmvpe": 370,  # yxlllc's float32 file with the unused timbre-filter weights; RVC's is ~181 MB
    "nsf_hifigan": 60,
}
UNKNOWN_MB = 4000
SIZE_MARGIN = 1.5
CONFIG_MAX_BYTES = 64_000  # a config.json is about 1 kB
_DUPLICATE_SUFFIX = re.compile(r" ?\(\d+\)(?=(\.[^.]*)?$)")  # "medium (1).pt": a second download


@dataclass(frozen=True)
class WeightTarget:
    """One pretrained file: what it is for, where it goes, where to get it, how large it may be.

    ``filename`` is its path under ``pretrain/`` (``"rmvpe.pt"``, ``"nsf_hifigan/model"``);
    ``kind`` selects the check (``"encoder"``, ``"f0"``, ``"enhancer"``); ``users`` are the
    registry names that read it; ``companions`` are files loaded together with it (the installed
    ones are put beside an upload, so the pair is checked).
    """

    label: str
    filename: str
    source: str
    present: bool
    max_bytes: int
    kind: str
    users: tuple[str, ...] = ()
    companions: tuple[str, ...] = ()

    @property
    def upload_name(self) -> str:
        """The name an uploaded file must have: the published file's name, without folders."""
        return PurePosixPath(self.filename).name


def _limit(component: str) -> int:
    return int(PUBLISHED_MB.get(component, UNKNOWN_MB) * MB * SIZE_MARGIN)


def _encoder_targets() -> list[WeightTarget]:
    users: dict[str, list[str]] = {}  # several encoders may read one file (ContentVec)
    for spec in ENCODERS.values():
        users.setdefault(spec.filename, []).append(spec.name)
    return [
        WeightTarget(f"speech encoder {' / '.join(names)}", filename, ENCODERS[names[0]].source, False,
                     max(_limit(n) for n in names), "encoder", tuple(names))
        for filename, names in users.items()
    ]


def _f0_targets() -> list[WeightTarget]:
    return [
        WeightTarget(f"F0 predictor {spec.name}", spec.weight_file, spec.weight_source or "", False,
                     _limit(spec.name), "f0", (spec.name,))
        for spec in F0_PREDICTORS.values() if spec.weight_file
    ]


def _enhancer_targets() -> list[WeightTarget]:
    model, config = enhancer.MODEL_FILE, enhancer.CONFIG_FILE
    return [
        WeightTarget("NSF-HiFiGAN enhancer (weights)", model, enhancer.SOURCE, False, _limit("nsf_hifigan"),
                     "enhancer", ("nsf_hifigan",), (config,)),
        WeightTarget("NSF-HiFiGAN enhancer (its config.json)", config, enhancer.SOURCE, False, CONFIG_MAX_BYTES,
                     "enhancer", ("nsf_hifigan",), (model,)),
    ]


def weight_targets(pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR) -> list[WeightTarget]:
    """Every pretrained file the app can use, with whether it is in ``pretrain_dir`` now."""
    pretrain_dir = Path(pretrain_dir)
    return [replace(t, present=(pretrain_dir / t.filename).is_file())
            for t in (*_encoder_targets(), *_f0_targets(), *_enhancer_targets())]


def _base_name(name: str) -> str:
    """The file name without any folder (browsers may send ``C:\\fakepath\\x.pt``)."""
    return re.split(r"[/\\]", name.strip())[-1]


def _match_key(name: str) -> str:
    return _DUPLICATE_SUFFIX.sub("", _base_name(name)).casefold()


def identify_weight_file(upload_name: str, pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR) -> WeightTarget:
    """The target an uploaded file is, by its name (case and a " (1)" download suffix ignored).

    An unknown name is a ``WeightFileError`` listing the accepted names.
    """
    targets = weight_targets(pretrain_dir)
    wanted = _match_key(upload_name)
    for target in targets:
        if _match_key(target.upload_name) == wanted:
            return target
    names = ", ".join(dict.fromkeys(_listed(t.filename) for t in targets))
    raise WeightFileError(
        f"'{_base_name(upload_name)}' is not a weight file this app uses; upload it under its published "
        f"name, one of: {names}"
    )


def _listed(filename: str) -> str:
    path = PurePosixPath(filename)
    return path.name if path.parent == PurePosixPath(".") else f"{path.name} (of {path.parent}/)"


@dataclass(frozen=True)
class _Upload:
    source: Path
    shown: str  # the name the visitor knows the file by
    target: WeightTarget


def save_uploaded_weight(
    pretrain_dir: str | Path,
    path: str | Path,
    display_name: str,
    move: bool = True,
    *,
    replace: bool = False,
    max_bytes: int | None = None,
) -> Path:
    """Check one uploaded weight file and store it in ``pretrain_dir``; see ``save_uploaded_weights``."""
    return save_uploaded_weights(pretrain_dir, [(path, display_name)], move=move, replace=replace,
                                 max_bytes=max_bytes)[0]


def save_uploaded_weights(
    pretrain_dir: str | Path,
    uploads: Sequence[tuple[str | Path, str]],
    *,
    move: bool = True,
    replace: bool = False,
    max_bytes: int | None = None,
) -> list[Path]:
    """Check uploaded ``(path, display_name)`` files together and store them; return where they went.

    Each file is identified by ``display_name``, must be within its size limit (``max_bytes``
    overrides every limit), is refused if already installed unless ``replace``, and must load
    with the app's own loader on the CPU (read with ``torch.load(weights_only=True)``, so a file
    carrying code is refused).  The NSF-HiFiGAN ``model`` is checked with the ``config.json``
    uploaded with it, else the installed one.  Only if every file passes are they renamed into
    place, with the umask's file modes.  ``move`` moves the uploads instead of copying them and
    deletes them if the upload fails, so no copy stays in the upload's temp folder.  Errors are
    ``SvcError``s naming files by ``display_name``, never by a server path.
    """
    pretrain_dir = Path(pretrain_dir)
    staging: Path | None = None
    try:
        items = _identify_all(pretrain_dir, uploads)
        for item in items:
            _check_upload(pretrain_dir, item, replace, max_bytes)
        pretrain_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=pretrain_dir))
        _stage(pretrain_dir, staging, items, move)
        for item in items:
            _validate(staging, item, items)
        return [_install(pretrain_dir, staging, item, replace) for item in items]
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if move:
            discard(Path(p) for p, _ in uploads)  # after a success they were moved away already


def _identify_all(pretrain_dir: Path, uploads: Sequence[tuple[str | Path, str]]) -> list[_Upload]:
    if not uploads:
        raise WeightFileError("no file was uploaded; drop a weight file first")
    items = [_Upload(Path(path), _base_name(shown), identify_weight_file(shown, pretrain_dir))
             for path, shown in uploads]
    seen: dict[str, str] = {}
    for item in items:
        if item.target.filename in seen:
            raise WeightFileError(
                f"'{seen[item.target.filename]}' and '{item.shown}' are both the {item.target.label}; upload one"
            )
        seen[item.target.filename] = item.shown
    return items


def _check_upload(pretrain_dir: Path, item: _Upload, replace: bool, max_bytes: int | None) -> None:
    """Checks that need no loading: received, not empty, within the limit, not installed already."""
    try:
        size = item.source.stat().st_size
    except OSError:
        raise WeightFileError(f"'{item.shown}' was not received completely; upload it again") from None
    limit = item.target.max_bytes if max_bytes is None else max_bytes
    if size == 0:
        raise WeightFileError(f"'{item.shown}' is empty (0 bytes); nothing was saved")
    if size > limit:
        raise WeightFileError(
            f"'{item.shown}' is {_size(size)}, more than the {_size(limit)} accepted for the "
            f"{item.target.label}; nothing was saved"
        )
    if not replace and os.path.lexists(pretrain_dir / item.target.filename):
        raise WeightFileError(
            f"'{item.shown}' was not saved: pretrain/{item.target.filename} is already installed "
            "(choose to replace it to overwrite)"
        )


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _stage(pretrain_dir: Path, staging: Path, items: list[_Upload], move: bool) -> None:
    """Lay the uploads out in ``staging`` as in ``pretrain/``, with installed companions beside them."""
    for item in items:
        dest = staging / item.target.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        take_upload(item.source, dest, move)
    for item in items:
        for companion in item.target.companions:
            installed, dest = pretrain_dir / companion, staging / companion
            if not dest.exists() and installed.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(installed, dest)


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)  # read-only use: a hard link saves copying a large file
    except OSError:
        shutil.copyfile(source, dest)


def _validate(staging: Path, item: _Upload, items: list[_Upload]) -> None:
    """Load ``item`` from ``staging`` with the app's loader; an error names files as the visitor knows them."""
    try:
        _CHECKS[item.target.kind](staging, item.target)
    except SvcError as e:
        raise type(e)(_refusal(str(e), staging, item, items)) from None
    except Exception as e:  # an upload is untrusted input: any loader failure is a refusal
        log.warning("uploaded %s failed its check", item.shown, exc_info=True)
        lines = str(e).strip().splitlines()
        detail = f"{type(e).__name__}: {lines[0] if lines else ''}"[:200]
        raise WeightFileError(
            _refusal(f"'{item.shown}' could not be loaded as the {item.target.label} ({detail})", staging, item, items)
        ) from None


def _refusal(message: str, staging: Path, item: _Upload, items: list[_Upload]) -> str:
    """``message`` with staged paths replaced by the names the visitor knows, ending "nothing was saved"."""
    shown = {i.target.filename: i.shown for i in items}
    for path in sorted(staging.rglob("*"), key=lambda p: -len(str(p))):
        filename = path.relative_to(staging).as_posix()
        message = message.replace(str(path), shown.get(filename, f"pretrain/{filename}"))
    message = message.replace(str(staging), "pretrain").strip().rstrip(".")
    if f"'{item.shown}'" not in message:
        message = f"'{item.shown}': {message}"
    return f"{message}; nothing was saved"


def _check_encoder(staging: Path, target: WeightTarget) -> None:
    for name in target.users:  # ContentVec must serve both vec768l12 and vec256l9
        load_encoder(name, staging)


def _check_f0(staging: Path, target: WeightTarget) -> None:
    for name in target.users:
        get_f0_predictor(name, hop_length=512, sampling_rate=44100, pretrain_dir=staging)


def _check_enhancer(staging: Path, target: WeightTarget) -> None:
    model, config = staging / enhancer.MODEL_FILE, staging / enhancer.CONFIG_FILE
    if model.is_file() and not config.is_file():
        raise WeightFileError(
            f"the NSF-HiFiGAN weights '{model.name}' can only be checked with their '{config.name}'; "
            "upload both files together"
        )
    if model.is_file():
        enhancer.Enhancer.from_pretrain(staging)
    else:  # a config.json uploaded before any model: only the config itself can be checked
        enhancer.HifiganConfig.from_json(config)


_CHECKS: dict[str, Callable[[Path, WeightTarget], None]] = {
    "encoder": _check_encoder,
    "f0": _check_f0,
    "enhancer": _check_enhancer,
}


def _install(pretrain_dir: Path, staging: Path, item: _Upload, replace: bool) -> Path:
    final = pretrain_dir / item.target.filename
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        place_file(staging / item.target.filename, final, replace)
    except FileExistsError:
        raise WeightFileError(
            f"'{item.shown}' was not saved: pretrain/{item.target.filename} was installed meanwhile"
        ) from None
    log.info("installed uploaded weight file %s", final)
    return final
