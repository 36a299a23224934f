"""Shallow and only diffusion, whole conversions, against so-vits-svc 4.1's ``Svc.slice_inference``.

The expected outputs come from ``tests/data/make_diffusion_reference.py`` (the reference with our
ContentVec plugged in, its vocoder built before the first chunk, only diffusion seeded per chunk).
Measured before the 16-bit storage of the expectations: 130-143 dB SNR, max |diff| 5e-7 to 1.4e-6
on peaks of 0.9-1.0, for every sampler and mode.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from diffusion_fixtures import build_diffusion_env  # noqa: E402
from diffusion_reference_fixtures import CASES, REFERENCE_FILE, case_input, load_reference, write_case_models  # noqa: E402
from reference_compare import assert_close_to_reference, compare  # noqa: E402

from svc import VitsSvc  # noqa: E402

DATA = Path(__file__).parent / "data" / REFERENCE_FILE
# The stored 16-bit expectation alone limits the SNR to about 82 dB; float32 kernel noise of this
# tiny model is far below that.  70 dB still rejects a swapped sampler (dpm-solver for dpm-solver++: 63 dB).
# The peak-relative bound is the whole-pipeline family's (kernel noise up to 1.3e-4 x peak there, README).
MIN_SNR_DB = 70.0
MAX_REL = 2e-3


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pretrain, checkpoints = build_diffusion_env(tmp_path_factory.mktemp("diffref"), ("tiny41", "tinyvol"))
    for model in ("tiny41", "tinyvol"):
        write_case_models(checkpoints / model)
    return pretrain, checkpoints


@pytest.fixture(scope="module")
def sessions(env):
    pretrain, checkpoints = env
    loaded = {}
    for model in ("tiny41", "tinyvol"):
        loaded[model] = VitsSvc(device="cpu", pretrain_dir=pretrain)
        loaded[model].load(checkpoints / model)
    only = VitsSvc(device="cpu", pretrain_dir=pretrain)  # no voice model at all
    only.load_diffusion(checkpoints / "tiny41" / CASES["only_diffusion"].diffusion_dir)
    loaded["only"] = only
    return loaded


def _convert(sessions, name: str, **changes) -> np.ndarray:
    case = CASES[name]
    session = sessions["only" if case.options.get("only_diffusion") else case.model]
    wav, sr = case_input(name)
    return session.convert(wav, sr, case.convert_options().with_(**changes)).audio


@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference(sessions, name):
    expected = load_reference(DATA, name)
    ours = _convert(sessions, name)
    assert len(ours) == len(expected)
    assert np.abs(expected).max() > 0.5 and expected.std() > 0.03  # a real signal
    assert_close_to_reference(ours, expected, min_snr_db=MIN_SNR_DB, max_rel=MAX_REL, what=name)


@pytest.mark.parametrize(("name", "bug"), [
    ("shallow_default", {"diffusion_method": "dpm-solver"}),  # the other DPM-Solver variant
    ("shallow_default", {"k_step": 101}),  # an off-by-one in the noised step
    ("ddim", {"diffusion_method": "pndm"}),
    ("second_encoding", {"second_encoding": False}),
])
def test_comparison_rejects_planted_bugs(sessions, name, bug):
    expected = load_reference(DATA, name)
    wrong = _convert(sessions, name, **bug)
    assert compare(wrong, expected)["snr_db"] < MIN_SNR_DB
    with pytest.raises(AssertionError):
        assert_close_to_reference(wrong, expected, min_snr_db=MIN_SNR_DB, max_rel=MAX_REL)


def test_the_diffusion_changes_the_output(sessions):
    """The comparison is not vacuous: without diffusion the same conversion is far from the reference's."""
    expected = load_reference(DATA, "shallow_default")
    plain = _convert(sessions, "shallow_default", shallow_diffusion=False)
    assert compare(plain, expected)["snr_db"] < 10
