"""Speaker mixing over time, with the semantics of so-vits-svc 4.1's ``spk_mix_map``.

A mix gives each speaker a chain of segments ``[t0, t1, w0, w1]``: over ``[t0, t1)`` the
speaker's weight goes linearly from ``w0`` to ``w1``.  Per frame, the weights are divided by
their sum and the speaker conditioning becomes ``sum_s w_s * emb_g[s]``.

Times are fractions 0..1 of the reference's *frame timeline*, not of the input's duration: every
silent chunk contributes ``ceil(len / sr * target_sr) // hop`` frames, every voiced piece
``(ceil(len / sr * target_sr) + 2 * int(sr * pad)) // hop`` (its padding counted at the input
rate), plus one frame per chunk.  A voiced piece then reads the columns
``[offset, offset + its F0 frame count)``, so a mix written for so-vits-svc gives the same
weights here.  A static mix is a mix with ``w0 == w1`` everywhere.

JSON form (a file or text)::

    {"alice": [[0, 0.5, 1, 0], [0.5, 1, 0, 0]], "1": [[0, 1, 0.5, 0.5]], "carol": [[0, 0.5, 0, 1], [0.5, 1, 1, 1]]}

Keys are speaker names or ids; speakers left out have weight 0.  With ``{"unit": "seconds",
"mix": {...}}`` the times are seconds of the input instead (mapped onto the same timeline).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..crossfade import split_pieces
from ..errors import OptionsError

_EPS = 1e-9  # two times closer than this are the same time


@dataclass(frozen=True)
class Segment:
    """Weight going linearly from ``w0`` at ``t0`` to ``w1`` at ``t1``."""

    t0: float
    t1: float
    w0: float
    w1: float


@dataclass(frozen=True)
class SpeakerMix:
    """A validated mix: segments per speaker id (``emb_g`` row); ``unit`` is "fraction" or "seconds"."""

    segments: dict[int, tuple[Segment, ...]]
    speaker_ids: tuple[int, ...]  # every speaker of the model (zero-weight frames fall back to all of them)
    n_rows: int  # rows of the model's speaker table
    unit: str = "fraction"


def parse_speaker_mix(spec: str | Path | Mapping, spk: Mapping[str, int], n_rows: int | None = None) -> SpeakerMix:
    """Read a mix (a JSON file path, JSON text or a mapping) and check it against the model's ``spk`` map.

    Raises ``OptionsError`` for unknown speakers, malformed segments, gaps, overlaps, negative
    weights and stretches where every weight is zero.
    """
    data = _load(spec)
    unit = "fraction"
    if isinstance(data, Mapping) and "mix" in data:
        unit = data.get("unit", "fraction")
        if unit not in ("fraction", "seconds"):
            raise OptionsError(f"spk_mix: unit must be 'fraction' or 'seconds', got {unit!r}")
        data = data["mix"]
    if not isinstance(data, Mapping) or not data:
        raise OptionsError("spk_mix must map speakers to segment lists, e.g. {\"alice\": [[0, 1, 0.5, 0.5]]}")
    segments: dict[int, tuple[Segment, ...]] = {}
    for key, value in data.items():
        sid = _speaker_id(key, spk)
        if sid in segments:
            raise OptionsError(f"spk_mix names speaker {key!r} (id {sid}) twice")
        segments[sid] = _segments(key, value, unit)
    mix = SpeakerMix(segments, tuple(sorted(set(spk.values()))), n_rows or max(spk.values()) + 1, unit)
    _check_nonzero(mix)
    return mix


def _load(spec: str | Path | Mapping) -> object:
    if isinstance(spec, Mapping):
        return spec
    text = str(spec)
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise OptionsError(f"spk_mix file '{path}' does not exist")
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionsError(f"spk_mix is not valid JSON: {exc}") from None


def _speaker_id(key: object, spk: Mapping[str, int]) -> int:
    if isinstance(key, str) and key in spk:
        return spk[key]
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    if isinstance(key, int) and not isinstance(key, bool) and key in spk.values():
        return key
    listing = ", ".join(f"{name} ({sid})" for name, sid in sorted(spk.items(), key=lambda kv: kv[1]))
    raise OptionsError(f"spk_mix: unknown speaker {key!r}; this model has: {listing}")


def _segments(key: object, value: object, unit: str) -> tuple[Segment, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise OptionsError(f"spk_mix: speaker {key!r} needs a list of [t_start, t_end, w_start, w_end] segments")
    out = []
    for item in value:
        if not (isinstance(item, Sequence) and len(item) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in item)):
            raise OptionsError(f"spk_mix: speaker {key!r}: segment {item!r} is not four numbers "
                               "[t_start, t_end, w_start, w_end]")
        seg = Segment(*(float(v) for v in item))
        if seg.w0 < 0 or seg.w1 < 0:
            raise OptionsError(f"spk_mix: speaker {key!r}: weights must not be negative ({list(item)})")
        if not seg.t1 > seg.t0:
            raise OptionsError(f"spk_mix: speaker {key!r}: segment {list(item)} must end after it starts")
        out.append(seg)
    end = 1.0 if unit == "fraction" else None
    if abs(out[0].t0) > _EPS:
        raise OptionsError(f"spk_mix: speaker {key!r}: the first segment must start at 0 (it starts at {out[0].t0})")
    for prev, seg in zip(out, out[1:], strict=False):
        if seg.t0 > prev.t1 + _EPS:
            raise OptionsError(f"spk_mix: speaker {key!r}: gap between {prev.t1} and {seg.t0}; each segment "
                               "must start where the previous one ends")
        if seg.t0 < prev.t1 - _EPS:
            raise OptionsError(f"spk_mix: speaker {key!r}: segments overlap ({seg.t0} < {prev.t1}); each segment "
                               "must start where the previous one ends")
    if end is not None and abs(out[-1].t1 - end) > _EPS:
        raise OptionsError(f"spk_mix: speaker {key!r}: the last segment must end at 1 (it ends at {out[-1].t1})")
    return tuple(out)


def _weight_at(segments: tuple[Segment, ...], t: float) -> float:
    for seg in segments:
        if seg.t0 <= t < seg.t1:
            return seg.w0 + (seg.w1 - seg.w0) * (t - seg.t0) / (seg.t1 - seg.t0)
    return 0.0


def _check_nonzero(mix: SpeakerMix) -> None:
    """Every stretch between two segment boundaries must give some speaker a weight above 0.

    The total weight is linear between boundaries and never negative, so it is zero over a stretch
    exactly when it is zero in the stretch's middle.  (A single frame of zeros, where ramps meet,
    is allowed: as in so-vits-svc, such a frame weighs all speakers equally.)
    """
    times = sorted({t for segs in mix.segments.values() for s in segs for t in (s.t0, s.t1)})
    for a, b in zip(times, times[1:], strict=False):
        middle = (a + b) / 2
        if b - a > _EPS and sum(_weight_at(segs, middle) for segs in mix.segments.values()) <= 0:
            raise OptionsError(f"spk_mix: all speaker weights are 0 between {a:g} and {b:g}; give some speaker "
                               "a weight there")


def mix_weights(mix: SpeakerMix, length: int) -> torch.Tensor:
    """Per-frame weights ``[length, n_rows]`` over a timeline of ``length`` frames, as so-vits-svc builds them."""
    weights = torch.zeros(mix.n_rows, length)
    for sid, segs in mix.segments.items():
        for seg in segs:
            begin, end = int(length * seg.t0), int(length * seg.t1)
            n = end - begin
            if n <= 0:
                raise OptionsError(f"spk_mix: segment {[seg.t0, seg.t1]} is shorter than one frame of this "
                                   f"{length}-frame input; make it longer")
            weights[sid, begin:end] = _ramp(seg.w0, seg.w1, n)
    total = weights.sum(dim=0, keepdim=True)
    empty = total[0] == 0
    weights[:, empty] = 0.0
    weights[list(mix.speaker_ids), :] = torch.where(empty, 1.0 / len(mix.speaker_ids), weights[list(mix.speaker_ids)])
    total[:, empty] = 1.0
    return (weights / total).T.contiguous()


def _ramp(w0: float, w1: float, n: int) -> torch.Tensor:
    """``n`` values from ``w0`` toward ``w1`` (float32 ``arange``, as the reference; reflection-padded
    when rounding gives one value too few)."""
    step = (w1 - w0) / n
    if step == 0.0:
        return torch.zeros(n) + w0
    values = torch.arange(w0, w1, step)
    if len(values) < n:
        values = torch.nn.functional.pad(values[None, None], [0, n - len(values)], mode="reflect")[0, 0]
    return values[:n]


@dataclass(frozen=True)
class MixPlan:
    """A mix bound to a model's rates and the conversion settings; ``track`` starts one conversion."""

    mix: SpeakerMix
    target_sr: int
    hop: int
    pad_seconds: float
    clip_seconds: float
    crossfade_seconds: float

    def timeline_length(self, chunks: Sequence, sr: int) -> int:
        """so-vits-svc's timeline length in frames for these slicer chunks (see the module docstring)."""
        total = 0
        for chunk in chunks:
            n = chunk.end - chunk.start
            if not chunk.is_speech:
                total += _at_target(n, sr, self.target_sr) // self.hop
                continue
            for piece in split_pieces(n, sr, self.clip_seconds, self.crossfade_seconds):
                total += (_at_target(piece.length, sr, self.target_sr) + 2 * int(sr * self.pad_seconds)) // self.hop
        return total + len(chunks)

    def track(self, chunks: Sequence, sr: int) -> SpeakerMixTrack:
        length = self.timeline_length(chunks, sr)
        mix = self.mix if self.mix.unit == "fraction" else _seconds_to_fractions(self.mix, chunks, sr)
        return SpeakerMixTrack(mix_weights(mix, length), sr, self.target_sr, self.hop)


def _at_target(n: int, sr: int, target_sr: int) -> int:
    return int(np.ceil(n / sr * target_sr))  # the reference's float formula (it can round up one sample more)


def _seconds_to_fractions(mix: SpeakerMix, chunks: Sequence, sr: int) -> SpeakerMix:
    """Seconds of the input become fractions of the input's length (the last segment stretches to the end)."""
    duration = (chunks[-1].end if chunks else 0) / sr or 1.0
    segments = {}
    for sid, segs in mix.segments.items():
        scaled = [Segment(min(s.t0 / duration, 1.0), min(s.t1 / duration, 1.0), s.w0, s.w1) for s in segs]
        scaled = [s for s in scaled if s.t1 > s.t0]
        scaled[-1] = Segment(scaled[-1].t0, 1.0, scaled[-1].w0, scaled[-1].w1)
        segments[sid] = tuple(scaled)
    return SpeakerMix(segments, mix.speaker_ids, mix.n_rows, "fraction")


class SpeakerMixTrack:
    """Hands each voiced piece its columns of the weight timeline, in conversion order."""

    def __init__(self, weights: torch.Tensor, sr: int, target_sr: int, hop: int):
        self.weights, self.sr, self.target_sr, self.hop = weights, sr, target_sr, hop
        self.offset = self.chunk_start = 0

    def silence(self, n_samples: int) -> None:
        self.offset += _at_target(n_samples, self.sr, self.target_sr) // self.hop

    def begin_chunk(self) -> None:
        self.chunk_start = self.offset

    def take(self, n_frames: int, start_in_chunk: int | None = None) -> torch.Tensor:
        """Weights ``[n_frames, n_rows]`` of the next piece.  ``start_in_chunk`` (input samples) places a
        piece of a long stretch we split ourselves (so-vits-svc converts it whole) by its time instead."""
        begin = self.offset
        if start_in_chunk is not None:
            begin = self.chunk_start + int(start_in_chunk * self.target_sr / self.sr) // self.hop
        self.offset = begin + n_frames
        rows = torch.arange(begin, begin + n_frames).clamp_(max=len(self.weights) - 1)
        return self.weights[rows]
