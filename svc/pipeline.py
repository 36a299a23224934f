"""The conversion pipeline: one mono recording in, the same performance in another voice out.

decode (caller) -> slice on silence -> per voiced piece: pad, resample to the model rate, F0,
content features, volume, synthesis, enhancement, loudness mix, trim -> crossfade -> output.

The steps and their numbers follow so-vits-svc 4.1's ``Svc.slice_inference``/``Svc.infer``; the
deliberate differences (each a fix of a reference bug) are listed in the README:
no PCM-16 round trip of every chunk, crossfade lengths applied at the rate of the audio they cut,
a fresh resampler for every rate, an output exactly as long as the input, and very long voiced
stretches cut into bounded pieces so memory does not grow with the song.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from .audio import resample
from .crossfade import fit_length, output_spans, split_pieces, stitch
from .features import repeat_expand
from .memory import release_free_memory
from .options import ConvertOptions
from .progress import Progress, work_reporter
from .slicer import Chunk, slice_audio
from .volume import change_rms, extract_volume

# A voiced stretch longer than this is cut into pieces (with a crossfade) even when the user
# asked for no clipping: every model and encoder input then has a bounded size, so memory does
# not grow with the song.  so-vits-svc itself would process the whole stretch at once.
AUTO_CLIP_SECONDS = 30.0
AUTO_CROSSFADE_SECONDS = 1.0


@dataclass(frozen=True)
class F0Track:
    """The F0 of one synthesised piece, for plots.

    Frame ``j`` lies at ``start + j * hop_seconds`` seconds of the input.  Unvoiced frames are 0.
    """

    start: float
    hop_seconds: float
    source: np.ndarray  # predicted from the input, before transpose
    target: np.ndarray  # what the model was driven with (transposed, or predicted by auto F0)

    def times(self) -> np.ndarray:
        return self.start + self.hop_seconds * np.arange(len(self.source))


@dataclass
class ConversionResult:
    """Audio at ``sampling_rate`` plus what the UI shows about how it was made."""

    audio: np.ndarray
    sampling_rate: int
    chunks: list[Chunk]
    f0_tracks: list[F0Track] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    length: int | None = None  # samples written, when ``audio`` was not kept (then it is empty)

    @property
    def duration(self) -> float:
        return (len(self.audio) if self.length is None else self.length) / self.sampling_rate


# What the pipeline calls on the parts a session gives it.  The session (svc/session.py) builds them
# from svc/encoders, svc/f0, svc/models and svc/enhancer.py; the pipeline imports none of those, so
# it can be tested with stand-ins and the parts can change without touching it.


class ContentEncoderLike(Protocol):
    def encode(self, wav: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        """``(1, dim, frames)`` content features of mono ``wav`` at ``sr`` (svc.encoders.ContentEncoder)."""
        ...


class F0PredictorLike(Protocol):
    def compute_f0_uv(self, wav: np.ndarray, p_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(f0, uv)`` per hop of ``wav`` at the model's rate (svc.f0.F0Predictor)."""
        ...


class SynthesizerLike(Protocol):
    def infer(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, g: torch.Tensor, noise_scale: float = ...,
              seed: int = ..., predict_f0: bool = ..., vol: torch.Tensor | None = ...,
              generator: torch.Generator | None = ...) -> tuple[torch.Tensor, torch.Tensor]:
        """``(audio (1, 1, T*hop), f0 (1, T))`` (svc.models.SynthesizerTrn)."""
        ...


class SpeakerMixTrackLike(Protocol):
    def silence(self, n_samples: int) -> None: ...
    def begin_chunk(self) -> None: ...
    def take(self, n_frames: int, start_in_chunk: int | None = None) -> torch.Tensor:
        """``[frames, n_speakers]`` speaker weights of the next piece (svc.timbre.spk_mix.SpeakerMixTrack)."""
        ...


class SpeakerMixLike(Protocol):
    def track(self, chunks: list[Chunk], sr: int) -> SpeakerMixTrackLike:
        """The weight timeline of one conversion's chunks (svc.timbre.spk_mix.MixPlan)."""
        ...


class EnhancerLike(Protocol):
    def enhance(self, audio: torch.Tensor, sr: int, f0: torch.Tensor | np.ndarray, hop: int,
                adaptive_key: float = ...) -> torch.Tensor:
        """Re-vocoded ``audio`` at ``sr`` (svc.enhancer.Enhancer)."""
        ...


class DiffusionLike(Protocol):
    def render(self, wav: torch.Tensor, sr: int, hop: int, units: torch.Tensor, f0: torch.Tensor,
               vol: torch.Tensor | None, speaker_id: int, gan_audio: torch.Tensor | None,
               generator: torch.Generator, report: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """The piece's audio after (shallow or only) diffusion and vocoding (svc.diffusion.DiffusionStage)."""
        ...


@dataclass
class SynthesisParts:
    """What the pipeline needs from a loaded session (kept apart so the pipeline stays testable)."""

    model: SynthesizerLike | None  # None only with only diffusion
    sampling_rate: int
    hop_length: int
    unit_interpolate_mode: str
    vol_embedding: bool
    encoder: ContentEncoderLike
    f0_predictor: F0PredictorLike
    speaker_id: int
    device: torch.device
    enhancer: EnhancerLike | None = None  # when options.enhance
    diffusion: DiffusionLike | None = None  # shallow diffusion, or only diffusion (then model is None)
    # The model input is zero-padded at its end to a multiple of this many samples (cut off again
    # after synthesis): 3.0 models need whole content frames so units repeat exactly onto frames.
    sample_multiple: int = 1
    content_mix: Callable[[torch.Tensor], torch.Tensor] | None = None  # svc.timbre.ContentMix (cluster ratio)
    speaker_mix: SpeakerMixLike | None = None  # svc.timbre.spk_mix.MixPlan (options.spk_mix)


class _Stopwatch:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - start


def convert(
    wav: np.ndarray,
    sr: int,
    options: ConvertOptions,
    parts: SynthesisParts,
    progress: Progress | None = None,
    write: Callable[[np.ndarray], None] | None = None,
    keep_audio: bool = True,
) -> ConversionResult:
    """Convert mono float audio ``wav`` at ``sr`` Hz; the result is at the model's rate.

    ``write`` receives the output in consecutive blocks as they are finished (e.g. to a file);
    without ``keep_audio`` the result holds no copy of it (``audio`` empty, ``length`` set), so a
    long song needs no output-sized buffer.
    """
    progress = progress or (lambda fraction, text: None)
    clock = _Stopwatch()
    target_sr = parts.sampling_rate
    with clock.stage("slice"):
        chunks = slice_audio(wav, sr, db_thresh=options.slice_db)
    bounds = _target_bounds(chunks, sr, target_sr)
    out = _Output(bounds[-1], write, keep_audio, clock)
    voiced_total = sum(c.end - c.start for c in chunks if c.is_speech) or 1
    voiced_done = 0
    tracks: list[F0Track] = []
    progress(0.0, "slicing done")
    mix = parts.speaker_mix.track(chunks, sr) if parts.speaker_mix is not None else None
    for index, chunk in enumerate(chunks):
        if not chunk.is_speech:
            if mix is not None:
                mix.silence(chunk.end - chunk.start)
            out.silence(bounds[index + 1] - bounds[index])  # silence stays silent
            continue
        clip, overlap = _clip_lengths(options, chunk.end - chunk.start, sr)
        pieces = split_pieces(chunk.end - chunk.start, sr, clip, overlap)
        if mix is not None:
            mix.begin_chunk()
        spans = output_spans(pieces, sr, target_sr)
        rendered = []
        for number, (piece, span) in enumerate(zip(pieces, spans, strict=True), 1):
            text = f"chunk {index + 1}/{len(chunks)}" + (f", piece {number}/{len(pieces)}" if len(pieces) > 1 else "")
            start = chunk.start + piece.start
            stages = _PieceProgress(progress, voiced_done / voiced_total,
                                    (piece.length - piece.overlap) / voiced_total, text, parts.diffusion is not None)
            speaker = _piece_speaker(mix, piece.start, auto=options.clip_seconds == 0 and len(pieces) > 1)
            piece_audio, track = _convert_piece(wav[start : chunk.start + piece.end], sr, start, options, parts, clock,
                                                stages, speaker)
            rendered.append(fit_length(piece_audio, span.length))
            tracks.append(track)
            release_free_memory()
            voiced_done += piece.length - piece.overlap
        with clock.stage("crossfade"):
            joined = stitch(rendered, [span.overlap for span in spans], options.crossfade_keep)
        out.add(fit_length(joined, bounds[index + 1] - bounds[index]))
    progress(1.0, "done")
    audio = out.audio if out.audio is not None else np.zeros(0, np.float32)
    return ConversionResult(audio, target_sr, chunks, tracks, clock.totals,
                            length=None if keep_audio else bounds[-1])


class _Output:
    """Where the converted chunks go, in order: an array kept for the result, and/or ``write``."""

    SILENCE_BLOCK = 1 << 20  # samples of zeros handed to ``write`` at a time

    def __init__(self, length: int, write: Callable[[np.ndarray], None] | None, keep: bool,
                 clock: _Stopwatch) -> None:
        self.audio = np.zeros(length, dtype=np.float32) if keep else None
        self.write, self.clock, self.filled = write, clock, 0

    def add(self, block: np.ndarray) -> None:
        if self.audio is not None:
            self.audio[self.filled : self.filled + len(block)] = block
        if self.write is not None:
            with self.clock.stage("write"):
                self.write(block)
        self.filled += len(block)

    def silence(self, n: int) -> None:
        if self.write is None:  # the kept array is already zero there
            self.filled += n
            return
        for start in range(0, n, self.SILENCE_BLOCK):
            self.add(np.zeros(min(self.SILENCE_BLOCK, n - start), dtype=np.float32))


def _piece_speaker(mix: SpeakerMixTrackLike | None, start_in_chunk: int,
                   auto: bool) -> Callable[[int], torch.Tensor] | None:
    """Per-frame speaker weights of a piece (speaker mix only): ``frames -> [frames, n_speakers]``.
    Pieces of a stretch we split automatically are placed by time (so-vits-svc converts it whole)."""
    if mix is None:
        return None
    return lambda frames: mix.take(frames, start_in_chunk if auto else None)


def _convert_piece(
    piece: np.ndarray, sr: int, offset: int, options: ConvertOptions, parts: SynthesisParts, clock: _Stopwatch,
    stages: _PieceProgress | None = None,
    speaker: Callable[[int], torch.Tensor] | None = None,
) -> tuple[np.ndarray, F0Track]:
    """Synthesise one voiced piece: the body of so-vits-svc's ``Svc.infer`` (plus its padding)."""
    target_sr, hop, device = parts.sampling_rate, parts.hop_length, parts.device
    stages = stages or _PieceProgress(None, 0.0, 0.0, "", False)
    pad = int(sr * options.pad_seconds)
    stages.enter("F0")
    with clock.stage("resample"):
        padded = np.concatenate([np.zeros(pad, np.float32), piece.astype(np.float32), np.zeros(pad, np.float32)])
        wav = resample(torch.from_numpy(padded)[None], sr, target_sr)[0].numpy()
        model_len = len(wav)
        if parts.sample_multiple > 1:
            wav = np.pad(wav, (0, -model_len % parts.sample_multiple))
    with clock.stage("f0"):
        f0, uv = parts.f0_predictor.compute_f0_uv(wav)
        source_f0 = np.asarray(f0, dtype=np.float32) * np.asarray(uv, dtype=np.float32)
        f0_t = torch.as_tensor(f0, dtype=torch.float32, device=device)[None] * 2 ** (options.transpose / 12)
        uv_t = torch.as_tensor(uv, dtype=torch.float32, device=device)[None]
    stages.enter("content features")
    with clock.stage("encoder"):
        units = parts.encoder.encode(torch.from_numpy(wav), target_sr)
        c = repeat_expand(units[0].to(device), f0_t.shape[1], parts.unit_interpolate_mode)[None]
    if parts.content_mix is not None:
        with clock.stage("timbre"):
            c = parts.content_mix(c)
    vol = None
    if parts.vol_embedding:
        with clock.stage("volume"):
            vol = extract_volume(torch.from_numpy(wav)[None], hop)[None].to(device)
    # One generator per piece: the synthesis draws first, the diffusion continues it (reference order).
    generator = torch.Generator(device=device).manual_seed(options.seed)
    audio, f0_used = None, f0_t
    if parts.model is not None:
        with clock.stage("synthesis"), work_reporter(stages.enter("synthesis")):
            sid = torch.tensor([[parts.speaker_id]], dtype=torch.long, device=device)
            if speaker is not None:
                sid = speaker(f0_t.shape[1]).to(device)  # [T, n_speakers] weights
            audio, f0_used = parts.model.infer(
                c, f0_t, uv_t, sid,
                noise_scale=options.noise_scale, seed=options.seed, predict_f0=options.auto_f0, vol=vol,
                generator=generator,
            )
            audio = audio[0, 0].float()
    if parts.diffusion is not None:
        steps = stages.enter("diffusion")
        with clock.stage("diffusion"):
            audio = parts.diffusion.render(torch.from_numpy(wav), target_sr, hop, c, f0_used.float(), vol,
                                           parts.speaker_id, audio, generator,
                                           lambda done, total: steps(done / max(total, 1), f"step {done}/{total}"))
    if options.enhance and parts.enhancer is not None:
        stages.enter("enhancer")
        with clock.stage("enhance"):
            key = options.enhancer_adaptive_key
            audio = parts.enhancer.enhance(audio, target_sr, f0_used[0], hop, adaptive_key=key)
    if options.loudness_mix != 1:
        with clock.stage("loudness"):
            audio = change_rms(wav, target_sr, audio, target_sr, options.loudness_mix)
    audio_np = audio.detach().cpu().numpy().astype(np.float32, copy=False)[:model_len]
    trim = int(target_sr * options.pad_seconds)
    if trim:
        audio_np = audio_np[trim:-trim]
    uv_np = uv_t[0].cpu().numpy()
    track = F0Track(
        start=(offset - pad) / sr,
        hop_seconds=hop / target_sr,
        source=source_f0,
        target=f0_used[0].float().cpu().numpy() * uv_np,
    )
    return audio_np, track


class _PieceProgress:
    """Progress inside one piece: each stage owns a share of the piece's part of the whole job.

    The shares are rough costs measured on CPU (the vocoder dominates, the diffusion's denoiser
    when present); fine steps inside a stage (vocoder tiles, denoiser steps) move the bar within
    the stage's share, so it never sits still for a whole piece.
    """

    SHARES = {"F0": (0.0, 0.10), "content features": (0.10, 0.25), "synthesis": (0.25, 0.92),
              "enhancer": (0.92, 1.0)}
    SHARES_WITH_DIFFUSION = {"F0": (0.0, 0.05), "content features": (0.05, 0.15), "synthesis": (0.15, 0.40),
                             "diffusion": (0.40, 1.0)}

    def __init__(self, progress: Progress | None, start: float, weight: float, text: str, diffusion: bool) -> None:
        self.progress, self.start, self.weight, self.text = progress, start, weight, text
        self.shares = self.SHARES_WITH_DIFFUSION if diffusion else self.SHARES

    def enter(self, stage: str) -> Callable[..., None]:
        """Report the start of ``stage``; returns ``report(fraction, detail="")`` for work within it."""
        low, high = self.shares.get(stage, (1.0, 1.0))

        def report(fraction: float, detail: str = "") -> None:
            if self.progress is not None:
                label = f"{self.text}: {stage}" + (f" {detail}" if detail else "")
                self.progress(self.start + self.weight * (low + (high - low) * fraction), label)

        report(0.0)
        return report


def _clip_lengths(options: ConvertOptions, length: int, sr: int) -> tuple[float, float]:
    """(clip, crossfade) seconds: the user's forced chunking, or an automatic one for stretches
    too long to hold at once."""
    if options.clip_seconds > 0:
        return options.clip_seconds, options.crossfade_seconds
    if length > AUTO_CLIP_SECONDS * sr:
        return AUTO_CLIP_SECONDS, AUTO_CROSSFADE_SECONDS
    return 0.0, 0.0


def _target_bounds(chunks: list[Chunk], sr: int, target_sr: int) -> list[int]:
    """Chunk boundaries at the model rate; the last one is the whole output's length.

    so-vits-svc rounds every chunk's length up on its own, so its output can be a few samples
    longer than the input; rounding the boundaries instead keeps the total exact.
    """
    starts = [c.start for c in chunks] + [chunks[-1].end if chunks else 0]
    return [math.ceil(s * target_sr / sr) for s in starts]
