"""Saving uploaded models atomically, and the shared per-device model cache."""

import threading
import time
from pathlib import Path

import pytest

from svc.errors import CheckpointError, SvcError
from svc.model_store import UPLOAD_PREFIX, ModelManager, model_name_for, save_uploaded_model


def _upload_files(folder: Path, pth_name: str = "G_800.pth") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pth, config = folder / pth_name, folder / "my-config.json"
    pth.write_bytes(b"weights")
    config.write_text('{"spk": {"a": 0}}')
    return [pth, config]


def _accept(folder: Path) -> None:
    assert (folder / "config.json").is_file()


def test_good_upload_is_saved_under_its_name(tmp_path):
    files = _upload_files(tmp_path / "up")
    saved = save_uploaded_model(tmp_path / "checkpoints", files, _accept, name="Alto voice")
    assert saved == tmp_path / "checkpoints" / "Alto voice"
    assert sorted(p.name for p in saved.iterdir()) == ["G_800.pth", "config.json"]
    assert (saved / "G_800.pth").read_bytes() == b"weights"


def test_name_defaults_to_the_checkpoint_stem_and_is_sanitised():
    assert model_name_for([Path("x/G_800.pth"), Path("x/config.json")]) == "G_800"
    assert model_name_for([Path("a.pth")], "my/../voice") == "my_.._voice"
    with pytest.raises(CheckpointError, match="cannot be used as a folder name"):
        model_name_for([Path("a.pth")], "...")


def test_rejected_upload_leaves_nothing_behind(tmp_path):
    checkpoints = tmp_path / "checkpoints"

    def reject(folder: Path) -> None:
        raise CheckpointError(f"'{folder / 'G_800.pth'}' is not a so-vits-svc checkpoint")

    with pytest.raises(CheckpointError, match="^the model was not saved: 'G_800.pth' is not a so-vits-svc checkpoint$"):
        save_uploaded_model(checkpoints, _upload_files(tmp_path / "up"), reject)
    assert list(checkpoints.iterdir()) == []


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
    with pytest.raises(CheckpointError, match="already exists"):
        save_uploaded_model(checkpoints, _upload_files(tmp_path / "b"), _accept, name="voice")
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
