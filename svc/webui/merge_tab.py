"""The Merge tab: a weighted average of models with the same architecture, saved as a new model."""

from __future__ import annotations

import re
import shutil
from functools import partial

import gradio as gr

from ..errors import OptionsError, SvcError
from ..model_tools import MERGE_MODES, describe, merge, parse_weights
from .app import WebApp
from .common import event_handler


def merge_models(app: WebApp, models: list[str] | None, weights: str, mode: str, name: str,
                 progress: gr.Progress):
    """Merge checkpoints/ models into checkpoints/<name>; returns a message and the refreshed model list."""
    if not models or len(models) < 2:
        raise SvcError("pick at least two models to merge")
    name = (name or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise OptionsError("name the merged model with letters, digits, '_', '-' or '.' (at most 64)")
    target = app.checkpoints_dir / name
    if target.exists():
        raise SvcError(f"a model folder '{name}' already exists; choose another name")
    paths = [app.model_path(m) for m in models]
    progress(0.2, desc="merging")
    try:
        written = merge(paths, parse_weights(weights or ""), target, mode)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return f"Merged into **{name}**: {describe(written)}", app.refresh(name)


def build(app: WebApp, model_dd: gr.Dropdown) -> None:
    gr.Markdown("Weighted average of models with the same architecture (so-vits-svc's model mix). The result "
                "is saved as a new model folder under checkpoints/.")
    with gr.Row():
        with gr.Column():
            models = gr.Dropdown(app.model_choices(), multiselect=True, label="Models", elem_id="merge_models")
            refresh_btn = gr.Button("↻ Refresh", elem_id="merge_refresh_btn")
            weights = gr.Textbox("0.5,0.5", label="Weights (one per model, comma-separated)", elem_id="merge_weights")
            mode = gr.Radio(list(MERGE_MODES), value="average", label="Mode",
                            info="average: weights / their sum; linear: as given; softmax: the 4.1 UI's convex mode",
                            elem_id="merge_mode")
            name = gr.Textbox(label="Name of the merged model", elem_id="merge_name")
            merge_btn = gr.Button("Merge", variant="primary", elem_id="merge_btn")
        with gr.Column():
            message = gr.Markdown(elem_id="merge_msg")
    refresh_btn.click(lambda: gr.update(choices=app.model_choices()), None, models, api_visibility="private")
    handler = event_handler(partial(merge_models, app), "models", "weights", "mode", "name")
    # Merging reads files and averages tensors: no device, no place in the conversion queue.
    merge_btn.click(handler, [models, weights, mode, name], [message, model_dd], api_name="merge_models",
                    concurrency_id="tools", concurrency_limit=1)
