"""The Analyze tab: the pitch of any recording by one or more F0 predictors; no model needed."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from ..analysis import extract_f0_curve, summarize
from ..audio import read_audio, to_mono
from ..errors import AudioError, OptionsError, SvcError
from ..plots import plot_f0
from .app import WebApp
from .common import TOAST_SECONDS, event_handler, f0_predictor_choices, f0_predictor_names, setting_component
from .convert_tab import audio_input


def analyze(app: WebApp, audio: str | None, methods: list[str] | None, threshold: float, device: str | None,
            progress: gr.Progress):
    """The F0 of a recording by one or more predictors, overlaid.  It runs beside conversions (it
    never waits in their queue): F0 predictors are small next to a voice model."""
    if not audio:
        raise AudioError("add a recording to analyse first")
    if not methods:
        raise SvcError("tick at least one F0 predictor")
    unknown = [m for m in methods if m not in f0_predictor_names()]
    if unknown:
        raise OptionsError(f"unknown F0 predictor(s) {', '.join(unknown)}; choose from "
                           f"{', '.join(f0_predictor_names())}")
    app.check_input(audio)
    wav, sr = read_audio(audio)
    wav = to_mono(wav)
    device_name = app.device_name(device)
    curves, failures = [], []
    for index, method in enumerate(methods):
        progress(index / len(methods), desc=f"{method} ({index + 1}/{len(methods)})")
        try:
            curves.append(extract_f0_curve(wav, sr, method, device=device_name, threshold=threshold,
                                           pretrain_dir=app.pretrain_dir, cache=app.f0_cache))
        except SvcError as e:
            if len(methods) == 1:
                raise
            failures.append(f"{method}: {e}")
    if not curves:
        raise SvcError("no predictor could run: " + " ".join(failures))
    if failures:
        gr.Warning("; ".join(failures), duration=3 * TOAST_SECONDS)
    rows = ["| predictor | voiced | median | lowest | highest |", "|---|---|---|---|---|"]
    rows += [f"| {r.label} | {r.voiced_percent:.0f} % | {r.median_note} | {r.lowest_note} | {r.highest_note} |"
             for r in summarize(curves)]
    rows += [f"\n⚠️ {f}" for f in failures]
    return plot_f0(curves, title=f"F0 of {Path(audio).name}"), "\n".join(rows)


def build(app: WebApp, device_dd: gr.Dropdown) -> None:
    gr.Markdown("The pitch of any recording, by one or more F0 predictors; no model needed.")
    with gr.Row():
        with gr.Column():
            audio_in = audio_input(app, "Recording", "analyze_audio_in")
            methods = gr.CheckboxGroup(f0_predictor_choices(), value=["pm", "harvest"], label="F0 predictors",
                                       elem_id="analyze_methods")
            threshold = setting_component("cr_threshold")
            analyze_btn = gr.Button("Analyze", variant="primary", elem_id="analyze_btn")
        with gr.Column():
            plot = gr.Plot(label="F0", elem_id="analyze_plot")
            table = gr.Markdown(elem_id="analyze_info")
    handler = event_handler(partial(analyze, app), "audio", "methods", "threshold", "device")
    analyze_btn.click(handler, [audio_in, methods, threshold, device_dd], [plot, table], api_name="analyze",
                      concurrency_id="analyze", concurrency_limit=2)
