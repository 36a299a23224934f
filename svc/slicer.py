"""Split a recording at silences, the way so-vits-svc's ``inference/slicer.py`` does.

The algorithm is the reference's: a centred frame RMS (window ``min(min_interval, 4*hop)``,
hop 20 ms, zero padded at the ends like ``librosa.feature.rms``) is compared with a threshold
in dB; silent stretches of at least ``min_interval`` that end a clip of at least ``min_length``
are cut at their quietest frame, keeping at most ``max_sil_kept`` of the silence on each side.

Differences from the reference (deliberate, results are the same):

* The result is a list of :class:`Chunk` covering the input contiguously, in samples, with
  ``is_speech`` (the reference returns ``{"0": {"slice": True, "split_time": "a,b"}}`` where
  ``slice: True`` means *silence*). Empty chunks, which the reference drops when it cuts the audio,
  are never returned.
* The RMS is computed block-wise in float64, so memory stays bounded on long songs.

Kept on purpose: the reference's "too short, do not slice" test compares the number of
*samples* with ``min_length`` counted in *frames* (250 for 5 s at a 20 ms hop), so in effect
only inputs of at most that many samples are left unsliced; shorter-than-5 s inputs are still
sliced (e.g. their leading silence is cut off). We reproduce that so chunk boundaries match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .volume import frame_rms


@dataclass(frozen=True)
class Chunk:
    """A span ``[start, end)`` of the input in samples; ``is_speech`` False means silence."""

    start: int
    end: int
    is_speech: bool

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class _Frames:
    """The slicer's parameters converted to samples and frames at one sample rate."""

    threshold: float
    hop: int
    win: int
    min_length: int
    min_interval: int
    max_sil_kept: int


def _frames(sr: int, db_thresh: float, min_length_ms: int, min_interval_ms: int, hop_ms: int,
            max_sil_kept_ms: int) -> _Frames:
    if not min_length_ms >= min_interval_ms >= hop_ms:
        raise ValueError("the slicer needs min_length >= min_interval >= hop_size")
    if not max_sil_kept_ms >= hop_ms:
        raise ValueError("the slicer needs max_sil_kept >= hop_size")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    min_interval = sr * min_interval_ms / 1000
    hop = round(sr * hop_ms / 1000)
    return _Frames(
        threshold=10 ** (db_thresh / 20.0),
        hop=hop,
        win=min(round(min_interval), 4 * hop),
        min_length=round(sr * min_length_ms / 1000 / hop),
        min_interval=round(min_interval / hop),
        max_sil_kept=round(sr * max_sil_kept_ms / 1000 / hop),
    )


def _silence_tags(rms: np.ndarray, p: _Frames) -> list[tuple[int, int]]:
    """The reference's state machine: ``(begin, end)`` frame ranges of silence to cut out."""
    tags: list[tuple[int, int]] = []
    silence_start: int | None = None
    clip_start = 0
    silent = rms < p.threshold
    keep = p.max_sil_kept

    def quietest(lo: int, hi: int) -> int:  # the quietest frame of [lo, hi)
        return int(rms[lo:hi].argmin()) + lo

    for i in range(rms.shape[0]):
        if silent[i]:
            if silence_start is None:
                silence_start = i
            continue
        if silence_start is None:
            continue
        is_leading = silence_start == 0 and i > keep
        need_middle = i - silence_start >= p.min_interval and i - clip_start >= p.min_length
        if not is_leading and not need_middle:
            silence_start = None
            continue
        if i - silence_start <= keep:
            pos = quietest(silence_start, i + 1)
            tag = (0, pos) if silence_start == 0 else (pos, pos)
        else:
            pos_l = quietest(silence_start, silence_start + keep + 1)
            pos_r = quietest(i - keep, i + 1)
            if silence_start == 0:
                tag = (0, pos_r)
            elif i - silence_start <= keep * 2:
                pos = quietest(i - keep, silence_start + keep + 1)
                tag = (min(pos_l, pos), max(pos_r, pos))
            else:
                tag = (pos_l, pos_r)
        tags.append(tag)
        clip_start = tag[1]  # the next clip starts where this cut ends
        silence_start = None
    total = rms.shape[0]
    if silence_start is not None and total - silence_start >= p.min_interval:
        silence_end = min(total, silence_start + keep)
        tags.append((quietest(silence_start, silence_end + 1), total + 1))
    return tags


def _tags_to_chunks(tags: list[tuple[int, int]], hop: int, n: int) -> list[Chunk]:
    """Turn silence frame ranges into contiguous sample chunks (empty ones dropped)."""
    spans: list[tuple[int, int, bool]] = []
    if tags[0][0]:
        spans.append((0, min(n, tags[0][0] * hop), True))
    for i, (begin, end) in enumerate(tags):
        if i:
            spans.append((tags[i - 1][1] * hop, min(n, begin * hop), True))
        spans.append((begin * hop, min(n, end * hop), False))
    if tags[-1][1] * hop < n:
        spans.append((tags[-1][1] * hop, n, True))
    chunks = [Chunk(s, e, speech) for s, e, speech in spans if e > s]
    _check_contiguous(chunks, n)
    return chunks


def _check_contiguous(chunks: list[Chunk], n: int) -> None:
    edge = 0
    for c in chunks:
        if c.start != edge:
            raise AssertionError(f"slicer produced non-contiguous chunks: {chunks}")
        edge = c.end
    if edge != n:
        raise AssertionError(f"slicer chunks end at {edge}, input has {n} samples")


def slice_audio(
    wav: np.ndarray,
    sr: int,
    db_thresh: float = -40.0,
    *,
    min_length_ms: int = 5000,
    min_interval_ms: int = 300,
    hop_ms: int = 20,
    max_sil_kept_ms: int = 5000,
) -> list[Chunk]:
    """Split a mono signal into alternating speech/silence chunks covering it contiguously.

    The defaults are those ``slice_inference`` uses (``slicer.cut``: min length 5 s, min interval
    300 ms, hop 20 ms, max silence kept 5 s); ``db_thresh`` is the UI's ``slice_db``.
    An empty input gives an empty list.
    """
    if not hasattr(wav, "ndim"):  # arrays, and svc.audio.AudioFileSamples read on demand, are sliced as they are
        wav = np.asarray(wav)
    if wav.ndim != 1:
        raise ValueError(f"slice_audio expects mono audio (1-D), got shape {wav.shape}")
    n = int(wav.shape[0])
    if n == 0:
        return []
    p = _frames(sr, db_thresh, min_length_ms, min_interval_ms, hop_ms, max_sil_kept_ms)
    # Reference quirk kept on purpose: samples compared with a length in frames.
    if n <= p.min_length:
        return [Chunk(0, n, True)]
    tags = _silence_tags(frame_rms(wav, p.win, p.hop), p)
    if not tags:
        return [Chunk(0, n, True)]
    return _tags_to_chunks(tags, p.hop, n)
