"""Audio I/O: formats, bit depths, channel layouts, odd rates, atomic writes, every error case."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from svc.audio import (
    AudioFileSamples,
    audio_duration,
    audio_writer,
    check_input_file,
    format_duration,
    open_audio,
    read_audio,
    resample,
    to_mono,
    write_audio,
)
from svc.errors import AudioError


def _sine(sr: int, secs: float = 0.5, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * secs)) / sr
    return np.stack([amp * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize(
    "subtype, tol",
    [("PCM_U8", 1 / 64), ("PCM_S8", 1 / 64), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-7),
     ("FLOAT", 0.0), ("DOUBLE", 0.0)],
)
def test_reads_wav_bit_depths(tmp_path: Path, subtype: str, tol: float) -> None:
    x = _sine(16000)
    fmt = "WAV" if subtype != "PCM_S8" else "AIFF"  # WAV has no signed 8-bit; AIFF does
    path = tmp_path / f"a.{'wav' if fmt == 'WAV' else 'aiff'}"
    sf.write(path, x.T, 16000, format=fmt, subtype=subtype)
    wav, sr = read_audio(path)
    assert sr == 16000 and wav.dtype == np.float32 and wav.shape == x.shape
    np.testing.assert_allclose(wav, x, atol=tol + 1e-7)


@pytest.mark.parametrize(
    "suffix, fmt, subtype, tol",
    [(".flac", "FLAC", "PCM_24", 1e-6), (".ogg", "OGG", "VORBIS", 0.05), (".mp3", "MP3", "MPEG_LAYER_III", 0.1)],
)
def test_reads_compressed_formats(tmp_path: Path, suffix: str, fmt: str, subtype: str, tol: float) -> None:
    x = _sine(22050, 1.0, channels=2)
    path = tmp_path / f"a{suffix}"
    sf.write(path, x.T, 22050, format=fmt, subtype=subtype)
    wav, sr = read_audio(path)
    assert sr == 22050 and wav.shape[0] == 2
    assert abs(wav.shape[1] - x.shape[1]) <= 2048  # lossy decoders may pad
    n = min(wav.shape[1], x.shape[1])
    # Lossy codecs: compare the level, not the waveform.
    assert abs(np.sqrt(np.mean(wav[:, :n] ** 2)) - np.sqrt(np.mean(x[:, :n] ** 2))) < tol


def test_reads_committed_mp3() -> None:
    wav, sr = read_audio(Path(__file__).parent / "data" / "tone_440hz_16k.mp3", mono=True)
    assert sr == 16000 and wav.ndim == 1 and 0.2 < np.abs(wav).max() < 0.6
    spectrum = np.abs(np.fft.rfft(wav))
    assert abs(np.argmax(spectrum) * sr / len(wav) - 440) < 5


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("sr", [8000, 11025, 44100, 96000, 12345])
def test_channels_and_odd_rates(tmp_path: Path, channels: int, sr: int) -> None:
    x = _sine(sr, 0.2, channels)
    path = tmp_path / "a.wav"
    sf.write(path, x.T, sr, subtype="FLOAT")
    wav, got_sr = read_audio(path)
    assert got_sr == sr and wav.shape == (channels, x.shape[1])
    mono, _ = read_audio(path, mono=True)
    np.testing.assert_allclose(mono, x.mean(axis=0), atol=1e-6)


def test_to_mono() -> None:
    x = np.array([[1.0, 0.0, -1.0], [0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_allclose(to_mono(x), [0.5, 0.25, 0.0])
    assert to_mono(x[0]) is x[0] or np.array_equal(to_mono(x[0]), x[0])
    np.testing.assert_array_equal(to_mono(x[:1]), x[0])
    with pytest.raises(ValueError):
        to_mono(np.zeros((1, 2, 3)))


@pytest.mark.parametrize(
    "suffix, subtype, tol", [(".wav", None, 1 / 32768), (".wav", "FLOAT", 0), (".flac", None, 1 / 32768),
                             (".flac", "PCM_24", 1 / 2**23), (".wav", "PCM_24", 1 / 2**23)])
def test_write_round_trip(tmp_path: Path, suffix: str, subtype: str | None, tol: float) -> None:
    x = _sine(24000, 0.3, channels=2)
    path = write_audio(tmp_path / f"out{suffix}", x, 24000, subtype=subtype)
    info = sf.info(path)
    assert info.subtype == (subtype or "PCM_16") and info.samplerate == 24000 and info.channels == 2
    wav, _ = read_audio(path)
    np.testing.assert_allclose(wav, x, atol=tol)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temp files left


def test_write_clips_instead_of_wrapping(tmp_path: Path) -> None:
    x = np.array([0.0, 1.5, -2.0, 0.25] * 1000, np.float32)
    wav, _ = read_audio(write_audio(tmp_path / "o.wav", torch.from_numpy(x), 16000))
    assert wav.max() == pytest.approx(32767 / 32768) and wav.min() == -1.0
    f, _ = read_audio(write_audio(tmp_path / "f.wav", x, 16000, subtype="float"))
    assert f.max() == 1.5  # float keeps the peaks


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "o.wav"
    write_audio(path, _sine(16000), 16000)
    before = path.read_bytes()

    def broken_write(file, *args, **kwargs):
        Path(file).write_bytes(b"RIFF half")
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_audio(path, _sine(16000, amp=0.1), 16000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="unknown output format '.mp3'"):
        write_audio(tmp_path / "o.mp3", _sine(16000), 16000)
    with pytest.raises(AudioError, match="FLOAT"):
        write_audio(tmp_path / "o.flac", _sine(16000), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "o.wav", np.full(1000, np.nan, np.float32), 16000)
    assert list(tmp_path.iterdir()) == []


def _write_raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="does not exist"):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="is not a file"):
        read_audio(tmp_path)
    with pytest.raises(AudioError, match="Cannot read .*notes.txt"):
        read_audio(_write_raw(tmp_path / "notes.txt", b"hello, this is text, not sound\n" * 10))
    with pytest.raises(AudioError, match="Cannot read"):
        read_audio(_write_raw(tmp_path / "trunc.wav", b"RIFF\x10\x00\x00\x00WAVEjunk"))
    with pytest.raises(AudioError, match="Cannot read"):
        read_audio(_write_raw(tmp_path / "empty.wav", b""))

    empty = tmp_path / "nosamples.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        read_audio(empty)

    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(1599, np.float32), 16000)
    with pytest.raises(AudioError, match="only 100 ms long"):
        read_audio(short)
    sf.write(short, np.zeros(1600, np.float32), 16000)
    assert read_audio(short)[0].shape == (1, 1600)

    nan = tmp_path / "nan.wav"
    bad = _sine(16000)[0]
    bad[100] = np.nan
    sf.write(nan, bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        read_audio(nan)
    bad[100] = np.inf
    sf.write(nan, bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        read_audio(nan)

    slow = tmp_path / "slow.wav"
    sf.write(slow, np.zeros(1000, np.float32), 100)
    with pytest.raises(AudioError, match="sample rate of 100 Hz"):
        read_audio(slow)

    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(16000 * 3, np.float32), 16000)
    with pytest.raises(AudioError, match="^'long.wav' is 0:03 long, more than the 0:02 allowed; cut it"):
        read_audio(long, max_seconds=2.0)
    assert audio_duration(long) == pytest.approx(3.0)
    assert read_audio(long, max_seconds=None)[0].shape == (1, 48000)


def _bad_files(folder: Path) -> dict[str, Path]:
    """One file per way a dropped file can be unusable, in a deep folder like a server's temp dir."""
    folder = folder / "gradio" / "0123abcd"
    folder.mkdir(parents=True)
    files = {
        "missing": folder / "missing.wav",
        "empty": _write_raw(folder / "empty.wav", b""),
        "text": _write_raw(folder / "notes.wav", b"hello, this is text, not sound\n" * 10),
        "truncated": _write_raw(folder / "trunc.wav", b"RIFF\x10\x00\x00\x00WAVEjunk"),
        "nosamples": folder / "nosamples.wav",
        "short": folder / "short.wav",
        "slow": folder / "slow.wav",
        "long": folder / "long.wav",
    }
    sf.write(files["nosamples"], np.zeros((0, 1), np.float32), 16000)
    sf.write(files["short"], np.zeros(800, np.float32), 16000)
    sf.write(files["slow"], np.zeros(1000, np.float32), 100)
    sf.write(files["long"], np.zeros(16000 * 3, np.float32), 16000)
    return files


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "^Audio file 'song.wav' does not exist"),
        ("empty", r"^'song.wav' is empty \(0 bytes\)\.$"),
        ("text", r"^'song.wav' is not an audio file soundfile can read \(Format not recognised\); use a WAV"),
        ("truncated", r"^'song.wav' is not an audio file soundfile can read \("),
        ("nosamples", "^'song.wav' contains no audio samples"),
        ("short", "^'song.wav' is only 50 ms long; use at least 100 ms of audio.$"),
        ("slow", "^'song.wav' has an unusable sample rate of 100 Hz"),
        ("long", "^'song.wav' is 0:03 long, more than the 0:02 allowed; cut it into shorter files.$"),
    ],
)
def test_check_input_file_names_the_file_as_the_user_knows_it(tmp_path: Path, case: str, message: str) -> None:
    with pytest.raises(AudioError, match=message) as err:
        check_input_file(_bad_files(tmp_path)[case], "song.wav", max_seconds=2.0)
    assert "\n" not in str(err.value) and str(tmp_path) not in str(err.value)


def test_check_input_file_defaults_to_the_base_name_and_returns_the_duration(tmp_path: Path) -> None:
    files = _bad_files(tmp_path)
    with pytest.raises(AudioError, match="^'empty.wav' is empty"):
        check_input_file(files["empty"])
    assert check_input_file(files["long"]) == pytest.approx(3.0)
    assert check_input_file(files["long"], max_seconds=3.0) == pytest.approx(3.0)


@pytest.mark.parametrize("case", ["missing", "empty", "text", "truncated", "nosamples", "short", "slow", "long"])
def test_read_audio_errors_never_show_the_folder(tmp_path: Path, case: str) -> None:
    path = _bad_files(tmp_path)[case]
    with pytest.raises(AudioError) as err:
        read_audio(path, max_seconds=2.0)
    assert path.name in str(err.value) and str(path.parent) not in str(err.value)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 2.4, 59.6, 187, 3600, 7325)] == [
        "0:00", "0:02", "1:00", "3:07", "1:00:00", "2:02:05"]


def test_resample_identity_and_length() -> None:
    x = torch.randn(1, 16000)
    assert resample(x, 16000, 16000) is x
    assert resample(x, 16000, 44100).shape == (1, 44100)


@pytest.mark.parametrize("orig, new, width", [(44100, 16000, 6), (32000, 16000, 6), (44100, 47000, 128)])
def test_resample_is_exactly_the_reference_transform(orig: int, new: int, width: int) -> None:
    # so-vits-svc calls torchaudio.transforms.Resample; functional.resample differs by ~1e-5.
    import torchaudio.transforms as T

    x = torch.randn(2, orig // 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(resample(x, orig, new, width), T.Resample(orig, new, lowpass_filter_width=width)(x))


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_audio_writer_blocks_equal_one_write(tmp_path: Path, suffix: str) -> None:
    x = _sine(16000, amp=1.3)[0]  # peaks beyond full scale: clipped per block as write_audio clips
    whole = write_audio(tmp_path / f"whole{suffix}", x, 16000)
    with audio_writer(tmp_path / f"blocks{suffix}", 16000) as write:
        for start in range(0, len(x), 3001):
            write(x[start : start + 3001])
    a, _ = read_audio(whole, mono=True)
    b, _ = read_audio(tmp_path / f"blocks{suffix}", mono=True)
    np.testing.assert_array_equal(a, b)
    if suffix == ".wav":
        assert whole.read_bytes() == (tmp_path / "blocks.wav").read_bytes()


def test_audio_writer_is_atomic(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "o.wav", _sine(16000), 16000)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="NaN"), audio_writer(path, 16000) as write:
        write(_sine(8000, amp=0.1)[0])
        write(np.full(100, np.nan, np.float32))
    with pytest.raises(KeyboardInterrupt), audio_writer(path, 16000) as write:  # e.g. a cancel
        write(_sine(8000, amp=0.1)[0])
        raise KeyboardInterrupt
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]
    with pytest.raises(AudioError, match="unknown output format"), audio_writer(tmp_path / "o.mp3", 16000):
        pass


@pytest.mark.parametrize(("suffix", "channels", "subtype"), [(".wav", 1, "FLOAT"), (".flac", 2, "PCM_24"),
                                                             (".wav", 3, "PCM_16")])
def test_open_audio_reads_on_demand_what_read_audio_holds(tmp_path: Path, suffix: str, channels: int,
                                                           subtype: str) -> None:
    path = tmp_path / f"song{suffix}"
    sf.write(path, _sine(22050, secs=1.3, channels=channels).T, 22050, subtype=subtype)
    whole, sr = read_audio(path, mono=True)
    samples, sr2 = open_audio(path)
    assert isinstance(samples, AudioFileSamples) and sr2 == sr == 22050
    assert len(samples) == samples.shape[0] == len(whole) and samples.ndim == 1
    for a, b in [(0, len(whole)), (17, 5000), (len(whole) - 3, len(whole) + 10), (9, 9)]:
        np.testing.assert_array_equal(samples[a:b], whole[a:b])
        assert samples[a:b].dtype == np.float32
    # the slicer sees the same chunks either way
    from svc.slicer import slice_audio

    assert slice_audio(samples, sr, -30) == slice_audio(whole, sr, -30)


def test_open_audio_checks_the_whole_file_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import svc.audio

    monkeypatch.setattr(svc.audio, "_VALIDATE_BLOCK", 1000)  # checked in many reads
    bad = np.concatenate([_sine(16000, secs=3.0)[0], np.zeros(5, np.float32)])
    bad[-2] = np.nan  # in the last, short block
    path = tmp_path / "nan.wav"
    sf.write(path, bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="'nan.wav' contains NaN or infinite"):
        open_audio(path)
    sf.write(path, np.zeros(1599, np.float32), 16000)
    with pytest.raises(AudioError, match="only 100 ms long"):
        open_audio(path)
    with pytest.raises(AudioError, match="does not exist"):
        open_audio(tmp_path / "missing.wav")


def test_open_audio_decodes_compressed_files_whole() -> None:
    mp3 = Path(__file__).parent / "data" / "tone_440hz_16k.mp3"
    wav, sr = open_audio(mp3)
    assert isinstance(wav, np.ndarray) and wav.ndim == 1
    np.testing.assert_array_equal(wav, read_audio(mp3, mono=True)[0])
