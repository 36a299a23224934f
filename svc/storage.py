"""Storing uploaded files on the server: the operator's umask, moving uploads, atomic placement.

Uploads are first staged under a hidden name in the folder they end up in (so the final rename
never crosses file systems), checked there, then renamed into place.  ``tempfile`` makes staged
files and folders private (0600/0700); stored ones get the modes the operator's umask asks for.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

STAGING_PREFIX = ".upload-"  # hidden staging names; listings skip names starting with "."

_UMASK_LOCK = threading.Lock()
_PROC_STATUS = Path("/proc/self/status")


def current_umask() -> int:
    """The process umask, read without changing it where the kernel reports it.

    ``os.umask`` can only be read by setting it, and while it is set every file another thread
    creates gets the temporary mask; so ``/proc/self/status`` (Linux >= 4.7) is read first.  The
    fallback sets the strict 0o077 for that instant (a racing file is made too private, never too
    open), under a lock so two readers cannot restore each other's temporary value.
    """
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o077)
        os.umask(old)
    return old


def file_mode() -> int:
    """The mode a new file gets from ``open``: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The mode a new folder gets from ``mkdir``: ``0o777`` less the umask."""
    return 0o777 & ~current_umask()


def apply_default_modes(folder: Path) -> None:
    """Give ``folder`` and the files directly in it the umask's default modes."""
    os.chmod(folder, folder_mode())
    mode = file_mode()
    for path in folder.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def take_upload(source: Path, dest: Path, move: bool) -> None:
    """Move (``move``) or copy ``source`` to ``dest``, which gets the default file mode.

    A move keeps no copy in the upload's temp folder; across file systems it copies and deletes.
    """
    if move:
        shutil.move(source, dest)
    else:
        shutil.copyfile(source, dest)
    os.chmod(dest, file_mode())


def place_file(staged: Path, final: Path, replace: bool = False) -> None:
    """Rename ``staged`` to ``final`` atomically; without ``replace`` an existing file stays.

    ``os.rename`` silently replaces a file on POSIX, so a no-overwrite placement links the new
    name (which fails if it exists, atomically) and then drops the staged one.  ``FileExistsError``
    if ``final`` exists and ``replace`` is false.
    """
    if replace:
        os.replace(staged, final)
        return
    try:
        os.link(staged, final)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename (a small race)
        if final.exists():
            raise FileExistsError(final) from None
        os.rename(staged, final)
        return
    staged.unlink()


def discard(paths: Iterable[Path | str]) -> None:
    """Delete these files if they exist; one that cannot be deleted is logged and left."""
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not delete %s: %s", path, e)


def remove_stale_staging(folder: Path, older_than_s: float = 6 * 3600) -> list[Path]:
    """Delete staging files and folders in ``folder`` that a crash left behind; return them.

    Only entries untouched for ``older_than_s`` go, so an upload still being checked by another
    worker process is left alone.  Meant to run when the web UI starts.
    """
    removed = []
    cutoff = time.time() - older_than_s
    for path in Path(folder).glob(f"{STAGING_PREFIX}*"):
        try:
            if path.lstat().st_mtime > cutoff:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as e:
            log.warning("could not remove stale upload %s: %s", path, e)
            continue
        removed.append(path)
    return removed
