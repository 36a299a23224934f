"""VitsSvc: finding model files, loading, speakers, device handling; folder listing helpers."""

import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from model_fixtures import make_checkpoint, make_inputs, small_config  # noqa: E402

import svc  # noqa: E402
from svc.errors import CheckpointError, ConfigError, OptionsError  # noqa: E402
from svc.session import VitsSvc, describe_model_dir, find_model_files, list_model_dirs  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    make_checkpoint(root / "singer", speakers=("alice", "bob", "carol"))
    make_checkpoint(root / "old40", "4.0", speakers=("nyaru",))
    (root / "empty").mkdir()
    return root


@pytest.fixture(scope="module")
def session(checkpoints):
    s = VitsSvc(device="cpu")
    s.load(checkpoints / "singer")
    return s


def test_load_folder_and_properties(session, checkpoints):
    assert svc.VitsSvc is VitsSvc
    assert session.is_loaded and session.device == torch.device("cpu")
    assert session.speakers == ["alice", "bob", "carol"]
    assert (session.sampling_rate, session.hop_length, session.version) == (44100, 512, "4.1")
    assert session.speech_encoder == "vec768l12"
    assert session.model_path == checkpoints / "singer" / "G_100.pth"
    assert session.load_notes == []
    x = make_inputs(small_config(), frames=4)
    audio, _ = session.model.infer(x["c"], x["f0"], x["uv"], torch.LongTensor([[session.speaker_id("bob")]]))
    assert audio.shape == (1, 1, 4 * 512)


def test_speaker_id(session):
    assert session.speaker_id("carol") == 2
    assert session.speaker_id(1) == 1
    assert session.speaker_id("2") == 2  # an id typed on the command line
    assert session.speaker_id(None) == 0
    with pytest.raises(OptionsError, match=r"unknown speaker 'dave'; this model has: alice \(0\), bob \(1\)"):
        session.speaker_id("dave")
    with pytest.raises(OptionsError, match="unknown speaker 5"):
        session.speaker_id(5)


def test_load_40_model_records_notes(checkpoints):
    s = VitsSvc(device="cpu")
    notes = s.load(checkpoints / "old40")
    assert s.version == "4.0" and s.speech_encoder == "vec256l9" and s.speakers == ["nyaru"]
    assert notes == s.load_notes and any("vec256l9" in n for n in notes)


def test_explicit_paths(tmp_path, checkpoints):
    shutil.copy(checkpoints / "singer" / "G_100.pth", tmp_path / "model.pth")
    shutil.copy(checkpoints / "singer" / "config.json", tmp_path / "my_config.json")
    s = VitsSvc(device="cpu")
    s.load(tmp_path / "model.pth", tmp_path / "my_config.json")
    assert s.speakers == ["alice", "bob", "carol"]
    assert find_model_files(tmp_path / "model.pth") == (tmp_path / "model.pth", tmp_path / "my_config.json")


def test_no_model_loaded():
    s = VitsSvc(device="cpu")
    assert not s.is_loaded
    with pytest.raises(OptionsError, match="no model is loaded"):
        _ = s.speakers


def test_failed_load_keeps_previous_model(tmp_path, checkpoints):
    s = VitsSvc(device="cpu")
    s.load(checkpoints / "singer")
    with pytest.raises(CheckpointError):
        s.load(checkpoints / "empty")
    assert s.speakers == ["alice", "bob", "carol"]


def test_folder_problems(tmp_path, checkpoints):
    with pytest.raises(CheckpointError, match="has no model \\(.pth\\) file"):
        find_model_files(checkpoints / "empty")
    with pytest.raises(CheckpointError, match="does not exist"):
        find_model_files(tmp_path / "nowhere")
    two = make_checkpoint(tmp_path / "two")
    shutil.copy(two / "G_100.pth", two / "G_200.pth")
    with pytest.raises(CheckpointError, match="2 candidate model \\(.pth\\) files \\(G_100.pth, G_200.pth\\)"):
        find_model_files(two)
    (two / "G_200.pth").rename(two / "D_200.pth")  # discriminators are not candidates
    assert find_model_files(two)[0] == two / "G_100.pth"
    (two / "config.json").rename(two / "a.json")
    assert find_model_files(two)[1] == two / "a.json"
    shutil.copy(two / "a.json", two / "b.json")
    with pytest.raises(CheckpointError, match="2 candidate config"):
        find_model_files(two)
    (two / "a.json").unlink()
    (two / "b.json").unlink()
    with pytest.raises(CheckpointError, match="has no config"):
        find_model_files(two)
    with pytest.raises(ConfigError, match="does not exist"):
        find_model_files(two, tmp_path / "missing.json")


def test_listing_and_describing(checkpoints):
    dirs = list_model_dirs(checkpoints)
    assert [d.name for d in dirs] == ["old40", "singer"]
    info = describe_model_dir(checkpoints / "old40")
    assert (info.name, info.version, info.speech_encoder, info.speakers) == ("old40", "4.0", "vec256l9", ("nyaru",))
    info = describe_model_dir(checkpoints / "singer")
    assert (info.version, info.speech_encoder, info.sampling_rate) == ("4.1", "vec768l12", 44100)
    assert list_model_dirs(checkpoints / "missing") == []


def test_set_device(session):
    assert session.set_device("cpu") == torch.device("cpu")
    assert next(session.model.parameters()).device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(OptionsError, match="CUDA is not available"):
            session.set_device("cuda")


def test_describe_reads_the_config_only(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    (model_dir / "G_100.pth").write_bytes(b"not read by describe")
    assert describe_model_dir(model_dir).speakers == ("alice", "bob", "carol")
