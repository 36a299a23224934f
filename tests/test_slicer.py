"""Slicer: parity with so-vits-svc's slicer, contiguity, edge cases, speed on long input."""

import json
import sys
import time
import tracemalloc
from pathlib import Path

import librosa
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from slicer_fixtures import cases  # noqa: E402

from svc.slicer import Chunk, slice_audio  # noqa: E402
from svc.volume import frame_rms  # noqa: E402

REFERENCE = json.loads((Path(__file__).parent / "data" / "slicer_reference.json").read_text())
CASES = cases()


def _spans(chunks: list[Chunk]) -> list[list]:
    return [[c.start, c.end, c.is_speech] for c in chunks]


def _assert_contiguous(chunks: list[Chunk], n: int) -> None:
    assert chunks[0].start == 0 and chunks[-1].end == n
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.end == b.start
    assert all(c.end > c.start for c in chunks)


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_boundaries_equal_reference(key: str) -> None:
    name, db = key.split("@")
    wav, sr = CASES[name]
    chunks = slice_audio(wav, sr, float(db))
    assert _spans(chunks) == REFERENCE[key]
    _assert_contiguous(chunks, len(wav))


@pytest.mark.parametrize("n, frame, hop", [(10_000, 3528, 882), (7, 4, 2), (12_345, 1280, 320)])
def test_frame_rms_equals_librosa(n: int, frame: int, hop: int) -> None:
    wav = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    expected = librosa.feature.rms(y=wav, frame_length=frame, hop_length=hop)[0]
    np.testing.assert_allclose(frame_rms(wav, frame, hop), expected, rtol=1e-5, atol=1e-7)


def test_leading_and_trailing_silence_are_silent_chunks() -> None:
    wav, sr = CASES["leading_trailing"]
    chunks = slice_audio(wav, sr, -40)
    # As in the reference: a leading silence shorter than max_sil_kept (5 s) stays with the
    # first phrase, a short middle gap is cut at one point (two adjacent speech chunks), and the
    # trailing 2 s become a silent chunk.
    assert [c.is_speech for c in chunks] == [True, True, False]
    assert sr * 7.0 < chunks[0].end < sr * 7.8
    assert chunks[-1].start >= len(wav) - 2 * sr - 882


def test_no_silence_is_one_speech_chunk() -> None:
    wav, sr = CASES["no_silence"]
    assert slice_audio(wav, sr) == [Chunk(0, len(wav), True)]


def test_all_silence_is_one_silent_chunk() -> None:
    wav, sr = CASES["all_silence"]
    assert slice_audio(wav, sr) == [Chunk(0, len(wav), False)]


def test_exact_zeros_and_empty() -> None:
    assert slice_audio(np.zeros(0, np.float32), 16000) == []
    zeros = np.zeros(16000 * 3, np.float32)
    assert slice_audio(zeros, 16000) == [Chunk(0, len(zeros), False)]


def test_tiny_input_is_not_sliced() -> None:
    # Reference quirk: inputs of <= min_length *frames* (250) samples are never sliced.
    assert slice_audio(np.zeros(250, np.float32), 16000) == [Chunk(0, 250, True)]
    # Just above it, a silence shorter than min_interval (300 ms) is not detected either.
    assert slice_audio(np.zeros(251, np.float32), 16000) == [Chunk(0, 251, True)]
    assert slice_audio(np.zeros(16000, np.float32), 16000) == [Chunk(0, 16000, False)]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mono"):
        slice_audio(np.zeros((2, 1000), np.float32), 16000)
    with pytest.raises(ValueError, match="min_length"):
        slice_audio(np.zeros(1000, np.float32), 16000, min_length_ms=100)


def test_ten_minutes_is_fast_and_contiguous() -> None:
    sr = 44100
    rng = np.random.default_rng(3)
    t = np.arange(sr * 25) / sr
    phrase = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    # A gap longer than 2 * max_sil_kept is always cut out (shorter ones may be cut at one point).
    phrase[sr * 12:] = 1e-4 * rng.standard_normal(sr * 13).astype(np.float32)
    wav = np.tile(phrase, 24)  # 10 minutes
    tracemalloc.start()
    start = time.perf_counter()
    chunks = slice_audio(wav, sr, -40)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Working memory stays far below the 106 MB input (measured 7.5 MB, 0.12 s).
    assert peak < 20e6, f"slicing 10 minutes used {peak / 1e6:.0f} MB"
    _assert_contiguous(chunks, len(wav))
    assert sum(not c.is_speech for c in chunks) == 24
    assert elapsed < 5.0, f"slicing 10 minutes took {elapsed:.2f} s"
