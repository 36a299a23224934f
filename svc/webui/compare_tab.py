"""The Compare tab: one recording with several speakers and transposes, side by side."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from ..analysis import conversion_curves
from ..errors import AudioError, SvcError
from ..plots import F0Curve, plot_f0
from ..progress import Cancelled
from .app import WebApp
from .common import LABELS, SETTING_NAMES, TOAST_SECONDS, event_handler, parse_transposes
from .convert_tab import audio_input, cancel_button, convert_one, measure_output, options, output_f0_method

MAX_COMPARE = 6  # audio players in the Compare tab


def compare(app: WebApp, *values):
    """Inputs: state, audio path, speakers, transposes text, output format, SETTING_NAMES, the output F0
    choice, the visitor, the progress.  Outputs: MAX_COMPARE players, then the plot."""
    choice, audio_path, speakers, transposes_text, fmt, *settings, output_f0, visitor, progress = values
    session = app.session_for(choice)
    if not audio_path:
        raise AudioError("add an input recording first (drop a file, pick one, or record)")
    duration = app.check_input(audio_path)
    speakers = [session.speaker_name(s) for s in (speakers or [])]
    if not speakers:
        raise SvcError("tick at least one speaker to compare")
    jobs = [(s, t) for s in speakers for t in parse_transposes(transposes_text)]
    if len(jobs) > MAX_COMPARE:
        raise SvcError(f"{len(jobs)} results asked for, at most {MAX_COMPARE}: pick fewer speakers or transposes")
    base = options(session, speakers[0], tuple(settings))
    session.check_weights(base)
    method = output_f0_method(output_f0, base)

    def run(report):
        results = []
        for index, (speaker, transpose) in enumerate(jobs):
            opts = base.with_(speaker=speaker, transpose=transpose)
            label = f"{speaker} {transpose:+g}"

            def piece_report(fraction: float, text: str, index=index, label=label) -> None:
                report((index + fraction) / len(jobs), f"result {index + 1}/{len(jobs)} ({label}): {text}")

            out_path, result = convert_one(app, session, choice, audio_path, opts, fmt, piece_report)
            results.append((label, out_path, result))
        return results

    try:
        results = app.run_job(visitor, choice.device, f"compare {Path(audio_path).name} ×{len(jobs)}",
                              duration * len(jobs), choice.model_dir, progress, run)
    except Cancelled as e:
        gr.Info(f"Comparison cancelled ({e}); nothing was written.", duration=TOAST_SECONDS)
        return *[gr.update(value=None, visible=False) for _ in range(MAX_COMPARE)], None
    players = [gr.update(value=None, visible=False, label=f"result {i + 1}") for i in range(MAX_COMPARE)]
    curves: list[F0Curve] = []
    for index, (label, out_path, result) in enumerate(results):
        players[index] = gr.update(value=str(out_path), visible=True, label=label)
        if not curves:
            curves.append(conversion_curves(result, 0.0, False)[0])  # the input's F0
        if method is not None:
            progress(1.0, desc=f"measuring the F0 of {label} ({method})")
            curve, _ = measure_output(app, session, choice, out_path, base, method, label)
            curves.append(curve)
    title = f"F0 of each result (re-measured with {method})" if method else "F0 of the input"
    return *players, plot_f0(curves, title=title)


def build(app: WebApp, state: gr.State, speakers: gr.Dropdown, settings: dict, convert_in: gr.Audio):
    gr.Markdown("Converts one recording with several speakers (and transposes) using the Convert tab's settings.")
    with gr.Row():
        with gr.Column():
            audio_in = audio_input(app, "Input", "compare_audio_in")
            speakers.render()
            transposes = gr.Textbox("0", label="Transposes (semitones, comma-separated)", elem_id="compare_transposes")
            shallow = gr.Checkbox(False, label=LABELS["shallow_diffusion"], elem_id="compare_shallow_diffusion",
                                  info="the same switch as in the Convert tab")
            with gr.Row():
                compare_btn = gr.Button("Compare", variant="primary", elem_id="compare_btn", scale=3)
                cancel_button(app, "compare_cancel_btn")
        with gr.Column():
            plot = gr.Plot(label="F0 of each result", elem_id="compare_plot")
    # A grid (CSS in page.CSS): 1-3 results in one row, 4-6 in two, never one stretched alone.
    with gr.Row(elem_id="compare_results"):
        players = [gr.Audio(type="filepath", interactive=False, visible=False, buttons=["download"],
                            elem_id=f"compare_out_{i}", min_width=200) for i in range(MAX_COMPARE)]
    handler = event_handler(partial(compare, app), "loaded", "audio", "speakers", "transposes", "output_format",
                            *SETTING_NAMES, "output_f0", visitor=True)
    compare_btn.click(handler, [state, audio_in, speakers, transposes, settings["format"], *settings["ordered"],
                                settings["output_f0"]],
                      [*players, plot], api_name="compare", concurrency_id="jobs", concurrency_limit=None)
    # One setting, two switches: each follows the other when the user flips it.
    convert_shallow = settings["ordered"][SETTING_NAMES.index("shallow_diffusion")]
    shallow.input(lambda value: value, shallow, convert_shallow, api_visibility="private", queue=False)
    convert_shallow.input(lambda value: value, convert_shallow, shallow, api_visibility="private", queue=False)
    # The Convert tab's recording is the natural default here.
    convert_in.change(lambda path: path, convert_in, audio_in, api_visibility="private", queue=False)
