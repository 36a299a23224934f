"""The Convert tab: one recording, one speaker, the settings; Cancel; the F0 plot."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import gradio as gr

from ..analysis import conversion_curves, extract_f0_curve_from_file
from ..errors import AudioError, SvcError
from ..f0 import F0_PREDICTORS
from ..options import ConvertOptions
from ..plots import plot_f0
from ..progress import Cancelled, Progress
from . import timbre_section
from .app import OUTPUT_FORMATS, LoadedChoice, WebApp
from .common import (
    MAIN_SETTINGS,
    SETTING_NAMES,
    TOAST_SECONDS,
    changed_settings,
    event_handler,
    setting_component,
    settings_from_values,
    visitor_id,
)

# Re-measuring the output's F0 for the plot: 'pm' takes a fraction of a second; the chosen
# predictor (crepe on a CPU: as long as the conversion) only when asked.
OUTPUT_F0_CHOICES = (("fast (pm)", "pm"), ("with the chosen F0 predictor", "same"), ("off", "off"))
FAST_OUTPUT_F0 = "pm"


def options(session, speaker: str | None, values: tuple) -> ConvertOptions:
    """The conversion settings of the page, for ``session``'s speaker ``speaker``."""
    return ConvertOptions(speaker=session.speaker_name(speaker), **settings_from_values(values))


def output_f0_method(choice: str | None, options: ConvertOptions) -> str | None:
    """The predictor that re-measures the output for the plot (None: no re-measurement)."""
    if choice in (None, "", "off"):
        return None
    if choice == "same":
        return options.f0_method
    if choice not in F0_PREDICTORS:
        raise SvcError(f"unknown output F0 choice {choice!r}")
    return choice


def convert_one(app: WebApp, session, choice: LoadedChoice, audio_path: str, options: ConvertOptions, fmt: str,
                report: Progress):
    """One conversion written to a new output file; returns (path, result).  A cancelled or failed
    job leaves no file behind."""
    out_path = app.output_path(audio_path, str(options.speaker), options.transpose, fmt)
    try:
        # No output array is kept: the plot's output F0 is measured from the written file, block by
        # block, so a long song costs no output-sized buffer.
        result = session.convert_file(audio_path, out_path, options, progress=report, keep_audio=False)
    except BaseException:
        app.discard_output(out_path)
        raise
    return out_path, result


def measure_output(app: WebApp, session, choice: LoadedChoice, out_path: Path, options: ConvertOptions,
                   method: str | None, label: str):
    """(curve or None, seconds taken) of the F0 of the output file ``out_path`` measured by ``method``."""
    if method is None:
        return None, 0.0
    start = time.perf_counter()
    curve = extract_f0_curve_from_file(out_path, method, label,
                                       sampling_rate=session.sampling_rate, hop_length=session.hop_length,
                                       device=choice.device, threshold=options.cr_threshold,
                                       pretrain_dir=app.pretrain_dir, cache=app.f0_cache)
    return curve, time.perf_counter() - start


def convert(app: WebApp, *values):
    """Inputs: state, audio path, speaker, output format, SETTING_NAMES in order, the output F0
    choice, then the visitor and the progress."""
    choice, audio_path, speaker, fmt, *settings, output_f0, visitor, progress = values
    session = app.session_for(choice)  # "load a model first" comes before "add a recording"
    if not audio_path:
        raise AudioError("add an input recording first (drop a file, pick one, or record)")
    duration = app.check_input(audio_path)
    opts = options(session, speaker, tuple(settings))
    session.check_weights(opts)
    method = output_f0_method(output_f0, opts)
    label = f"{Path(audio_path).name} → {opts.speaker}"
    try:
        out_path, result = app.run_job(visitor, choice.device, label, duration, choice.model_dir, progress,
                                       partial(convert_one, app, session, choice, audio_path, opts, fmt))
    except Cancelled as e:
        gr.Info(f"Conversion cancelled ({e}); nothing was written.", duration=TOAST_SECONDS)
        return None, None, f"Cancelled ({e}): nothing was written."
    progress(1.0, desc=f"measuring the output's F0 ({method})" if method else "done")
    curve, measure_seconds = measure_output(app, session, choice, out_path, opts, method,
                                            f"output (re-measured, {method})")
    curves = conversion_curves(result, opts.transpose, opts.auto_f0) + ([curve] if curve else [])
    figure = plot_f0(curves, title=f"F0 — {opts.speaker}, {opts.transpose:+g} semitones")
    timings = dict(result.timings)
    if method:
        timings[f"output F0 ({method})"] = measure_seconds
    times = ", ".join(f"{k} {v:.2f} s" for k, v in timings.items() if v >= 0.005)
    info = (f"`{out_path.name}`: {result.duration:.2f} s at {result.sampling_rate} Hz, "
            f"{sum(c.is_speech for c in result.chunks)} voiced chunk(s). Settings: {changed_settings(opts)}. "
            f"Time: {times}")
    return str(out_path), figure, info


def cancel_button(app: WebApp, elem_id: str) -> gr.Button:
    """A Cancel button: stops this visitor's queued and running jobs (within one piece)."""
    button = gr.Button("Cancel", variant="stop", elem_id=elem_id, scale=1)

    def cancel(request: gr.Request) -> None:
        if not app.cancel(visitor_id(request), "cancelled by the user"):
            gr.Info("Nothing to cancel.", duration=TOAST_SECONDS)

    button.click(cancel, None, None, api_name=elem_id.removesuffix("_btn"), queue=False)
    return button


def check_drop(app: WebApp, path: str | None):
    """A dropped recording is checked at once: a bad one is refused (and removed) with a message."""
    if not path:
        return gr.update()
    try:
        app.check_input(path)
    except AudioError as e:
        gr.Warning(str(e), duration=3 * TOAST_SECONDS)
        return None
    return gr.update()


def audio_input(app: WebApp, label: str, elem_id: str) -> gr.Audio:
    """A recording input whose files are checked as soon as they are dropped or recorded."""
    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label=label, buttons=["download"],
                     elem_id=elem_id)
    audio.upload(partial(check_drop, app), audio, audio, api_visibility="private")
    return audio


def build(app: WebApp, state: gr.State, speaker_dd: gr.Dropdown):
    """The tab's components; returns the recording input and the settings for the Compare tab."""
    with gr.Row():
        with gr.Column():
            audio_in = audio_input(app, "Input (drop, pick or record)", "audio_in")
            speaker_dd.render()
            settings = {name: setting_component(name) for name in MAIN_SETTINGS}
            settings.update(timbre_section.build(app, state))
            with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                for name in SETTING_NAMES:
                    if name not in settings:
                        settings[name] = setting_component(name)
            with gr.Row():
                out_format = gr.Radio(list(OUTPUT_FORMATS), value="wav", label="Output format", elem_id="out_format")
                output_f0 = gr.Dropdown(list(OUTPUT_F0_CHOICES), value=FAST_OUTPUT_F0, label="Output F0 in the plot",
                                     info="re-measures the result; the chosen predictor can take as long as the "
                                          "conversion", elem_id="output_f0")
            with gr.Row():
                convert_btn = gr.Button("Convert", variant="primary", elem_id="convert_btn", scale=3)
                cancel_button(app, "cancel_btn")
        with gr.Column():
            audio_out = gr.Audio(type="filepath", label="Output", interactive=False, buttons=["download"],
                                 elem_id="audio_out")
            f0_plot = gr.Plot(label="F0: input, target, output", elem_id="f0_plot")
            info = gr.Markdown(elem_id="convert_info")
    ordered = [settings[name] for name in SETTING_NAMES]
    handler = event_handler(partial(convert, app), "loaded", "audio", "speaker", "output_format", *SETTING_NAMES,
                            "output_f0", visitor=True)
    # Every conversion enters at once and waits in the app's fair per-device queue, which shows
    # its place in line; Gradio's own queue would only say "1/1".
    convert_btn.click(handler, [state, audio_in, speaker_dd, out_format, *ordered, output_f0],
                      [audio_out, f0_plot, info], api_name="convert", concurrency_id="jobs",
                      concurrency_limit=None)
    return audio_in, {"ordered": ordered, "format": out_format, "output_f0": output_f0}
