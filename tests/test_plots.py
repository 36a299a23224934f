"""F0 plots: curves stay distinguishable in colour and in greyscale, the legend stays off the data."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex

from svc.plots import F0Curve, hz_to_midi, note_name, plot_f0


def _curves(n: int, styles: dict[int, str] | None = None) -> list[F0Curve]:
    times = np.arange(400) / 100
    curves = []
    for i in range(n):
        f0 = 220 * 2 ** ((np.sin(times * (1 + i)) + i) / 12)
        f0[150:170] = 0  # an unvoiced gap
        curves.append(F0Curve(f"result {i} +{i}", times, f0, (styles or {}).get(i)))
    return curves


def _drawn(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def test_seven_curves_differ_in_colour_and_in_style():
    fig = plot_f0(_curves(7, {0: "-"}), title="Compare")
    lines = fig.axes[0].get_lines()
    colours = {to_hex(line.get_color()) for line in lines}
    styles = {(line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(lines) == 7 and len(colours) == 7 and len(styles) == 7


def test_explicit_styles_are_kept_and_not_reused():
    fig = plot_f0(_curves(4, {0: "-", 1: "--"}))
    lines = fig.axes[0].get_lines()
    assert (lines[0].get_linestyle(), lines[1].get_linestyle()) == ("-", "--")
    assert {(line.get_linestyle(), line.get_marker()) for line in lines[2:]}.isdisjoint({("-", "None"), ("--", "None")})


def test_legend_is_outside_the_data_area_and_inside_the_figure():
    fig = plot_f0(_curves(7, {0: "-"}))
    renderer = _drawn(fig)
    (legend,) = fig.legends
    legend_box = legend.get_window_extent(renderer)
    axes_box = fig.axes[0].get_window_extent(renderer)
    assert not legend_box.overlaps(axes_box)
    assert fig.bbox.contains(legend_box.x0, legend_box.y0) and fig.bbox.contains(legend_box.x1, legend_box.y1)
    assert axes_box.width > 0.8 * fig.bbox.width  # the plot keeps (nearly) the page width
    assert [t.get_text() for t in legend.get_texts()] == [f"result {i} +{i}" for i in range(7)]


def test_single_curve_and_empty_plot():
    (line,) = plot_f0(_curves(1)).axes[0].get_lines()
    assert line.get_linestyle() == "-"
    fig = plot_f0([])
    _drawn(fig)
    assert fig.legends == []


def test_notes():
    assert note_name(69) == "A4" and note_name(60) == "C4"
    midi = hz_to_midi(np.array([440.0, 0.0, np.nan, 880.0]))
    assert midi[0] == 69 and np.isnan(midi[1]) and np.isnan(midi[2]) and midi[3] == 81
