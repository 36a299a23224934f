"""F0 curve plots on a musical axis (matplotlib, no pyplot global state)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class F0Curve:
    """One line of a plot: F0 in Hz over time in seconds; 0 or NaN means unvoiced."""

    label: str
    times: np.ndarray
    f0: np.ndarray
    style: str = "-"


def hz_to_midi(f0: np.ndarray) -> np.ndarray:
    """MIDI note numbers (69 = A4 = 440 Hz); unvoiced frames become NaN so lines break there."""
    f0 = np.asarray(f0, dtype=np.float64)
    midi = np.full(f0.shape, np.nan)
    voiced = np.isfinite(f0) & (f0 > 0)
    midi[voiced] = 69.0 + 12.0 * np.log2(f0[voiced] / 440.0)
    return midi


def note_name(midi: int) -> str:
    """'A4' for 69, 'C4' for 60."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def join_tracks(tracks: Sequence, which: str, duration: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-piece ``F0Track``s into one (times, f0) curve, gaps left unvoiced.

    ``which`` is ``"source"`` or ``"target"``.  Frames outside ``[0, duration]`` (the padding
    around each piece) are dropped.
    """
    times, values = [], []
    for track in tracks:
        t = track.times()
        v = np.asarray(getattr(track, which), dtype=np.float64)
        keep = (t >= 0) & (t <= duration if duration is not None else True)
        times.append(np.append(t[keep], np.nan))  # NaN breaks the line between pieces
        values.append(np.append(v[keep], np.nan))
    if not times:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(times), np.concatenate(values)


def plot_f0(curves: Sequence[F0Curve], title: str = "F0") -> Figure:
    """A figure of the curves with note names on the y axis and seconds on the x axis."""
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    all_midi = []
    for curve in curves:
        midi = hz_to_midi(curve.f0)
        all_midi.append(midi[np.isfinite(midi)])
        ax.plot(curve.times, midi, curve.style, label=curve.label, linewidth=1.4)
    voiced = np.concatenate(all_midi) if all_midi else np.zeros(0)
    low, high = (np.floor(voiced.min()) - 2, np.ceil(voiced.max()) + 2) if voiced.size else (48.0, 72.0)
    ax.set_ylim(low, high)
    step = 1 if high - low <= 14 else (2 if high - low <= 28 else 12)
    ticks = [m for m in range(int(low), int(high) + 1) if m % step == 0 or step == 12 and m % 12 == 0]
    ax.set_yticks(ticks, [note_name(m) for m in ticks])
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch (note)")
    ax.set_title(title)
    if curves:
        ax.legend(loc="upper right", fontsize="small")
    return fig
