"""F0 curves for display: of any recording (the Analyze tab) and of a conversion's output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import open_audio, resample
from .plots import F0Curve, hz_to_midi, join_tracks, note_name

ANALYSIS_SAMPLING_RATE = 44100
ANALYSIS_HOP_LENGTH = 512
# A long file's F0 is measured over blocks of this many seconds (plus context on both sides), so
# measuring a 20-minute output needs a block's memory, not the whole song's.
FILE_BLOCK_SECONDS = 60.0
FILE_BLOCK_CONTEXT_SECONDS = 1.0


def extract_f0_curve(
    wav: np.ndarray,
    sr: int,
    method: str,
    label: str | None = None,
    *,
    sampling_rate: int = ANALYSIS_SAMPLING_RATE,
    hop_length: int = ANALYSIS_HOP_LENGTH,
    device: str = "cpu",
    threshold: float = 0.05,
    pretrain_dir: str | Path | None = None,
    cache=None,
    style: str | None = None,
) -> F0Curve:
    """The F0 of mono ``wav`` (at ``sr`` Hz) by predictor ``method``, analysed at ``sampling_rate``.

    Unvoiced frames are 0 (not interpolated), so plots break there.  ``cache`` is an optional
    ``svc.f0.F0PredictorCache`` that keeps loaded predictor networks between calls.
    """
    from .f0 import get_f0_predictor

    wav = np.asarray(wav, dtype=np.float32)
    if sr != sampling_rate:
        wav = resample(torch.from_numpy(wav)[None], sr, sampling_rate)[0].numpy()
    settings = {"hop_length": hop_length, "sampling_rate": sampling_rate, "device": device, "threshold": threshold}
    if pretrain_dir is not None:
        settings["pretrain_dir"] = pretrain_dir
    predictor = cache.get(method, **settings) if cache is not None else get_f0_predictor(method, **settings)
    f0, uv = predictor.compute_f0_uv(wav)
    f0 = np.asarray(f0, dtype=np.float64) * np.asarray(uv, dtype=np.float64)
    times = np.arange(len(f0)) * hop_length / sampling_rate
    return F0Curve(label or method, times, f0, style)


def extract_f0_curve_from_file(path: str | Path, method: str, label: str | None = None, *,
                               block_seconds: float = FILE_BLOCK_SECONDS, **kwargs) -> F0Curve:
    """``extract_f0_curve`` of an audio file, read and measured block by block.

    Each block of ``block_seconds`` is measured with ``FILE_BLOCK_CONTEXT_SECONDS`` of the audio
    around it (so the predictor's windows at its edges see what they would in one pass) and keeps
    only the frames inside it; a file shorter than one block is measured in one pass.  ``kwargs``
    are ``extract_f0_curve``'s.
    """
    samples, sr = open_audio(path)
    total = len(samples)
    rate = kwargs.get("sampling_rate", ANALYSIS_SAMPLING_RATE)
    hop_seconds = kwargs.get("hop_length", ANALYSIS_HOP_LENGTH) / rate
    # Blocks start on a frame of the analysis grid, so the frames of neighbouring blocks line up.
    block = max(1, round(block_seconds / hop_seconds)) * hop_seconds
    if total <= (block + 2 * FILE_BLOCK_CONTEXT_SECONDS) * sr:
        return extract_f0_curve(samples[0:total], sr, method, label, **kwargs)
    context = round(FILE_BLOCK_CONTEXT_SECONDS / hop_seconds) * hop_seconds
    times, f0 = [], []
    start = 0.0
    while start * sr < total:
        lo = max(0.0, start - context)
        hi_sample = min(total, round((start + block + context) * sr))
        curve = extract_f0_curve(samples[round(lo * sr):hi_sample], sr, method, label, **kwargs)
        t = curve.times + lo
        keep = (t >= start - hop_seconds / 2) & (t < start + block - hop_seconds / 2)
        times.append(t[keep])
        f0.append(curve.f0[keep])
        start += block
    return F0Curve(label or method, np.concatenate(times), np.concatenate(f0), kwargs.get("style"))


def conversion_curves(result, transpose: float, auto_f0: bool) -> list[F0Curve]:
    """The source and target F0 of a ``ConversionResult``, ready to plot."""
    duration = result.duration
    src_t, src_f0 = join_tracks(result.f0_tracks, "source", duration)
    tgt_t, tgt_f0 = join_tracks(result.f0_tracks, "target", duration)
    target_label = "target (auto F0)" if auto_f0 else f"target ({transpose:+g} semitones)"
    return [F0Curve("input", src_t, src_f0, "-"), F0Curve(target_label, tgt_t, tgt_f0, "--")]


@dataclass(frozen=True)
class F0Summary:
    """What a table row says about one F0 curve."""

    label: str
    voiced_percent: float
    median_note: str
    lowest_note: str
    highest_note: str


def summarize(curves: Sequence[F0Curve]) -> list[F0Summary]:
    """Voiced share, median and range (as note names) of each curve."""
    rows = []
    for curve in curves:
        midi = hz_to_midi(curve.f0)
        voiced = midi[np.isfinite(midi)]
        total = np.isfinite(np.asarray(curve.times, dtype=np.float64)).sum() or 1
        if voiced.size:
            notes = [note_name(int(round(v))) for v in (np.median(voiced), voiced.min(), voiced.max())]
        else:
            notes = ["-", "-", "-"]
        rows.append(F0Summary(curve.label, 100.0 * voiced.size / total, *notes))
    return rows
