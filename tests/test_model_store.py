"""Saving uploaded models atomically, and the shared per-device model cache."""

import json
import os
import threading
import time
from pathlib import Path

import pytest

from svc import storage
from svc.errors import CheckpointError, SvcError
from svc.model_store import (
    UPLOAD_PREFIX,
    ModelManager,
    check_model_name,
    default_model_name,
    save_uploaded_model,
)


def _upload_files(folder: Path, pth_name: str = "G_800.pth", speakers: tuple[str, ...] = ("a",)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pth, config = folder / pth_name, folder / "my-config.json"
    pth.write_bytes(b"weights")
    config.write_text(json.dumps({"spk": {s: i for i, s in enumerate(speakers)}}))
    return [pth, config]


def _reject(folder: Path) -> None:
    raise CheckpointError(f"'{folder / 'G_800.pth'}' is not a so-vits-svc checkpoint")


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def _accept(folder: Path) -> None:
    assert (folder / "config.json").is_file()


def test_good_upload_is_saved_under_its_name(tmp_path):
    files = _upload_files(tmp_path / "up")
    saved = save_uploaded_model(tmp_path / "checkpoints", files, _accept, name="Alto voice")
    assert saved == tmp_path / "checkpoints" / "Alto voice"
    assert sorted(p.name for p in saved.iterdir()) == ["G_800.pth", "config.json"]
    assert (saved / "G_800.pth").read_bytes() == b"weights"


def test_default_name_is_the_only_speaker_else_the_checkpoint_stem(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    assert default_model_name(checkpoints, _upload_files(tmp_path / "a", speakers=("Alto",))) == "Alto"
    assert default_model_name(checkpoints, _upload_files(tmp_path / "b", speakers=("x", "y"))) == "G_800"
    assert default_model_name(checkpoints, _upload_files(tmp_path / "c", speakers=())) == "G_800"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "config.json").write_text("{not json")
    assert default_model_name(checkpoints, [tmp_path / "d" / "G_9.pth", tmp_path / "d" / "config.json"]) == "G_9"


@pytest.mark.parametrize(
    ("speaker", "expected"),
    [("../evil", "evil"), ("a/b:c", "a_b_c"), ("歌手 1", "歌手 1"), ("...", "model"), ("x" * 80, "x" * 64)],
)
def test_default_names_are_made_safe(tmp_path, speaker, expected):
    assert default_model_name(tmp_path, _upload_files(tmp_path / "up", speakers=(speaker,))) == expected


def test_default_names_of_same_named_checkpoints_do_not_collide(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    saved = [save_uploaded_model(checkpoints, _upload_files(tmp_path / f"up{i}", speakers=("x", "y")), _accept)
             for i in range(3)]
    assert [p.name for p in saved] == ["G_800", "G_800-2", "G_800-3"]
    assert default_model_name(checkpoints, _upload_files(tmp_path / "up", speakers=("x", "y"))) == "G_800-4"


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "voice:1", ".hidden", "-x", "x" * 65, "a\x00b"])
def test_unsafe_typed_names_are_refused_as_typed(tmp_path, name):
    checkpoints = tmp_path / "checkpoints"
    files = _upload_files(tmp_path / "up")
    with pytest.raises(CheckpointError) as err:
        save_uploaded_model(checkpoints, files, _accept, name=name, move=True)
    assert f"the model name '{name}' cannot be used" in str(err.value)
    assert "letters, digits, spaces, '_', '-' or '.'" in str(err.value)
    assert not checkpoints.exists() or list(checkpoints.iterdir()) == []
    assert not any(p.exists() for p in files)  # move=True consumes the upload whatever happens


def test_typed_names_are_kept_as_typed():
    assert check_model_name("  My voice v1.2_x-3 ") == "My voice v1.2_x-3"
    assert check_model_name("ソプラノ") == "ソプラノ"


def test_rejected_upload_leaves_nothing_behind(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(CheckpointError, match="^the model was not saved: 'G_800.pth' is not a so-vits-svc checkpoint$"):
        save_uploaded_model(checkpoints, _upload_files(tmp_path / "up"), _reject)
    assert list(checkpoints.iterdir()) == []


def test_moved_upload_leaves_no_copy_in_temp(tmp_path):
    files = _upload_files(tmp_path / "up")
    saved = save_uploaded_model(tmp_path / "checkpoints", files, _accept, move=True)
    assert saved.name == "a" and (saved / "G_800.pth").read_bytes() == b"weights"
    assert list((tmp_path / "up").iterdir()) == []


def test_moved_upload_is_deleted_after_a_failed_validation(tmp_path):
    with pytest.raises(CheckpointError, match="not saved"):
        save_uploaded_model(tmp_path / "checkpoints", _upload_files(tmp_path / "up"), _reject, move=True)
    assert list((tmp_path / "up").iterdir()) == []
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_copied_upload_keeps_the_source(tmp_path):
    files = _upload_files(tmp_path / "up")
    save_uploaded_model(tmp_path / "checkpoints", files, _accept)
    assert all(p.exists() for p in files)


@pytest.mark.parametrize("proc_status", [True, False])
def test_saved_model_follows_the_umask(tmp_path, umask_027, monkeypatch, proc_status):
    if not proc_status:  # the os.umask fallback, for kernels without Umask: in /proc
        monkeypatch.setattr(storage, "_PROC_STATUS", tmp_path / "missing")
    files = _upload_files(tmp_path / "up")
    for f in files:
        f.chmod(0o600)  # as a private temp upload
    saved = save_uploaded_model(tmp_path / "checkpoints", files, _accept, move=True)
    assert saved.stat().st_mode & 0o777 == 0o750
    assert {p.name: p.stat().st_mode & 0o777 for p in saved.iterdir()} == {"G_800.pth": 0o640, "config.json": 0o640}
    assert storage.current_umask() == 0o027


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["G.pth"], "exactly one .pth file and one config.json"),
        (["G.pth", "H.pth", "config.json"], "exactly one .pth"),
        (["G.pth", "config.json", "kmeans.pt"], "unexpected file"),
    ],
)
def test_upload_must_be_one_pth_and_one_json(tmp_path, names, message):
    files = []
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        files.append(tmp_path / name)
    with pytest.raises(CheckpointError, match=message):
        save_uploaded_model(tmp_path / "checkpoints", files, _accept)
    assert not (tmp_path / "checkpoints").exists() or list((tmp_path / "checkpoints").iterdir()) == []


def test_existing_model_is_never_overwritten(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    save_uploaded_model(checkpoints, _upload_files(tmp_path / "a"), _accept, name="voice")
    with pytest.raises(CheckpointError, match="^a model named 'voice' already exists; type another name$"):
        save_uploaded_model(checkpoints, _upload_files(tmp_path / "b"), _accept, name="voice")
    assert (checkpoints / "voice" / "G_800.pth").read_bytes() == b"weights"
    assert [p.name for p in checkpoints.iterdir() if p.name.startswith(UPLOAD_PREFIX)] == []


def _model_dir(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "G.pth").write_bytes(name.encode())
    return folder


def test_manager_loads_each_model_and_device_once(tmp_path):
    calls = []
    manager = ModelManager(lambda path, device: calls.append((path.name, device)) or object(), max_loaded=4)
    a, b = _model_dir(tmp_path, "a"), _model_dir(tmp_path, "b")
    assert not manager.holds(a, "cpu")
    first = manager.get(a, "cpu")
    assert manager.holds(a, "cpu") and not manager.holds(a, "cuda")
    assert manager.get(a, "cpu") is first
    assert manager.get(b, "cpu") is not first
    assert manager.get(a, "cuda") is not first
    assert calls == [("a", "cpu"), ("b", "cpu"), ("a", "cuda")]


def test_manager_drops_the_least_recently_used(tmp_path):
    manager = ModelManager(lambda path, device: object(), max_loaded=2)
    a, b, c = (_model_dir(tmp_path, n) for n in "abc")
    manager.get(a, "cpu")
    manager.get(b, "cpu")
    manager.get(a, "cpu")  # a is now the most recent
    manager.get(c, "cpu")
    assert [Path(p).name for p, _ in manager.loaded()] == ["a", "c"]


def test_manager_reloads_a_replaced_model(tmp_path):
    manager = ModelManager(lambda path, device: object())
    a = _model_dir(tmp_path, "a")
    old = manager.get(a, "cpu")
    time.sleep(0.01)
    (a / "G.pth").write_bytes(b"new weights")
    assert manager.get(a, "cpu") is not old


def test_concurrent_requests_share_one_load(tmp_path):
    calls = []

    def slow_loader(path, device):
        calls.append(path)
        time.sleep(0.2)
        return object()

    manager = ModelManager(slow_loader)
    a = _model_dir(tmp_path, "a")
    results = []
    threads = [threading.Thread(target=lambda: results.append(manager.get(a, "cpu"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len({id(r) for r in results}) == 1


def test_unreadable_model_folder_is_a_user_error(tmp_path):
    manager = ModelManager(lambda path, device: object())
    with pytest.raises(SvcError, match="cannot be read"):
        manager.get(tmp_path / "missing", "cpu")
