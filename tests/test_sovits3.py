"""so-vits-svc 3.0 models: the generator against the 3.0 reference, loading, errors, F0, pipeline, CLI."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import sung_note
from f0_fixtures import reference_signal
from model_fixtures import make_checkpoint
from reference_compare import assert_close_to_reference, assert_f0_close_to_reference
from sovits3_fixtures import FRAMES, make_sovits3_checkpoint, sovits3_config, sovits3_inputs

from svc.audio import resample
from svc.checkpoint import load_generator
from svc.cli import main
from svc.config import ModelConfig
from svc.errors import CheckpointError, ConfigError
from svc.f0.classic import PmF0Predictor
from svc.f0.sovits3 import RawF0, Sovits3PmF0Predictor, sovits3_predictor
from svc.models import Sovits3Synthesizer
from svc.models.nsf_hifigan import SineSource
from svc.options import ConvertOptions
from svc.session import VitsSvc, describe_model_dir

DATA = Path(__file__).parent / "data"
SEED = 52468  # tests/data/make_sovits3_reference.py
CASES = {"32k": (32000, ("nen", "paimon", "yunhao"), 1), "48k": (48000, ("nen", "paimon", "yunhao"), 1),
         "32k_1spk": (32000, ("solo",), 0)}


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA / "sovits3_reference.npz")


@pytest.fixture(scope="module")
def case_models(tmp_path_factory):
    """The generator checkpoints the reference outputs were made from, loaded."""
    root = tmp_path_factory.mktemp("v3cases")
    loaded = {}
    for case, (rate, speakers, _) in CASES.items():
        folder = make_sovits3_checkpoint(root / case, rate, speakers=speakers)
        loaded[case] = load_generator(folder / "model.pth", ModelConfig.from_json(folder / "config.json"))
    return loaded


def _infer(model, case: str, **kwargs) -> np.ndarray:
    x = sovits3_inputs(FRAMES)
    sid = torch.LongTensor([[CASES[case][2]]])
    uv = (x["f0"] > 0).float()
    audio, f0 = model.infer(x["c"], x["f0"], uv, sid, noise_scale=1.0, seed=SEED, **kwargs)
    assert torch.equal(f0, x["f0"])
    return audio.numpy().reshape(-1)


# --- the generator -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(case_models, reference, case):
    loaded = case_models[case]
    assert isinstance(loaded.model, Sovits3Synthesizer) and loaded.config.version == "3.0"
    audio = _infer(loaded.model, case)
    expected = reference[f"audio_{case}"]
    assert audio.shape == expected.shape == (320 * FRAMES,)
    assert 0.05 < expected.std() < 0.3 and abs(expected.mean()) < 0.02  # an audio-like fixture
    # float32 kernel noise between CPUs (conv/attention reductions): <= ~1e-3 of the peak.
    assert_close_to_reference(audio, expected, min_snr_db=60, max_rel=3e-3)
    assert np.abs(audio - expected).max() < 1e-4  # this machine: the reference's own numbers


def test_reference_comparison_rejects_a_4x_sine_rate(case_models, reference):
    """Planted bug: a 3.0 vocoder whose sine source runs at 4.x's fixed 44.1 kHz."""
    model = case_models["32k"].model
    original = model.dec.m_source
    wrong = SineSource(44100)
    wrong.load_state_dict(original.state_dict())
    model.dec.m_source = wrong
    try:
        audio = _infer(model, "32k")
    finally:
        model.dec.m_source = original
    with pytest.raises(AssertionError):
        assert_close_to_reference(audio, reference["audio_32k"], min_snr_db=60, max_rel=3e-3)


def test_reference_comparison_rejects_a_one_frame_shift(case_models, reference):
    audio = np.roll(_infer(case_models["32k"].model, "32k"), 320)
    with pytest.raises(AssertionError):
        assert_close_to_reference(audio, reference["audio_32k"], min_snr_db=60, max_rel=3e-3)


def test_seed_and_noise_scale(case_models):
    model = case_models["48k"].model
    first, again = _infer(model, "48k"), _infer(model, "48k")
    assert np.array_equal(first, again)
    x = sovits3_inputs(FRAMES)
    quiet, _ = model.infer(x["c"], x["f0"], None, x["g"], noise_scale=0.0, seed=1)
    quiet2, _ = model.infer(x["c"], x["f0"], None, x["g"], noise_scale=0.0, seed=2)
    loud, _ = model.infer(x["c"], x["f0"], None, x["g"], noise_scale=1.0, seed=1)
    assert not torch.equal(quiet, loud)
    # Without prior noise only the excitation's noise differs between seeds.
    assert not torch.equal(quiet, quiet2)


def test_ignored_config_keys_leave_the_audio_unchanged(tmp_path):
    """n_layers / kernel_size and the decoder keys are read and ignored, as in 3.0."""
    base = make_sovits3_checkpoint(tmp_path / "a", 32000, optimizer=False)
    other = ModelConfig.from_dict(sovits3_config(32000, n_layers=2, kernel_size=7, upsample_initial_channel=64))
    assert any("ignores" in note for note in other.notes)
    a = load_generator(base / "model.pth", ModelConfig.from_json(base / "config.json")).model
    b = load_generator(base / "model.pth", other).model
    assert np.array_equal(_infer(a, "32k"), _infer(b, "32k"))


# --- config and checkpoint files -----------------------------------------------------------------

@pytest.mark.parametrize("rate", [32000, 48000])
def test_config_is_recognised_as_30(rate):
    cfg = ModelConfig.from_dict(sovits3_config(rate, speakers=("a", "b")))
    assert (cfg.version, cfg.sampling_rate, cfg.hop_length) == ("3.0", rate, 320)
    assert cfg.speech_encoder == "hubertsoft" and cfg.model.n_speakers == 4
    assert cfg.speakers == ["a", "b"]


def test_config_with_other_decoder_widths_is_refused():
    with pytest.raises(ConfigError, match="inter_channels must be 192"):
        ModelConfig.from_dict(sovits3_config(32000, inter_channels=16))
    with pytest.raises(ConfigError, match="gin_channels must be 256"):
        ModelConfig.from_dict(sovits3_config(32000, gin_channels=32))


@pytest.mark.parametrize("optimizer", ["state", "none", "missing"])
def test_checkpoint_file_variants_load(tmp_path, optimizer):
    folder = make_sovits3_checkpoint(tmp_path / "m", 32000, optimizer=optimizer == "state")
    raw = torch.load(folder / "model.pth", weights_only=True)
    assert set(raw) == {"model", "iteration", "optimizer", "learning_rate"}
    assert any(k.startswith("enc_q.") for k in raw["model"])  # a training file
    if optimizer == "missing":
        del raw["optimizer"]
        torch.save(raw, folder / "model.pth")
    loaded = load_generator(folder / "model.pth", ModelConfig.from_json(folder / "config.json"))
    assert loaded.model.emb_g.weight.shape == (6, 256)
    assert not any(k.startswith("enc_q.") for k in loaded.model.state_dict())


def test_weight_norm_gain_is_used(tmp_path):
    folder = make_sovits3_checkpoint(tmp_path / "m", 32000, optimizer=False)
    state = torch.load(folder / "model.pth", weights_only=True)["model"]
    v, g = state["dec.conv_post.weight_v"], state["dec.conv_post.weight_g"]
    model = load_generator(folder / "model.pth", ModelConfig.from_json(folder / "config.json")).model
    expected = g * v / v.norm(dim=(1, 2), keepdim=True)
    assert torch.allclose(model.dec.conv_post.weight, expected, atol=1e-7)
    assert not torch.allclose(g.flatten(), v.norm(dim=(1, 2)))


def test_30_config_with_4x_file_is_a_clear_error(tmp_path):
    v4 = make_checkpoint(tmp_path / "v4", "4.0")
    cfg = ModelConfig.from_dict(sovits3_config(32000), tmp_path / "v3config.json")
    with pytest.raises(CheckpointError, match=r"is a so-vits-svc 4\.x model but .* so-vits-svc 3\.0 config"):
        load_generator(v4 / "G_100.pth", cfg)


@pytest.mark.parametrize("variant", ["4.0", "4.1"])
def test_4x_config_with_30_file_is_a_clear_error(tmp_path, variant):
    v3 = make_sovits3_checkpoint(tmp_path / "v3", 32000, optimizer=False)
    v4 = make_checkpoint(tmp_path / "v4", variant)
    with pytest.raises(CheckpointError, match=rf"is a so-vits-svc 3\.0 model but .* is a {variant} config"):
        load_generator(v3 / "model.pth", ModelConfig.from_json(v4 / "config.json"))


def test_speaker_table_mismatch_is_a_clear_error(tmp_path):
    v3 = make_sovits3_checkpoint(tmp_path / "v3", 32000, optimizer=False)
    cfg = ModelConfig.from_dict(sovits3_config(32000, speakers=("a", "b", "c", "d")))
    with pytest.raises(CheckpointError, match="6 speaker rows but .* n_speakers 8"):
        load_generator(v3 / "model.pth", cfg)


def test_describe_and_list(capsys, sovits3_checkpoints):
    assert describe_model_dir(sovits3_checkpoints / "v3_32k").label == "so-vits-svc 3.0 (32 kHz)"
    info = describe_model_dir(sovits3_checkpoints / "v3_48k")
    assert (info.label, info.version, info.sampling_rate) == ("so-vits-svc 3.0 (48 kHz)", "3.0", 48000)
    assert info.speech_encoder == "hubertsoft" and info.speakers == ("nen", "paimon", "yunhao")
    assert main(["models", str(sovits3_checkpoints)]) == 0
    out = capsys.readouterr().out
    assert "v3_32k: so-vits-svc 3.0 (32 kHz), encoder hubertsoft" in out
    assert "v3_48k: so-vits-svc 3.0 (48 kHz)" in out


# --- F0 --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [32000, 48000])
def test_pm_follows_the_30_rule(reference, rate):
    """pm for 3.0 models: Praat at 16 kHz / 10 ms, centred padding, no interpolation (48k: resized)."""
    wav = resample(torch.from_numpy(reference_signal(16000))[None], 16000, rate)[0]
    wav = wav[: wav.shape[0] - wav.shape[0] % (rate // 50)].numpy()
    pm = sovits3_predictor(PmF0Predictor(hop_length=320, sampling_rate=rate))
    assert isinstance(pm, RawF0) and isinstance(pm.predictor, Sovits3PmF0Predictor)
    f0, uv = pm.compute_f0_uv(wav)
    expected = reference[f"pm_f0_{rate // 1000}k"]
    assert np.array_equal(f0 > 0, uv > 0) and np.all(f0[uv == 0] == 0)
    # Praat on our vs torchaudio.functional's 16 kHz resampling (kernels differ by ~1e-5).
    assert_f0_close_to_reference(f0, expected, max_cents=1.0, max_voicing_flips=1)


def test_pm_comparison_rejects_the_4x_rule_and_a_shift(reference):
    """Planted bugs: 4.x's pm (Praat at the model rate, unvoiced frames filled), and a one-frame shift."""
    wav = resample(torch.from_numpy(reference_signal(16000))[None], 16000, 32000)[0]
    wav = wav[: wav.shape[0] - wav.shape[0] % 640].numpy()
    expected = reference["pm_f0_32k"]
    filled, _ = PmF0Predictor(hop_length=320, sampling_rate=32000).compute_f0_uv(wav)
    with pytest.raises(AssertionError):
        assert_f0_close_to_reference(filled, expected, max_cents=1.0, max_voicing_flips=1)
    f0, _ = sovits3_predictor(PmF0Predictor(hop_length=320, sampling_rate=32000)).compute_f0_uv(wav)
    with pytest.raises(AssertionError):
        assert_f0_close_to_reference(np.roll(f0, 1), expected, max_cents=1.0, max_voicing_flips=1)


def test_other_predictors_give_raw_f0_at_the_model_rate():
    wav = sung_note(0.6, 48000)
    wav[10000:20000] = 0
    f0, uv = sovits3_predictor(_dio(48000)).compute_f0_uv(wav)
    assert f0.shape == (len(wav) // 320,)
    assert (uv == 0).any() and np.all(f0[uv == 0] == 0) and np.all(f0[uv > 0] > 0)


def _dio(rate):
    from svc.f0.classic import DioF0Predictor

    return DioF0Predictor(hop_length=320, sampling_rate=rate)


# --- pipeline and CLI ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,rate", [("v3_32k", 32000), ("v3_48k", 48000)])
def test_pipeline_repeats_units_onto_frames(sovits3_checkpoints, sovits3_pretrain, name, rate, monkeypatch):
    session = VitsSvc("cpu", pretrain_dir=sovits3_pretrain)
    session.load(sovits3_checkpoints / name)
    seen = {}
    original = session.model.infer

    def spy(c, f0, uv, g, **kwargs):
        seen["c"], seen["f0"] = c.clone(), f0.clone()
        return original(c, f0, uv, g, **kwargs)

    monkeypatch.setattr(session.model, "infer", spy)
    wav = sung_note(0.7, 44100)
    result = session.convert(wav, 44100, ConvertOptions(speaker="yunhao", transpose=12))
    assert result.sampling_rate == rate and len(result.audio) == int(np.ceil(len(wav) * rate / 44100))
    repeat = rate // 16000
    c = seen["c"][0]
    assert c.shape[1] % repeat == 0 and seen["f0"].shape[1] == c.shape[1]
    units = c[:, ::repeat]
    assert torch.equal(torch.repeat_interleave(units, repeat, dim=1), c)  # x2 / x3 as 3.0 repeats
    assert (seen["f0"] == 0).any() and (seen["f0"] > 300).any()  # raw F0 (silent padding unvoiced), +12


@pytest.mark.parametrize("name,rate", [("v3_32k", 32000), ("v3_48k", 48000)])
def test_cli_converts_with_a_30_model(capsys, tmp_path, sovits3_checkpoints, sovits3_pretrain, name, rate):
    wav = sung_note(0.8, 22050)
    sf.write(tmp_path / "in.wav", wav, 22050)
    code = main(["infer", "-m", str(sovits3_checkpoints / name), "-s", "paimon", "-t", "2", "--pretrain",
                 str(sovits3_pretrain), "--device", "cpu", "--no-progress", "--f0", "dio", str(tmp_path / "in.wav"),
                 "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    audio, sr = sf.read(out.split()[0])
    assert sr == rate and len(audio) == int(np.ceil(len(wav) * rate / 22050)) and np.abs(audio).max() > 0.01


def test_clip_crossfade_loudness_mix_and_enhancer_run(sovits3_checkpoints, sovits3_pretrain, tmp_path):
    import shutil

    from enhancer_fixtures import write_tiny_nsf_hifigan

    shutil.copy(sovits3_pretrain / "hubert-soft-0d54a1f4.pt", tmp_path)
    write_tiny_nsf_hifigan(tmp_path)
    session = VitsSvc("cpu", pretrain_dir=tmp_path)
    session.load(sovits3_checkpoints / "v3_solo")
    wav = sung_note(0.8, 32000)
    options = ConvertOptions(clip_seconds=0.4, crossfade_seconds=0.1, loudness_mix=0.5, pad_seconds=0.1)
    plain = session.convert(wav, 32000, options).audio
    enhanced = session.convert(wav, 32000, options.with_(enhance=True)).audio
    assert len(plain) == len(enhanced) == len(wav) and np.isfinite(enhanced).all()
    assert not np.allclose(plain, enhanced) and np.abs(enhanced).max() > 0.01
