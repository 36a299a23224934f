"""Forced chunking and crossfade: reference parity at equal rates, continuity, exact lengths."""

from pathlib import Path

import numpy as np
import pytest

from svc.crossfade import Piece, fit_length, output_spans, split_pieces, stitch, to_rate
from svc.errors import OptionsError

REFERENCE = np.load(Path(__file__).parent / "data" / "crossfade_reference.npz")
SR = 1000


def _reference_signal(n: int = 2300) -> np.ndarray:
    # The signal the reference ran on (16-bit exact, so its in-memory WAV round trip is lossless).
    k = np.arange(n)
    return np.round(8000 * np.sin(k / 13.0) + 3000 * np.cos(k / 57.0)) / 32768


@pytest.mark.parametrize("clip, lg, lgr", [(0.5, 0.1, 0.75), (0.6, 0.2, 1.0), (0.4, 0.15, 0.0), (0.9, 0.05, 0.5)])
def test_matches_reference_at_equal_rates(clip: float, lg: float, lgr: float) -> None:
    # Reference: slice_inference with a fake model returning its input times 1 + 0.25 k for piece k.
    sig = _reference_signal()
    pieces = split_pieces(len(sig), SR, clip, lg)
    np.testing.assert_array_equal([p.length for p in pieces], REFERENCE[f"{clip}_{lg}_{lgr}_pieces"])
    spans = output_spans(pieces, SR, SR)
    converted = [fit_length(sig[p.start:p.end] * (1 + 0.25 * k), s.length)
                 for k, (p, s) in enumerate(zip(pieces, spans, strict=True))]
    out = stitch(converted, [s.overlap for s in spans], lgr)
    np.testing.assert_allclose(out, REFERENCE[f"{clip}_{lg}_{lgr}"], atol=1e-6)


@pytest.mark.parametrize("sr, out_sr", [(44100, 44100), (48000, 44100), (22050, 44100), (16000, 32000), (44100, 40000)])
@pytest.mark.parametrize("lgr", [0.0, 0.3, 0.75, 1.0])
def test_identical_content_is_reconstructed_exactly(sr: int, out_sr: int, lgr: float) -> None:
    # If every piece is the exact output-rate slice of one signal, stitching must give that signal
    # back: no clicks, no shift, exact length, whatever the rates.
    n = int(sr * 7.3)
    y = np.sin(np.arange(to_rate(n, sr, out_sr)) * 0.01)
    pieces = split_pieces(n, sr, 2.0, 0.5)
    spans = output_spans(pieces, sr, out_sr)
    assert spans[-1].end == len(y)
    # The overlap is lg seconds at the output rate (the reference used source-rate samples).
    assert all(abs(s.overlap - 0.5 * out_sr) <= 1 for s in spans[1:])
    out = stitch([y[s.start:s.end] for s in spans], [s.overlap for s in spans], lgr)
    np.testing.assert_allclose(out, y, atol=1e-12)


def test_crossfade_is_continuous_between_different_pieces() -> None:
    # Two constant pieces of different level: with the full overlap crossfaded the join is a ramp.
    a, b = np.full(100, 1.0), np.full(100, 3.0)
    out = stitch([a, b], [0, 40], 1.0)
    assert len(out) == 160
    assert np.abs(np.diff(out)).max() <= 2.0 / 39 + 1e-12
    np.testing.assert_allclose(out[60:100], np.linspace(1, 3, 40))
    # keep ratio 0.5: 20 crossfaded samples in the middle of the overlap, 10 kept on each side.
    half = stitch([a, b], [0, 40], 0.5)
    np.testing.assert_allclose(half[:70], 1.0)
    np.testing.assert_allclose(half[70:90], np.linspace(1, 3, 20))
    np.testing.assert_allclose(half[90:], 3.0)
    # keep ratio 0: a hard cut in the middle of the overlap.
    np.testing.assert_array_equal(stitch([a, b], [0, 40], 0.0), np.r_[np.full(80, 1.0), np.full(80, 3.0)])


def test_split_pieces() -> None:
    assert split_pieces(1000, 100, 0, 0.5) == [Piece(0, 1000, 0)]
    assert split_pieces(500, 100, 6.0, 0.5) == [Piece(0, 500, 0)]
    assert split_pieces(1000, 100, 3.0, 0.5) == [Piece(0, 300, 0), Piece(250, 600, 50), Piece(550, 900, 50),
                                                 Piece(850, 1000, 50)]
    with pytest.raises(OptionsError, match="shorter than the forced clip"):
        split_pieces(1000, 100, 1.0, 1.0)
    with pytest.raises(OptionsError, match="negative"):
        split_pieces(1000, 100, -1.0, 0.0)


def test_fit_length() -> None:
    x = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 8), [0, 1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fit_length(x, 2), [2, 3])
    np.testing.assert_array_equal(fit_length(x, 4), [1, 2, 3, 4])
    assert fit_length(x, 5) is x
    assert fit_length(np.ones((2, 3)), 6).shape == (2, 6)


def test_stitch_errors_and_trivial_cases() -> None:
    assert stitch([], [], 0.5).shape == (0,)
    np.testing.assert_array_equal(stitch([np.ones(3)], [0], 0.5), np.ones(3))
    with pytest.raises(ValueError, match="first piece"):
        stitch([np.ones(3)], [1], 0.5)
    with pytest.raises(ValueError, match="longer than a piece"):
        stitch([np.ones(3), np.ones(10)], [0, 5], 0.5)
    with pytest.raises(OptionsError, match="keep ratio"):
        stitch([np.ones(3), np.ones(3)], [0, 1], 1.5)
    assert stitch([np.ones(3, np.float32), np.ones(3, np.float32)], [0, 2], 0.5).dtype == np.float32
