"""F0 curve plots on a musical axis (matplotlib, no pyplot global state)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import cycle

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Curves differ in colour and, so that they stay apart in greyscale or for colour-blind
# readers, in line style and marker too: the Compare tab overlays up to 7 curves.
PALETTE = tuple(matplotlib.colormaps["tab10"].colors)
LINE_CYCLE: tuple[tuple[str, str], ...] = (
    ("-", "None"), ("--", "None"), (":", "None"), ("-.", "None"),
    ("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "X"),
)
MARK_EVERY = 0.05  # marker spacing as a fraction of the axes diagonal: F0 has ~100 frames/s
LEGEND_COLUMNS = 4  # legend below the axes, so the plot keeps the page width


@dataclass(frozen=True)
class F0Curve:
    """One line of a plot: F0 in Hz over time in seconds; 0 or NaN means unvoiced.

    ``style`` is a matplotlib format string for line style and marker (``"--"``, ``"o-"``);
    ``None`` picks the next style not used by another curve.  Colours always come from
    ``PALETTE`` by the curve's position.
    """

    label: str
    times: np.ndarray
    f0: np.ndarray
    style: str | None = None


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
    """A figure of the curves with note names on the y axis and seconds on the x axis.

    Each curve has its own colour and line style (or marker); the legend sits below the axes,
    never over the curves.
    """
    rows = -(-len(curves) // LEGEND_COLUMNS)
    fig = Figure(figsize=(10, 4 + 0.25 * rows), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    lines = []
    for index, curve in enumerate(curves):
        (line,) = ax.plot(curve.times, hz_to_midi(curve.f0), curve.style or "-", label=curve.label, linewidth=1.4)
        line.set_color(PALETTE[index % len(PALETTE)])
        lines.append(line)
    _style_unstyled(lines, curves)
    _note_axis(ax, curves)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch (note)")
    ax.set_title(title)
    if curves:
        # "outside" legends get their own space from the constrained layout (matplotlib >= 3.7).
        fig.legend(handles=lines, loc="outside lower center", ncols=min(len(curves), LEGEND_COLUMNS),
                   fontsize="small", frameon=False)
    return fig


def _style_unstyled(lines: Sequence[Line2D], curves: Sequence[F0Curve]) -> None:
    """Give curves without a ``style`` the first (line style, marker) pairs no styled curve uses."""
    used = {(line.get_linestyle(), line.get_marker())
            for line, c in zip(lines, curves, strict=True) if c.style is not None}
    free = cycle([pair for pair in LINE_CYCLE if pair not in used] or LINE_CYCLE)
    for line, curve in zip(lines, curves, strict=True):
        if curve.style is None:
            linestyle, marker = next(free)
            line.set_linestyle(linestyle)
            line.set_marker(marker)
            line.set_markersize(4)
            line.set_markevery(MARK_EVERY)


def _note_axis(ax: Axes, curves: Sequence[F0Curve]) -> None:
    """Y limits around the voiced notes, ticks labelled with note names."""
    voiced = [m[np.isfinite(m)] for m in (hz_to_midi(c.f0) for c in curves)]
    notes = np.concatenate(voiced) if voiced else np.zeros(0)
    low, high = (np.floor(notes.min()) - 2, np.ceil(notes.max()) + 2) if notes.size else (48.0, 72.0)
    ax.set_ylim(low, high)
    step = 1 if high - low <= 14 else (2 if high - low <= 28 else 12)
    ticks = [m for m in range(int(low), int(high) + 1) if m % step == 0 or step == 12 and m % 12 == 0]
    ax.set_yticks(ticks, [note_name(m) for m in ticks])
