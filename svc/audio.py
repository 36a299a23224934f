"""Audio helpers: resampling, and file I/O at the edges of the program.

Files are read and written with soundfile (libsndfile), which handles WAV (8-32 bit integer and
float), FLAC, OGG/Vorbis and MP3 (libsndfile >= 1.1). Reading returns float32 in [-1, 1] for
integer files; every problem with a file is an :class:`~svc.errors.AudioError` naming the file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as T

from .errors import AudioError

logger = logging.getLogger(__name__)

MIN_SECONDS = 0.1
MAX_SECONDS = 2 * 3600.0
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
# Output formats by file suffix, with the subtype written by default and those allowed.
WRITE_FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    ".wav": ("WAV", "PCM_16", ("PCM_16", "PCM_24", "PCM_32", "FLOAT")),
    ".flac": ("FLAC", "PCM_16", ("PCM_16", "PCM_24")),
}


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int, lowpass_filter_width: int = 6) -> torch.Tensor:
    """Resample along the last axis exactly as so-vits-svc does.

    so-vits-svc uses ``torchaudio.transforms.Resample(orig, new)`` (Hann-windowed sinc, width 6,
    rolloff 0.99; the enhancer uses width 128). The transform computes its kernel in float64 and
    stores it as float32, while ``torchaudio.functional.resample`` computes it in the input's dtype,
    which differs by up to about 1e-5, so we build the transform (cheap) to get the same numbers.
    """
    if orig_sr == new_sr:
        return wav
    transform = T.Resample(int(orig_sr), int(new_sr), lowpass_filter_width=lowpass_filter_width)
    return transform.to(device=wav.device, dtype=wav.dtype)(wav)


def _info(path: Path, name: str) -> sf._SoundFileInfo:
    if not path.exists():
        raise AudioError(f"Audio file '{name}' does not exist; check the path.")
    if not path.is_file():
        raise AudioError(f"'{name}' is not a file; give the path of an audio file.")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(
            f"Cannot read '{name}' as audio ({_reason(exc, path)}); use a WAV, FLAC, OGG or MP3 file."
        ) from exc


def _reason(exc: Exception, path: Path) -> str:
    """libsndfile's short reason ("Format not recognised."), without the file's server path."""
    text = getattr(exc, "error_string", "") or str(exc)
    return text.replace(str(path), path.name).strip().rstrip(".")


def format_duration(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on), e.g. ``3:07`` for 187 s."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _check_info(name: str, info: sf._SoundFileInfo, max_seconds: float | None) -> None:
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"'{name}' has an unusable sample rate of {info.samplerate} Hz; "
            f"resave it at a rate between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz."
        )
    if info.channels < 1:
        raise AudioError(f"'{name}' has no audio channels; use a file with sound in it.")
    if max_seconds is not None and info.frames > max_seconds * info.samplerate:
        raise AudioError(
            f"'{name}' is {format_duration(info.frames / info.samplerate)} long, more than the "
            f"{format_duration(max_seconds)} allowed; cut it into shorter files."
        )


def check_input_file(
    path: str | os.PathLike[str], display_name: str | None = None, max_seconds: float | None = None
) -> float:
    """Check a dropped audio file from its header (nothing is decoded); return its duration in s.

    Every problem is a one-line ``AudioError`` naming the file as ``display_name`` (default: its
    base name), never by its server path: missing, empty (0 bytes), not audio, absurd sample rate,
    no samples, shorter than ``MIN_SECONDS`` or longer than ``max_seconds``.
    """
    path = Path(path)
    name = display_name or path.name
    if not path.is_file():
        _info(path, name)  # raises the missing / not-a-file error
    if path.stat().st_size == 0:
        raise AudioError(f"'{name}' is empty (0 bytes).")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(
            f"'{name}' is not an audio file soundfile can read ({_reason(exc, path)}); "
            "use a WAV, FLAC, OGG or MP3 file."
        ) from None
    _check_info(name, info, max_seconds)
    seconds = info.frames / info.samplerate
    if info.frames <= 0:
        raise AudioError(f"'{name}' contains no audio samples; use a file with sound in it.")
    if seconds < MIN_SECONDS:
        raise AudioError(
            f"'{name}' is only {seconds * 1000:.0f} ms long; use at least {MIN_SECONDS * 1000:.0f} ms of audio."
        )
    return seconds


def check_audio_array(wav: np.ndarray, sr: int) -> np.ndarray:
    """In-memory audio (mono ``[N]`` or ``[channels, N]``) as mono float32, validated as files are."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = to_mono(wav)
    if wav.ndim != 1:
        raise AudioError(f"audio must be mono [N] or [channels, N], got shape {tuple(wav.shape)}")
    if not isinstance(sr, (int, np.integer)) or not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(f"sample rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {sr}")
    if len(wav) < MIN_SECONDS * sr:
        raise AudioError(f"audio is too short ({len(wav) / sr:.3f} s); it must be at least {MIN_SECONDS} s long")
    if not np.isfinite(wav).all():
        raise AudioError("audio contains NaN or infinite samples")
    return wav


def _check_samples(name: str, wav: np.ndarray, sr: int) -> None:
    _check_length(name, wav.shape[-1], sr)
    _check_finite(name, wav)


def _check_length(name: str, n: int, sr: int) -> None:
    if n == 0:
        raise AudioError(f"'{name}' contains no audio samples; use a file with sound in it.")
    if n < MIN_SECONDS * sr:
        raise AudioError(
            f"'{name}' is only {n / sr * 1000:.0f} ms long; use at least {MIN_SECONDS * 1000:.0f} ms of audio."
        )


def _check_finite(name: str, wav: np.ndarray) -> None:
    if not np.isfinite(wav).all():
        raise AudioError(f"'{name}' contains NaN or infinite samples; the file is corrupt, re-export it.")


def _decode(path: Path, start: int = 0, frames: int = -1) -> np.ndarray:
    """``[frames, channels]`` float32 samples of ``path`` from frame ``start`` (all by default)."""
    try:
        with sf.SoundFile(str(path)) as f:
            if start:
                f.seek(start)
            return f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(
            f"Cannot decode '{path.name}' ({_reason(exc, path)}); the file may be damaged, re-export it."
        ) from exc


def _mixed_to_mono(data: np.ndarray) -> np.ndarray:
    """``[N, channels]`` (channels > 1) -> ``[N]`` float32, averaged in float64."""
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)


def read_audio(
    path: str | os.PathLike[str], *, mono: bool = False, max_seconds: float | None = MAX_SECONDS
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32: ``([channels, N], sr)``, or ``([N], sr)`` with ``mono``.

    Integer files are scaled to [-1, 1); float files are returned as stored. Raises
    ``AudioError`` for a missing, unreadable, empty, too short (< 0.1 s), too long
    (> ``max_seconds``), non-finite or absurd-sample-rate file.  Messages name the file by its
    base name only: in the web UI the directory is a server temp folder.
    """
    path = Path(path)
    info = _info(path, path.name)
    _check_info(path.name, info, max_seconds)
    data, sr = _decode(path), info.samplerate
    # soundfile gives [N, channels]; avoid a second full-size copy where we can.
    if data.shape[1] == 1:
        wav = data[:, 0]
    elif mono:
        wav = _mixed_to_mono(data)
    else:
        wav = np.ascontiguousarray(data.T)
    del data
    _check_samples(path.name, wav, sr)
    if wav.ndim == 1 and not mono:
        wav = wav[None, :]
    return wav, int(sr)


# Formats libsndfile seeks in sample-exactly (compressed ones may not), read piece by piece by
# ``open_audio``.
SEEKABLE_FORMATS = frozenset({"WAV", "WAVEX", "W64", "RF64", "AIFF", "CAF", "FLAC"})
_VALIDATE_BLOCK = 1 << 20  # samples per read while checking a file


class AudioFileSamples:
    """The mono float32 samples of an audio file, read only when sliced: ``len(x)``, ``x[a:b]``.

    ``convert_file`` converts a song piece by piece, so it never needs the whole decoded input (a
    600 s song is 106 MB of float32); reads give exactly what ``read_audio(path, mono=True)`` holds.
    """

    ndim = 1

    def __init__(self, path: Path, frames: int, channels: int):
        self.path, self.frames, self.channels = path, frames, channels

    @property
    def shape(self) -> tuple[int]:
        return (self.frames,)

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("AudioFileSamples supports slices only")
        start, stop, step = key.indices(self.frames)
        if step != 1:
            raise ValueError("AudioFileSamples supports contiguous slices only")
        data = _decode(self.path, start, max(stop - start, 0))
        if len(data) != max(stop - start, 0):
            raise AudioError(f"'{self.path.name}' ended early while reading it; the file is damaged, re-export it.")
        return data[:, 0].copy() if data.shape[1] == 1 else _mixed_to_mono(data)


def open_audio(
    path: str | os.PathLike[str], *, max_seconds: float | None = MAX_SECONDS
) -> tuple[np.ndarray | AudioFileSamples, int]:
    """Mono samples of an audio file for conversion, and its rate: WAV, FLAC and the like are read
    on demand (``AudioFileSamples``, checked in one streaming pass first), other formats decoded
    whole as ``read_audio(path, mono=True)``.  Raises the same ``AudioError``s as ``read_audio``."""
    path = Path(path)
    info = _info(path, path.name)
    _check_info(path.name, info, max_seconds)
    if info.format not in SEEKABLE_FORMATS or info.frames <= 0:
        return read_audio(path, mono=True, max_seconds=max_seconds)
    _check_length(path.name, info.frames, info.samplerate)
    samples = AudioFileSamples(path, info.frames, info.channels)
    for start in range(0, info.frames, _VALIDATE_BLOCK):
        _check_finite(path.name, samples[start : start + _VALIDATE_BLOCK])
    return samples, int(info.samplerate)


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration of an audio file in seconds, from its header (nothing is decoded)."""
    path = Path(path)
    info = _info(path, path.name)
    return info.frames / info.samplerate if info.samplerate > 0 else 0.0


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average the channels of ``[channels, N]`` audio into ``[N]`` (1-D input is returned as is).

    Same as ``librosa.to_mono``, which the reference's web UI applies before slicing.
    """
    wav = np.asarray(wav)
    if wav.ndim == 1:
        return wav
    if wav.ndim != 2:
        raise ValueError(f"expected audio of shape [channels, N] or [N], got {wav.shape}")
    if wav.shape[0] == 1:
        return wav[0]
    return wav.mean(axis=0, dtype=np.float64).astype(wav.dtype, copy=False)


def _write_format(path: Path, subtype: str | None) -> tuple[str, str]:
    suffix = path.suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise AudioError(
            f"Cannot write '{path}': unknown output format '{suffix}'; use one of {sorted(WRITE_FORMATS)}."
        )
    fmt, default, allowed = WRITE_FORMATS[suffix]
    subtype = (subtype or default).upper()
    if subtype not in allowed:
        raise AudioError(f"Cannot write '{path}' as {subtype}; {suffix} files can be one of {list(allowed)}.")
    return fmt, subtype


def write_audio(
    path: str | os.PathLike[str], wav: np.ndarray | torch.Tensor, sr: int, *, subtype: str | None = None
) -> Path:
    """Write ``[N]`` or ``[channels, N]`` audio to a .wav or .flac file, atomically.

    The default is 16-bit PCM (``subtype="PCM_24"``, ``"PCM_32"`` or, for WAV, ``"FLOAT"`` on
    request). Integer output is clipped to [-1, 1] first so loud peaks saturate instead of
    wrapping around. The data goes to a temporary file in the same folder that is renamed over
    ``path`` at the end, so ``path`` never holds a half-written file.
    """
    path = Path(path)
    fmt, subtype = _write_format(path, subtype)
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    data = np.asarray(wav, dtype=np.float32)
    if data.ndim not in (1, 2):
        raise ValueError(f"expected audio of shape [N] or [channels, N], got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("refusing to write audio that contains NaN or infinite samples")
    if subtype != "FLOAT":
        data = np.clip(data, -1.0, 1.0)
    frames = data.T if data.ndim == 2 else data
    with _replacing(path) as tmp:
        sf.write(tmp, frames, int(sr), format=fmt, subtype=subtype)
    logger.debug("wrote %s (%s, %d Hz)", path, subtype, sr)
    return path


@contextmanager
def audio_writer(path: str | os.PathLike[str], sr: int, *,
                 subtype: str | None = None) -> Iterator[Callable[[np.ndarray], None]]:
    """Write mono audio to a .wav or .flac file block by block, atomically.

    ``with audio_writer(path, sr) as write: write(block)`` gives the same file as ``write_audio``
    of the blocks joined, without holding them all: each block is checked and clipped as it comes,
    and ``path`` is replaced only when the ``with`` block ends without an error.
    """
    path = Path(path)
    fmt, subtype = _write_format(path, subtype)
    with _replacing(path) as tmp, sf.SoundFile(tmp, "w", int(sr), 1, subtype, format=fmt) as out:

        def write(block: np.ndarray) -> None:
            data = np.asarray(block, dtype=np.float32)
            if data.ndim != 1:
                raise ValueError(f"expected mono audio blocks of shape [N], got {data.shape}")
            if not np.isfinite(data).all():
                raise ValueError("refusing to write audio that contains NaN or infinite samples")
            out.write(data if subtype == "FLOAT" else np.clip(data, -1.0, 1.0))

        yield write
    logger.debug("wrote %s (%s, %d Hz)", path, subtype, sr)


@contextmanager
def _replacing(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` that is renamed over it when the ``with`` block succeeds and
    removed when it fails, so ``path`` never holds a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; outputs are ordinary files
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
