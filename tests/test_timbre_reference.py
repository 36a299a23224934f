"""Kmeans, retrieval and speaker-mix conversions against so-vits-svc 4.1's ``Svc.slice_inference``.

The expected outputs come from ``tests/data/make_timbre_reference.py``: the reference run on the
conftest model ``tiny41`` with our ContentVec plugged in, the fixture cluster model / feature
index and the cases' mixes (see ``timbre_reference_fixtures``).  Measured when generated:
SNR 91.5-103 dB, max |diff| 2.2e-5 to 9.4e-5 at output peaks of about 0.97 (what remains is
our F0 predictors' float32 steps, as in ``test_pipeline_reference``, plus the 16-bit storage).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reference_compare import assert_close_to_reference  # noqa: E402
from timbre_reference_fixtures import (  # noqa: E402
    CASES,
    REFERENCE_FILE,
    case_input,
    load_reference,
    write_timbre_files,
)

from svc import VitsSvc  # noqa: E402
from svc.timbre import spk_mix  # noqa: E402

DATA = Path(__file__).parent / "data" / REFERENCE_FILE
# The bound is the whole-pipeline family's (tests/test_pipeline_reference.py): float32 kernel noise
# across CPUs and kernel paths measured up to 82.7 dB / 1.3e-4 x peak there (README), 91.5 dB / 9.4e-5
# here natively; 70 dB and 2e-3 x peak keep a 12 dB / 15x margin (the issue asks for >= 40 dB).
MIN_SNR_DB, MAX_REL = 70.0, 2e-3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, checkpoints_dir):
    """tiny41 plus the fixture cluster model and feature index, in a folder of its own."""
    import shutil

    folder = tmp_path_factory.mktemp("timbre") / "tiny41"
    shutil.copytree(checkpoints_dir / "tiny41", folder)
    write_timbre_files(folder)
    return folder


@pytest.fixture(scope="module")
def session(model_dir, pretrain_dir):
    s = VitsSvc(device="cpu", pretrain_dir=pretrain_dir)
    s.load(model_dir)
    return s


def convert(session, model_dir, name, **changes):
    wav, sr = case_input(name)
    options = CASES[name].convert_options(model_dir).with_(**changes)
    return session.convert(wav, sr, options).audio


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(session, model_dir, name):
    expected = load_reference(DATA, name)
    ours = convert(session, model_dir, name)
    assert len(expected) == len(ours) + CASES[name].reference_extra
    assert_close_to_reference(ours, expected[: len(ours)], min_snr_db=MIN_SNR_DB, max_rel=MAX_REL, what=name)
    plain = convert(session, model_dir, name, cluster_ratio=0.0, spk_mix=None)
    assert np.abs(plain - ours).max() > 0.05  # the control changes the output


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("retrieval")])
def test_torch_search_matches_reference_too(session, model_dir, name, monkeypatch):
    """Without faiss (or on a GPU) the torch search gives the same conversion."""
    from svc.timbre import retrieval

    monkeypatch.setattr(retrieval, "USE_FAISS", False)
    expected = load_reference(DATA, name)
    ours = convert(session, model_dir, name)
    assert_close_to_reference(ours, expected[: len(ours)], min_snr_db=MIN_SNR_DB, max_rel=MAX_REL, what=name)


@pytest.mark.parametrize("name, changes", [("kmeans_0.5", {"cluster_ratio": 0.45}),
                                           ("retrieval_0.7", {"cluster_ratio": 0.65})])
def test_planted_wrong_ratio_is_rejected(session, model_dir, name, changes):
    expected = load_reference(DATA, name)
    ours = convert(session, model_dir, name, **changes)
    with pytest.raises(AssertionError):
        assert_close_to_reference(ours, expected[: len(ours)], min_snr_db=MIN_SNR_DB, max_rel=MAX_REL)


def test_planted_duration_timeline_is_rejected(session, model_dir, monkeypatch):
    """Mix times read as fractions of the input's own frames (not the reference's padded timeline)."""
    name = "spkmix_ramp_silence"
    expected = load_reference(DATA, name)
    wav, sr = case_input(name)
    frames = -(-len(wav) * 44100 // sr) // 512
    monkeypatch.setattr(spk_mix.MixPlan, "timeline_length", lambda self, chunks, sr: frames)
    ours = convert(session, model_dir, name)
    with pytest.raises(AssertionError):
        assert_close_to_reference(ours, expected[: len(ours)], min_snr_db=MIN_SNR_DB, max_rel=MAX_REL)
