"""Upload storage helpers: reading the umask, no-overwrite placement, crash leftovers."""

import os
import time

import pytest

from svc import storage
from svc.storage import (
    STAGING_PREFIX,
    current_umask,
    file_mode,
    folder_mode,
    place_file,
    remove_stale_staging,
    take_upload,
)


@pytest.mark.parametrize("proc_status", [True, False])
def test_umask_is_read_without_changing_it(tmp_path, monkeypatch, proc_status):
    if not proc_status:
        monkeypatch.setattr(storage, "_PROC_STATUS", tmp_path / "missing")
    old = os.umask(0o037)
    try:
        assert current_umask() == 0o037
        assert (file_mode(), folder_mode()) == (0o640, 0o740)
        assert os.umask(0o037) == 0o037  # still in force afterwards
    finally:
        os.umask(old)


def test_take_upload_moves_or_copies_with_the_default_mode(tmp_path):
    source = tmp_path / "upload"
    source.write_bytes(b"data")
    source.chmod(0o600)
    take_upload(source, tmp_path / "copy", move=False)
    assert source.exists() and (tmp_path / "copy").stat().st_mode & 0o777 == file_mode()
    take_upload(source, tmp_path / "moved", move=True)
    assert not source.exists() and (tmp_path / "moved").read_bytes() == b"data"


@pytest.mark.parametrize("hard_links", [True, False])
def test_place_file_never_overwrites_unless_asked(tmp_path, monkeypatch, hard_links):
    if not hard_links:
        def no_link(*args):
            raise OSError("hard links not supported")

        monkeypatch.setattr(os, "link", no_link)
    final = tmp_path / "final"
    staged = tmp_path / ".upload-1"
    staged.write_bytes(b"new")
    place_file(staged, final)
    assert final.read_bytes() == b"new" and not staged.exists()
    staged.write_bytes(b"newer")
    with pytest.raises(FileExistsError):
        place_file(staged, final)
    assert final.read_bytes() == b"new"
    place_file(staged, final, replace=True)
    assert final.read_bytes() == b"newer" and not staged.exists()


def test_only_old_staging_entries_are_removed(tmp_path):
    old_dir, old_file, fresh = (tmp_path / f"{STAGING_PREFIX}{n}" for n in ("a", "b", "c"))
    old_dir.mkdir()
    (old_dir / "G.pth").write_bytes(b"x")
    old_file.write_bytes(b"x")
    fresh.mkdir()
    (tmp_path / "model").mkdir()
    hours_ago = time.time() - 7 * 3600
    for path in (old_dir, old_file):
        os.utime(path, (hours_ago, hours_ago))
    assert sorted(p.name for p in remove_stale_staging(tmp_path)) == [old_dir.name, old_file.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == [fresh.name, "model"]
