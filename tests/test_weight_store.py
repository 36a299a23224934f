"""Uploading pretrained weight files: identified by name, loaded before storing, refused cleanly."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from encoder_fixtures import make_hubert_soft_file
from encoder_fixtures_b import make_wavlm_file
from enhancer_fixtures import write_tiny_nsf_hifigan
from f0_fixtures import make_rmvpe_file

from svc.encoders import ENCODERS, load_encoder
from svc.enhancer import Enhancer
from svc.errors import ConfigError, SvcError, WeightFileError
from svc.f0 import get_f0_predictor
from svc.weight_store import (
    identify_weight_file,
    save_uploaded_weight,
    save_uploaded_weights,
    weight_targets,
)


class _RunsCode:
    """Pickles as a call to os.mkdir: loading it unrestricted would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


@pytest.fixture(scope="module")
def rmvpe_file(tmp_path_factory) -> Path:
    """A full-size random RMVPE in the published format (written once: it is ~180 MB)."""
    return make_rmvpe_file(tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt")


@pytest.fixture
def uploads(tmp_path) -> Path:
    """Where the web server keeps uploads: a deep temp folder whose path must never be shown."""
    folder = tmp_path / "gradio" / "5f3c0a9e"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def pretrain(tmp_path) -> Path:
    folder = tmp_path / "pretrain"
    folder.mkdir()
    return folder


def _installed(pretrain: Path) -> list[str]:
    """Every file and folder under pretrain/, hidden ones included."""
    return sorted(p.relative_to(pretrain).as_posix() for p in pretrain.rglob("*"))


def _refused(pretrain, path, name, match, error=WeightFileError, **kwargs) -> str:
    """Upload ``path`` as ``name``, expect a refusal matching ``match``; check nothing stayed."""
    before = _installed(pretrain)
    with pytest.raises(error, match=match) as err:
        save_uploaded_weight(pretrain, path, name, **kwargs)
    message = str(err.value)
    assert "\n" not in message and str(path.parent) not in message and str(pretrain) not in message
    assert _installed(pretrain) == before
    assert not path.exists()  # move=True: the upload is consumed whatever happens
    return message


def test_targets_cover_every_registry_file_and_report_presence(pretrain, rmvpe_file):
    targets = {t.filename: t for t in weight_targets(pretrain)}
    assert {spec.filename for spec in ENCODERS.values()} <= set(targets)
    assert {"rmvpe.pt", "nsf_hifigan/model", "nsf_hifigan/config.json"} <= set(targets)
    assert targets["checkpoint_best_legacy_500.pt"].users == ("vec768l12", "vec256l9")
    assert not any(t.present for t in targets.values())
    assert 1.5e9 < targets["medium.pt"].max_bytes < 1e10
    assert all(0 < t.max_bytes < 1e10 and t.source and t.label for t in targets.values())
    assert len({t.upload_name.casefold() for t in targets.values()}) == len(targets)  # names identify targets
    shutil.copyfile(rmvpe_file, pretrain / "rmvpe.pt")
    assert identify_weight_file("rmvpe.pt", pretrain).present


@pytest.mark.parametrize(
    ("name", "filename"),
    [("checkpoint_best_legacy_500.pt", "checkpoint_best_legacy_500.pt"), ("medium (1).pt", "medium.pt"),
     ("WAVLM-BASE+.PT", "WavLM-Base+.pt"), ("C:\\fakepath\\rmvpe.pt", "rmvpe.pt"),
     ("hubert-soft-0d54a1f4.pt", "hubert-soft-0d54a1f4.pt"), ("model", "nsf_hifigan/model"),
     ("config.json", "nsf_hifigan/config.json")],
)
def test_files_are_identified_by_their_published_names(name, filename):
    assert identify_weight_file(name).filename == filename


def test_unknown_name_lists_the_accepted_names(pretrain, uploads):
    path = uploads / "model.pt"
    path.write_bytes(b"x" * 100)
    message = _refused(pretrain, path, "model.pt", "^'model.pt' is not a weight file this app uses")
    for name in ("checkpoint_best_legacy_500.pt", "medium.pt", "WavLM-Base+.pt", "rmvpe.pt",
                 "model (of nsf_hifigan/)", "config.json (of nsf_hifigan/)"):
        assert name in message


def test_contentvec_is_stored_and_loads(pretrain, uploads, pretrain_dir):
    path = uploads / "checkpoint_best_legacy_500.pt"
    shutil.copyfile(pretrain_dir / "checkpoint_best_legacy_500.pt", path)
    stored = save_uploaded_weight(pretrain, path, path.name)
    assert stored == pretrain / "checkpoint_best_legacy_500.pt" and not path.exists()
    assert _installed(pretrain) == ["checkpoint_best_legacy_500.pt"]
    features = load_encoder("vec256l9", pretrain).encode(np.zeros(16000, np.float32), 16000)
    assert features.shape[:2] == (1, 256)


def test_rmvpe_is_stored_with_umask_modes_and_loads(pretrain, uploads, rmvpe_file):
    path = uploads / "tmpa8f3.pt"  # the server's temp name; the visitor's name is passed apart
    shutil.copyfile(rmvpe_file, path)
    path.chmod(0o600)
    old = os.umask(0o027)
    try:
        stored = save_uploaded_weight(pretrain, path, "rmvpe.pt")
    finally:
        os.umask(old)
    assert stored.stat().st_mode & 0o777 == 0o640
    assert get_f0_predictor("rmvpe", hop_length=512, sampling_rate=16000, pretrain_dir=pretrain).name == "rmvpe"


def test_nsf_hifigan_pair_is_stored_and_loads(pretrain, uploads):
    write_tiny_nsf_hifigan(uploads)
    files = [(uploads / "nsf_hifigan" / name, name) for name in ("model", "config.json")]
    stored = save_uploaded_weights(pretrain, files)
    assert stored == [pretrain / "nsf_hifigan" / "model", pretrain / "nsf_hifigan" / "config.json"]
    assert _installed(pretrain) == ["nsf_hifigan", "nsf_hifigan/config.json", "nsf_hifigan/model"]
    assert Enhancer.from_pretrain(pretrain).cfg.sampling_rate == 8000


def test_nsf_hifigan_config_first_then_model(pretrain, uploads):
    write_tiny_nsf_hifigan(uploads)
    model = uploads / "nsf_hifigan" / "model"
    save_uploaded_weight(pretrain, uploads / "nsf_hifigan" / "config.json", "config.json")
    save_uploaded_weight(pretrain, model, "model")
    Enhancer.from_pretrain(pretrain)


def test_nsf_hifigan_model_alone_and_mismatched_config_are_refused(pretrain, uploads, tmp_path):
    write_tiny_nsf_hifigan(uploads)
    _refused(pretrain, uploads / "nsf_hifigan" / "model", "model",
             "^the NSF-HiFiGAN weights 'model' can only be checked with their 'config.json'; upload both")
    # A config that does not fit the installed weights is refused too.
    write_tiny_nsf_hifigan(pretrain)
    write_tiny_nsf_hifigan(tmp_path / "other", config={**_tiny_config(), "upsample_initial_channel": 16})
    message = _refused(pretrain, tmp_path / "other" / "nsf_hifigan" / "config.json", "config.json",
                       "pretrain/nsf_hifigan/model' does not match", replace=True)
    assert message.endswith("; nothing was saved")


def _tiny_config() -> dict:
    from enhancer_fixtures import TINY_CONFIG

    return dict(TINY_CONFIG)


def test_text_renamed_pt_is_refused(pretrain, uploads):
    path = uploads / "rmvpe.pt"
    path.write_text("this is not a weight file\n" * 20)
    _refused(pretrain, path, "rmvpe.pt", r"^'rmvpe.pt' cannot be read as an RMVPE weight file .*nothing was saved$")


def test_wrong_component_under_a_right_name_is_refused(pretrain, uploads, tmp_path):
    wavlm = make_wavlm_file(uploads / "upload.pt")
    _refused(pretrain, wavlm, "hubert-soft-0d54a1f4.pt",
             "^'hubert-soft-0d54a1f4.pt' is not a HuBERT-Soft state dict .*: it looks like a fairseq or WavLM")
    soft = uploads / "upload2.pt"
    make_hubert_soft_file(soft)
    _refused(pretrain, soft, "medium.pt", "^'medium.pt' is not the OpenAI Whisper checkpoint medium.pt")
    soft = uploads / "upload3.pt"
    make_hubert_soft_file(soft)
    _refused(pretrain, soft, "checkpoint_best_legacy_500.pt", "^'checkpoint_best_legacy_500.pt' is not a ContentVec")


def test_pickle_carrying_code_is_refused_without_running_it(pretrain, uploads, tmp_path):
    marker = tmp_path / "code-ran"
    path = uploads / "WavLM-Base+.pt"
    torch.save({"cfg": {}, "model": _RunsCode(marker)}, path)
    _refused(pretrain, path, "WavLM-Base+.pt",
             r"^refusing to load 'WavLM-Base\+.pt': .*contains the Python class \w+\.mkdir, which could run code")
    assert not marker.exists()


def test_oversize_and_empty_files_are_refused(pretrain, uploads):
    path = uploads / "a.pt"
    make_hubert_soft_file(path)
    _refused(pretrain, path, "hubert-soft-0d54a1f4.pt",
             r"^'hubert-soft-0d54a1f4.pt' is \d+\.\d MB, more than the 1.0 kB accepted for the speech encoder "
             "hubertsoft; nothing was saved$", max_bytes=1000)
    empty = uploads / "b.pt"
    empty.write_bytes(b"")
    _refused(pretrain, empty, "rmvpe.pt", r"^'rmvpe.pt' is empty \(0 bytes\); nothing was saved$")


def test_installed_file_is_kept_unless_replace(pretrain, uploads, pretrain_dir):
    source = pretrain_dir / "checkpoint_best_legacy_500.pt"
    shutil.copyfile(source, uploads / "a.pt")
    save_uploaded_weight(pretrain, uploads / "a.pt", "checkpoint_best_legacy_500.pt")
    (pretrain / "checkpoint_best_legacy_500.pt").write_bytes(b"old")  # stands for the installed version
    shutil.copyfile(source, uploads / "b.pt")
    _refused(pretrain, uploads / "b.pt", "checkpoint_best_legacy_500.pt",
             "^'checkpoint_best_legacy_500.pt' was not saved: pretrain/checkpoint_best_legacy_500.pt is already")
    assert (pretrain / "checkpoint_best_legacy_500.pt").read_bytes() == b"old"
    shutil.copyfile(source, uploads / "c.pt")
    save_uploaded_weight(pretrain, uploads / "c.pt", "checkpoint_best_legacy_500.pt", replace=True)
    assert (pretrain / "checkpoint_best_legacy_500.pt").read_bytes() == source.read_bytes()
    assert _installed(pretrain) == ["checkpoint_best_legacy_500.pt"]


def test_copy_mode_keeps_the_upload_and_bad_config_is_a_config_error(pretrain, uploads):
    path = uploads / "config.json"
    path.write_text('{"sampling_rate": 44100}')
    with pytest.raises(ConfigError, match="^The vocoder config 'config.json' has no key") as err:
        save_uploaded_weight(pretrain, path, "config.json", move=False)
    assert isinstance(err.value, SvcError) and str(uploads) not in str(err.value)
    assert path.exists() and _installed(pretrain) == []


def test_one_batch_may_not_hold_the_same_file_twice(pretrain, uploads):
    for name in ("a.pt", "b.pt"):
        (uploads / name).write_bytes(b"x")
    message = r"^'rmvpe.pt' and 'rmvpe \(1\).pt' are both the F0 predictor rmvpe; upload one$"
    with pytest.raises(WeightFileError, match=message):
        save_uploaded_weights(pretrain, [(uploads / "a.pt", "rmvpe.pt"), (uploads / "b.pt", "rmvpe (1).pt")])
    assert list(uploads.iterdir()) == [] and _installed(pretrain) == []
