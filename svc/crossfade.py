"""Forced chunking of long voiced chunks, and crossfaded stitching of the converted pieces.

so-vits-svc's ``slice_inference`` can cut a voiced chunk into ``clip``-second pieces, each
starting ``lg`` seconds before the previous one ends, convert them separately and join them with
a crossfade over the middle ``lgr`` share of each overlap. We keep those semantics but fix two
reference bugs:

* The reference counts the overlap in *source*-rate samples (``int(lg * sr)``) and then applies
  that count to the *output*-rate audio, so the crossfade is misplaced whenever the file's rate
  differs from the model's. Here every boundary is a source sample mapped to the output rate
  (:func:`to_rate`), so the overlap is ``lg`` seconds at both rates.
* With ``lg >= clip`` the reference silently stops overlapping but still crossfades. We reject it.

The reference's ``pad_array`` only pads (a longer piece shifts everything after it); :func:`fit_length`
pads *or* trims, centred, so the stitched chunk has exactly the input's duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import OptionsError


@dataclass(frozen=True)
class Piece:
    """Source samples ``[start, end)`` of one piece; ``overlap`` of them are shared with the previous."""

    start: int
    end: int
    overlap: int

    @property
    def length(self) -> int:
        return self.end - self.start


def to_rate(n: int, sr: int, out_sr: int) -> int:
    """Sample index ``n`` at ``sr`` mapped to ``out_sr``, rounded up (``ceil(n / sr * out_sr)``, exact)."""
    return -(-n * out_sr // sr)


def split_pieces(n: int, sr: int, clip_seconds: float, overlap_seconds: float = 0.0) -> list[Piece]:
    """Cut ``n`` samples into ``clip_seconds`` pieces, each extended ``overlap_seconds`` backwards.

    Piece ``k`` covers ``[k*clip - overlap, (k+1)*clip)`` (the first starts at 0), like the
    reference's ``split_list_by_n``. ``clip_seconds`` 0 means one piece.
    """
    if clip_seconds < 0 or overlap_seconds < 0:
        raise OptionsError("clip and crossfade lengths must not be negative; use 0 to turn them off.")
    size = int(clip_seconds * sr)
    if size == 0 or n <= size:
        return [Piece(0, n, 0)]
    lg = int(overlap_seconds * sr)
    if lg >= size:
        raise OptionsError(
            f"The crossfade length ({overlap_seconds} s) must be shorter than the forced clip length "
            f"({clip_seconds} s); lower the crossfade or raise the clip length."
        )
    return [Piece(max(i - lg, 0), min(i + size, n), i - max(i - lg, 0)) for i in range(0, n, size)]


def output_spans(pieces: Sequence[Piece], sr: int, out_sr: int) -> list[Piece]:
    """The same pieces in samples at ``out_sr``: lengths and overlaps that :func:`stitch` expects."""
    spans = []
    for p in pieces:
        start, end = to_rate(p.start, sr, out_sr), to_rate(p.end, sr, out_sr)
        spans.append(Piece(start, end, to_rate(p.start + p.overlap, sr, out_sr) - start))
    return spans


def fit_length(x: np.ndarray, length: int, *, odd_pad_left: bool = False) -> np.ndarray:
    """Zero-pad or trim the last axis to exactly ``length`` samples, centred.

    Padding puts ``diff // 2`` zeros in front and the rest behind, as the reference's ``pad_array``
    (``odd_pad_left``: the odd one in front instead, as the reference's Praat F0 padding);
    trimming removes ``excess // 2`` samples from the front and the rest from the end.
    """
    n = x.shape[-1]
    if n == length:
        return x
    if n < length:
        left = (length - n + odd_pad_left) // 2
        widths = [(0, 0)] * (x.ndim - 1) + [(left, length - n - left)]
        return np.pad(x, widths)
    left = (n - length) // 2
    return x[..., left: left + length]


def stitch(pieces: Sequence[np.ndarray], overlaps: Sequence[int], keep_ratio: float) -> np.ndarray:
    """Join 1-D pieces, crossfading each with the previous over the middle of their overlap.

    ``overlaps[k]`` samples at the start of piece ``k`` repeat the end of piece ``k-1``
    (``overlaps[0]`` must be 0). Of an overlap of ``L`` samples, ``r = int(L * keep_ratio)`` are
    crossfaded linearly (weights ``linspace(0, 1, r)``, as the reference); the previous piece
    keeps the ``(L - r) // 2`` samples before them and the new piece the rest after them.
    The result has ``sum(len) - sum(overlaps)`` samples.
    """
    if len(pieces) != len(overlaps):
        raise ValueError(f"got {len(pieces)} pieces but {len(overlaps)} overlaps")
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    if overlaps[0] != 0:
        raise ValueError("the first piece cannot overlap a previous one")
    if not 0.0 <= keep_ratio <= 1.0:
        raise OptionsError(f"The crossfade keep ratio must be between 0 and 1, got {keep_ratio}.")
    parts: list[np.ndarray] = []
    tail = np.asarray(pieces[0])  # the end of the output that the next piece may still change
    for piece, overlap in zip(pieces[1:], overlaps[1:], strict=True):
        piece = np.asarray(piece)
        if overlap > min(len(tail), len(piece)):
            raise ValueError(f"overlap of {overlap} samples is longer than a piece ({len(tail)}, {len(piece)})")
        r = int(overlap * keep_ratio)
        c_l = (overlap - r) // 2
        c_r = overlap - r - c_l
        fade = np.linspace(0.0, 1.0, r, dtype=np.float64)
        mixed = tail[len(tail) - c_r - r: len(tail) - c_r] * (1.0 - fade) + piece[c_l: c_l + r] * fade
        parts.append(tail[: len(tail) - c_r - r])
        parts.append(mixed.astype(np.result_type(tail, piece), copy=False))
        tail = piece[c_l + r:]
    parts.append(tail)
    return np.concatenate(parts)
