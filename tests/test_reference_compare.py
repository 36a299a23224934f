"""Planted bugs: the comparisons with stored references reject the errors real bugs would cause.

The tolerances of the parity tests are measured float32 noise with a margin (README, "Running the
tests under other kernel paths"); these tests show each family's bound is still tight enough: a
one-frame shift, a wrong coarse-pitch edge (4.0 vs 4.1 mapping), a loader that ignores
``weight_g``, a flow layer off by one, a wrong resampler, a shifted or detuned F0, a shifted
feature frame or a wrong enhancer key all fail.  Each test also checks that the unperturbed output
passes, so a bound that rejects everything would be caught too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

import test_encoders_whisper_wavlm as whisper_tests  # noqa: E402
import test_enhancer as enhancer_tests  # noqa: E402
import test_f0 as f0_tests  # noqa: E402
import test_models as model_tests  # noqa: E402
import test_pipeline_reference as pipeline_tests  # noqa: E402
from model_fixtures import make_checkpoint, make_inputs  # noqa: E402
from pipeline_reference_fixtures import CASES, case_input, load_reference  # noqa: E402
from reference_compare import (  # noqa: E402
    assert_close_to_reference,
    assert_f0_close_to_reference,
    assert_spectrum_close_to_reference,
    snr_db,
)

from svc import VitsSvc  # noqa: E402
from svc import pipeline as pipeline_module  # noqa: E402
from svc.audio import resample  # noqa: E402
from svc.checkpoint import load_generator, read_state_dict  # noqa: E402
from svc.config import ModelConfig  # noqa: E402
from svc.models import synthesizer  # noqa: E402
from svc.models.f0_decoder import f0_to_coarse  # noqa: E402

DATA = Path(__file__).parent / "data"


def rejects(actual: np.ndarray, expected: np.ndarray, **bounds) -> bool:
    try:
        assert_close_to_reference(actual, expected, **bounds)
    except AssertionError:
        return True
    return False


def spectrum_rejects(actual: np.ndarray, expected: np.ndarray, **bounds) -> bool:
    try:
        assert_spectrum_close_to_reference(actual, expected, **bounds)
    except AssertionError:
        return True
    return False


def _make_f0_late(session, monkeypatch) -> None:
    """Make the session's F0 predictors return F0 one frame late (an off-by-one in framing)."""
    real = session._f0_predictors.get

    class Late:
        def __init__(self, inner):
            self.inner = inner

        def compute_f0_uv(self, x, p_len=None):
            f0, uv = self.inner.compute_f0_uv(x, p_len)
            return np.roll(f0, 1), np.roll(uv, 1)

    monkeypatch.setattr(session._f0_predictors, "get", lambda *a, **k: Late(real(*a, **k)))


def f0_rejects(actual: np.ndarray, expected: np.ndarray, **bounds) -> bool:
    try:
        assert_f0_close_to_reference(actual, expected, **bounds)
    except AssertionError:
        return True
    return False


MODEL_BOUNDS = {"min_snr_db": model_tests.MIN_SNR_DB, "max_rel": model_tests.MAX_REL}


# --- the generator -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_41(tmp_path_factory):
    folder = make_checkpoint(tmp_path_factory.mktemp("planted") / "m", "4.1")
    cfg = json.loads((folder / "config.json").read_text())
    return folder, cfg, np.load(DATA / "reference_4.1.npy")


def _infer(model, cfg) -> np.ndarray:
    x = make_inputs(cfg)
    audio, _ = model.infer(x["c"], x["f0"], x["uv"], x["g"], noise_scale=0.4, seed=52468)
    return audio.numpy().reshape(-1)


def test_model_bounds_pass_the_real_output(model_41):
    folder, cfg, expected = model_41
    model = load_generator(folder / "G_100.pth", ModelConfig.from_json(folder / "config.json")).model
    assert not rejects(_infer(model, cfg), expected, **MODEL_BOUNDS)


def test_model_one_frame_shift_fails(model_41):
    folder, cfg, expected = model_41
    hop = cfg["data"]["hop_length"]
    assert rejects(np.roll(expected, hop), expected, **MODEL_BOUNDS)
    model = load_generator(folder / "G_100.pth", ModelConfig.from_json(folder / "config.json")).model
    x = make_inputs(cfg)
    shifted_c = torch.roll(x["c"], 1, dims=2)  # content one frame late, as an off-by-one in the unit repeat
    audio, _ = model.infer(shifted_c, x["f0"], x["uv"], x["g"], noise_scale=0.4, seed=52468)
    assert rejects(audio.numpy(), expected, **MODEL_BOUNDS)


def test_model_coarse_pitch_mapping_swapped_fails(model_41, monkeypatch):
    # The parity inputs hold one frame at 1150 Hz, where 4.0 clamps to bin 255 and 4.1 wraps to 0:
    # the swapped mapping changes that frame only, which the peak-relative bound must see.
    folder, cfg, expected = model_41
    model = load_generator(folder / "G_100.pth", ModelConfig.from_json(folder / "config.json")).model
    monkeypatch.setattr(synthesizer, "f0_to_coarse", lambda f0, version: f0_to_coarse(f0, "4.0"))
    assert rejects(_infer(model, cfg), expected, **MODEL_BOUNDS)


def test_model_loader_ignoring_weight_g_fails(model_41, tmp_path):
    folder, cfg, expected = model_41
    state = read_state_dict(folder / "G_100.pth")
    for key in [k for k in state if k.endswith("weight_g")]:
        v = state[key[:-1] + "v"]
        dims = list(range(1, v.dim()))
        state[key] = v.norm(dim=dims, keepdim=True)  # so g * v / ||v|| == v: the stored g is lost
    torch.save({"model": state, "iteration": 0, "optimizer": None, "learning_rate": 1e-4}, tmp_path / "G_1.pth")
    model = load_generator(tmp_path / "G_1.pth", ModelConfig.from_json(folder / "config.json")).model
    assert rejects(_infer(model, cfg), expected, **MODEL_BOUNDS)


def test_model_flow_layer_off_by_one_fails(model_41):
    folder, cfg, expected = model_41
    model = load_generator(folder / "G_100.pth", ModelConfig.from_json(folder / "config.json")).model
    del model.flow.flows[-2:]  # the last coupling layer (and its flip) skipped
    assert rejects(_infer(model, cfg), expected, **MODEL_BOUNDS)


def test_model_wrong_noise_scale_fails(model_41):
    folder, cfg, expected = model_41
    model = load_generator(folder / "G_100.pth", ModelConfig.from_json(folder / "config.json")).model
    x = make_inputs(cfg)
    audio, _ = model.infer(x["c"], x["f0"], x["uv"], x["g"], noise_scale=0.42, seed=52468)
    assert rejects(audio.numpy(), expected, **MODEL_BOUNDS)


# --- the whole pipeline ------------------------------------------------------------------------


PIPELINE_BOUNDS = {"min_snr_db": pipeline_tests.MIN_SNR_DB, "max_rel": pipeline_tests.MAX_REL}


@pytest.fixture(scope="module")
def pipeline_case(checkpoints_dir, pretrain_dir):
    session = VitsSvc(device="cpu", pretrain_dir=pretrain_dir)
    session.load(checkpoints_dir / "tiny41")
    wav, sr = case_input("pm_default")
    expected = load_reference(pipeline_tests.DATA, "pm_default")
    return session, wav, sr, expected


def _convert(session, wav, sr) -> np.ndarray:
    return session.convert(wav, sr, CASES["pm_default"].convert_options()).audio


def test_pipeline_bounds_pass_the_real_output(pipeline_case):
    session, wav, sr, expected = pipeline_case
    assert not rejects(_convert(session, wav, sr), expected, **PIPELINE_BOUNDS)


def test_pipeline_wrong_resampler_fails(pipeline_case, monkeypatch):
    session = pipeline_case[0]
    wav, sr = case_input("input_16000")  # 16 kHz in, 44.1 kHz model: the pipeline resamples
    expected = load_reference(pipeline_tests.DATA, "input_16000")
    options = CASES["input_16000"].convert_options()
    real = session.convert(wav, sr, options).audio
    assert not rejects(real, expected[: len(real)], **PIPELINE_BOUNDS)
    # a sharper sinc than the reference's torchaudio default (width 6): a plausible "equivalent" resampler
    monkeypatch.setattr(pipeline_module, "resample", lambda x, a, b: resample(x, a, b, lowpass_filter_width=16))
    assert rejects(session.convert(wav, sr, options).audio, expected[: len(real)], **PIPELINE_BOUNDS)


def test_pipeline_f0_one_frame_late_fails(pipeline_case, monkeypatch):
    session, wav, sr, expected = pipeline_case
    _make_f0_late(session, monkeypatch)
    assert rejects(_convert(session, wav, sr), expected, **PIPELINE_BOUNDS)


@pytest.mark.parametrize("bug", ["noise_scale", "f0_late"])
def test_pipeline_auto_f0_planted_errors_fail(pipeline_case, monkeypatch, bug):
    session = pipeline_case[0]
    wav, sr = case_input("auto_f0")
    expected = load_reference(pipeline_tests.DATA, "auto_f0")
    options = CASES["auto_f0"].convert_options()
    bound = {"min_snr_db": pipeline_tests.MIN_SPECTRAL_SNR_AUTO_F0}
    assert not spectrum_rejects(session.convert(wav, sr, options).audio, expected, **bound)
    if bug == "noise_scale":
        options = options.with_(noise_scale=0.42)
    else:
        _make_f0_late(session, monkeypatch)
    assert spectrum_rejects(session.convert(wav, sr, options).audio, expected, **bound)


def test_pipeline_transpose_rounding_fails(pipeline_case):
    session, wav, sr, expected = pipeline_case
    options = CASES["pm_default"].convert_options().with_(transpose=0.1)  # a tenth of a semitone
    assert rejects(session.convert(wav, sr, options).audio, expected, **PIPELINE_BOUNDS)


# --- F0 predictors -----------------------------------------------------------------------------


F0_BOUNDS = {"max_cents": f0_tests.F0_MAX_CENTS}


@pytest.mark.parametrize("key", ["pm_44100_512", "rmvpe_thr0.05", "crepe_vibrato"])
def test_f0_planted_errors_fail(key):
    ref = f0_tests.REFERENCE[f"{key}_f0"] * (f0_tests.REFERENCE[f"{key}_uv"] > 0)
    assert not f0_rejects(ref.copy(), ref, **F0_BOUNDS)
    assert f0_rejects(np.roll(ref, 1), ref, **F0_BOUNDS)  # one frame of shift
    assert f0_rejects(ref * 2 ** (1 / 1200), ref, **F0_BOUNDS)  # one cent sharp (a wrong reference pitch)
    flipped = ref.copy()
    voiced = np.flatnonzero(ref > 0)
    flipped[voiced[len(voiced) // 2]] = 0.0  # one voiced frame lost (a voicing-threshold bug)
    assert f0_rejects(flipped, ref, **F0_BOUNDS)
    cents_bin = ref.copy()
    cents_bin[voiced[0]] *= 2 ** (20 / 1200)  # one frame a whole 20-cent bin off (an argmax edge bug)
    assert f0_rejects(cents_bin, ref, **F0_BOUNDS)


# --- encoders and the enhancer ------------------------------------------------------------------


def test_feature_planted_errors_fail():
    expected = np.load(whisper_tests.REFERENCE)["whisper_2s"]
    bounds = {"min_snr_db": whisper_tests.FEATURE_MIN_SNR_DB, "max_rel": whisper_tests.FEATURE_MAX_REL}
    assert not rejects(expected.copy(), expected, **bounds)
    assert rejects(np.roll(expected, 1, axis=-1), expected, **bounds)  # a frame of shift
    one_frame = expected.copy()
    one_frame[:, 10] *= 1.001  # one frame 0.1 % off, as a wrong window at a stitching seam
    assert rejects(one_frame, expected, **bounds)


def test_enhancer_planted_errors_fail():
    reference = np.load(DATA / "enhancer_reference.npz")
    expected = reference["key0"]
    bounds = enhancer_tests.BOUNDS
    assert not rejects(expected.copy(), expected, **bounds)
    assert rejects(np.roll(expected, 512), expected, **bounds)
    assert rejects(reference["key3"][: len(expected)], expected, **bounds)  # the wrong adaptive key


def test_snr_of_identical_signals_is_infinite():
    x = np.linspace(-1, 1, 100)
    assert snr_db(x, x) == float("inf")
    assert 39 < snr_db(x + 0.01 * x, x) < 41
