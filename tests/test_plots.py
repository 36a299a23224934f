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


def test_f0_of_a_long_file_in_blocks_matches_one_pass(tmp_path):
    """A file longer than a block is measured block by block: the same frame grid as one pass and
    (pm, a glide with gaps) the same F0 on nearly every frame."""
    import soundfile as sf

    from svc.analysis import extract_f0_curve, extract_f0_curve_from_file

    sr, seconds = 16000, 7.0
    t = np.arange(int(sr * seconds)) / sr
    freq = 180 + 60 * np.sin(2 * np.pi * 0.3 * t)
    wav = 0.4 * np.sin(2 * np.pi * np.cumsum(freq) / sr) * (np.sin(2 * np.pi * 0.7 * t) > -0.6)
    path = tmp_path / "out.wav"
    sf.write(path, wav.astype(np.float32), sr, subtype="FLOAT")
    settings = {"sampling_rate": sr, "hop_length": 160}
    whole = extract_f0_curve(wav.astype(np.float32), sr, "pm", **settings)
    blocks = extract_f0_curve_from_file(path, "pm", block_seconds=1.3, **settings)
    assert len(blocks.times) == len(whole.times)
    np.testing.assert_allclose(blocks.times, whole.times, atol=1e-9)
    both = (whole.f0 > 0) & (blocks.f0 > 0)
    assert both.sum() > 0.5 * len(whole.f0)
    close = np.abs(blocks.f0[both] - whole.f0[both]) <= 0.01 * whole.f0[both]
    assert close.mean() > 0.97
    assert np.mean((whole.f0 > 0) == (blocks.f0 > 0)) > 0.97
    short = extract_f0_curve_from_file(path, "pm", block_seconds=60, **settings)  # one block: one pass
    np.testing.assert_array_equal(short.f0, whole.f0)
