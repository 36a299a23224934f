"""End-to-end conversion through ``VitsSvc.convert`` with tiny random-weight models."""

import math

import numpy as np
import pytest
import torch
from conftest import sung_note

from svc import ConvertOptions, VitsSvc
from svc.errors import AudioError, OptionsError, WeightFileError

SR = 44100


@pytest.fixture(scope="module")
def session(checkpoints_dir, pretrain_dir):
    s = VitsSvc(device="cpu", pretrain_dir=pretrain_dir)
    s.load(checkpoints_dir / "tiny41")
    return s


def phrase_with_gap(sr: int = SR) -> np.ndarray:
    """0.5 s tone, 6 s silence, 0.5 s tone: the slicer cuts it voiced/silent/voiced (keeping up to
    5 s of the silence in the voiced chunks, as so-vits-svc does)."""
    return np.concatenate([sung_note(0.5, sr), np.zeros(int(6 * sr), np.float32), sung_note(0.5, sr, 330.0, 1)])


def test_output_length_rate_and_silent_gap(session):
    wav = phrase_with_gap()
    result = session.convert(wav, SR, ConvertOptions(speaker="bob"))
    assert result.sampling_rate == 44100
    assert len(result.audio) == len(wav)
    assert [c.is_speech for c in result.chunks] == [True, False, True]
    gap = result.chunks[1]
    assert np.all(result.audio[gap.start : gap.end] == 0.0)
    assert np.abs(result.audio[: result.chunks[0].end]).max() > 1e-3
    assert np.isfinite(result.audio).all()
    assert {"slice", "resample", "f0", "encoder", "synthesis"} <= set(result.timings)


def test_other_input_rate_gives_model_rate_output(session):
    wav = sung_note(1.0, 22050)
    result = session.convert(wav, 22050, ConvertOptions())
    assert len(result.audio) == math.ceil(len(wav) * 44100 / 22050)


def test_deterministic_under_seed_and_speaker_dependent(session):
    wav = sung_note(1.0)
    a = session.convert(wav, SR, ConvertOptions(speaker="alice", seed=1)).audio
    b = session.convert(wav, SR, ConvertOptions(speaker="alice", seed=1)).audio
    c = session.convert(wav, SR, ConvertOptions(speaker="alice", seed=2)).audio
    d = session.convert(wav, SR, ConvertOptions(speaker="carol", seed=1)).audio
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, d)


def test_all_silent_input_gives_silence_of_same_length(session):
    wav = np.zeros(SR * 2, np.float32)
    result = session.convert(wav, SR, ConvertOptions())
    assert len(result.audio) == len(wav) and not result.audio.any()
    assert result.f0_tracks == []


def test_transpose_moves_the_target_f0(session):
    result = session.convert(sung_note(1.0), SR, ConvertOptions(transpose=12))
    (track,) = result.f0_tracks
    voiced = track.source > 0
    assert voiced.mean() > 0.5
    np.testing.assert_allclose(track.target[voiced], 2 * track.source[voiced], rtol=1e-5)
    assert abs(np.median(track.source[voiced]) - 220) < 15


def test_forced_clips_are_crossfaded_without_jumps(session):
    wav = sung_note(3.0)
    options = ConvertOptions(clip_seconds=1.0, crossfade_seconds=0.2, pad_seconds=0.2)
    result = session.convert(wav, SR, options)
    assert len(result.audio) == len(wav)
    assert len(result.f0_tracks) == 3
    steps = np.abs(np.diff(result.audio))
    for seam in (SR, 2 * SR):  # the crossfades sit just before each clip boundary
        assert steps[seam - int(0.2 * SR) : seam + 10].max() <= steps.max()
        assert steps[seam - int(0.2 * SR) : seam + 10].max() < 5 * np.percentile(steps, 99.9)


def test_progress_reports_increase_to_one(session):
    seen = []
    session.convert(phrase_with_gap(), SR, ConvertOptions(), progress=lambda f, text: seen.append((f, text)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("chunk" in text for _, text in seen)


def test_progress_moves_inside_a_piece_stage_by_stage(session):
    seen = []
    session.convert(sung_note(2.0), SR, ConvertOptions(), progress=lambda f, text: seen.append((f, text)))
    inside = [(f, text) for f, text in seen if 0.0 < f < 1.0]
    stages = [text.split(": ")[-1].split(" ")[0] for _, text in inside]
    assert {"content", "synthesis"} <= set(stages)
    assert sum(stage == "synthesis" for stage in stages) >= 4  # the vocoder's stages report too
    assert len({round(f, 4) for f, _ in inside}) >= 5


def test_a_cancelled_conversion_stops_inside_the_piece_and_writes_nothing(session, tmp_path):
    from svc.progress import Cancelled, CancelToken

    token, seen = CancelToken(), []

    def progress(fraction, text):
        seen.append(text)
        if "synthesis" in text:
            token.cancel("stopped by the test")

    out = tmp_path / "out.wav"
    src = tmp_path / "in.wav"
    import soundfile as sf
    sf.write(src, sung_note(2.0), SR)
    with pytest.raises(Cancelled, match="stopped by the test"):
        session.convert_file(src, out, ConvertOptions(), progress=token.guard(progress))
    assert sum("synthesis" in text for text in seen) == 1  # the next report (a vocoder stage) stopped it
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_loudness_mix_and_auto_f0_run(session):
    wav = sung_note(1.0)
    quiet = session.convert(wav * 0.1, SR, ConvertOptions(loudness_mix=0.0)).audio
    loud = session.convert(wav, SR, ConvertOptions(loudness_mix=0.0)).audio
    assert np.sqrt(np.mean(loud**2)) > 3 * np.sqrt(np.mean(quiet**2))
    auto = session.convert(wav, SR, ConvertOptions(auto_f0=True))
    assert np.isfinite(auto.audio).all()


@pytest.mark.parametrize("name, encoder", [("tinyvol", "vec256l9"), ("tiny40", "vec256l9"), ("tiny768", "vec768l12")])
def test_other_model_kinds(checkpoints_dir, pretrain_dir, pretrain_dir_768, name, encoder):
    s = VitsSvc(device="cpu", pretrain_dir=pretrain_dir_768 if encoder == "vec768l12" else pretrain_dir)
    s.load(checkpoints_dir / name)
    assert s.speech_encoder == encoder
    result = s.convert(sung_note(1.0), SR, ConvertOptions(speaker="carol"))
    assert len(result.audio) == SR and np.isfinite(result.audio).all()


def test_stereo_input_is_mixed_down(session):
    mono = sung_note(1.0)
    stereo = np.stack([mono, mono])
    a = session.convert(stereo, SR, ConvertOptions()).audio
    b = session.convert(mono, SR, ConvertOptions()).audio
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    "wav, sr, message",
    [
        (np.zeros(100, np.float32), SR, "too short"),
        (np.full(SR, np.nan, np.float32), SR, "NaN"),
        (np.zeros((2, 2, SR), np.float32), SR, "shape"),
        (np.zeros(SR, np.float32), 10, "sample rate"),
    ],
)
def test_bad_audio_is_a_clear_error(session, wav, sr, message):
    with pytest.raises(AudioError, match=message):
        session.convert(wav, sr, ConvertOptions())


def test_bad_settings_are_clear_errors(session):
    with pytest.raises(OptionsError, match="unknown speaker 'dave'.*alice"):
        session.convert(sung_note(0.5), SR, ConvertOptions(speaker="dave"))
    with pytest.raises(OptionsError, match="nope"):
        session.convert(sung_note(0.5), SR, ConvertOptions(f0_method="nope"))


def test_missing_encoder_file_names_file_and_folder(checkpoints_dir, tmp_path):
    s = VitsSvc(device="cpu", pretrain_dir=tmp_path)
    s.load(checkpoints_dir / "tiny41")
    with pytest.raises(WeightFileError, match="checkpoint_best_legacy_500.pt") as err:
        s.convert(sung_note(0.5), SR, ConvertOptions())
    assert str(tmp_path) in str(err.value)


def test_enhancer_path(checkpoints_dir, pretrain_dir, tmp_path):
    import shutil

    from enhancer_fixtures import write_tiny_nsf_hifigan

    shutil.copy(pretrain_dir / "checkpoint_best_legacy_500.pt", tmp_path)
    s = VitsSvc(device="cpu", pretrain_dir=tmp_path)
    s.load(checkpoints_dir / "tiny41")
    with pytest.raises(WeightFileError, match="nsf_hifigan"):
        s.convert(sung_note(0.5), SR, ConvertOptions(enhance=True))
    write_tiny_nsf_hifigan(tmp_path)
    plain = s.convert(sung_note(1.0), SR, ConvertOptions()).audio
    enhanced = s.convert(sung_note(1.0), SR, ConvertOptions(enhance=True, enhancer_adaptive_key=2)).audio
    assert enhanced.shape == plain.shape and np.isfinite(enhanced).all()
    assert not np.allclose(enhanced, plain)


def test_convert_file_writes_what_it_returns(session, tmp_path):
    import soundfile as sf

    src = tmp_path / "in.flac"
    sf.write(src, np.stack([sung_note(1.0)] * 2, axis=1), SR)
    out = tmp_path / "out.wav"
    result = session.convert_file(src, out, ConvertOptions())
    written, sr = sf.read(out, dtype="float32")
    assert sr == 44100 and len(written) == len(result.audio)
    np.testing.assert_allclose(written, np.clip(result.audio, -1, 1), atol=1 / 32767 + 1e-6)


def test_convert_file_streams_the_same_samples(session, tmp_path):
    import soundfile as sf

    src = tmp_path / "in.wav"
    sf.write(src, phrase_with_gap(), SR, subtype="FLOAT")
    options = ConvertOptions(speaker="bob", clip_seconds=0.5, crossfade_seconds=0.1)  # several pieces
    kept = session.convert_file(src, tmp_path / "kept.wav", options)
    streamed = session.convert_file(src, tmp_path / "streamed.wav", options, keep_audio=False)
    assert streamed.audio.size == 0 and streamed.duration == pytest.approx(kept.duration)
    assert (tmp_path / "kept.wav").read_bytes() == (tmp_path / "streamed.wav").read_bytes()
    in_memory = session.convert(phrase_with_gap(), SR, options).audio
    np.testing.assert_array_equal(kept.audio, in_memory)
    assert {"decode", "write"} <= set(streamed.timings)


def test_failed_convert_file_leaves_no_file(session, tmp_path, monkeypatch):
    import soundfile as sf

    import svc.pipeline

    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, phrase_with_gap(), SR)
    out.write_bytes(b"old")

    def cancelled(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(svc.pipeline, "_convert_piece", cancelled)
    with pytest.raises(KeyboardInterrupt):
        session.convert_file(src, out, ConvertOptions(speaker="bob"), keep_audio=False)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]


def test_results_are_plain_tensors_free(session):
    result = session.convert(sung_note(0.5), SR, ConvertOptions())
    assert isinstance(result.audio, np.ndarray) and result.audio.dtype == np.float32
    assert not torch.is_tensor(result.f0_tracks[0].target)
