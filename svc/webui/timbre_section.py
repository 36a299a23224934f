"""The Convert tab's timbre controls: the model folder's cluster / index ratio and the speaker mix."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import gradio as gr

from ..errors import OptionsError
from ..timbre import find_timbre_file
from .app import LoadedChoice, WebApp
from .common import event_handler, setting_component, shows_errors


def timbre_controls(app: WebApp, choice: LoadedChoice | None, progress: gr.Progress):
    """The loaded model's cluster / index file (shown) and one mix-editor row per speaker."""
    if choice is None:
        return "load a model first", gr.update(value=[["", 0.0, 0.0]])
    session = app.session_for(choice)
    found = find_timbre_file(Path(choice.model_dir))
    text = found.name if found else "none in the model folder (put kmeans_*.pt or feature_and_index.pkl there)"
    return text, gr.update(value=[[name, 0.0, 0.0] for name in session.speakers])


def mix_from_table(rows) -> str:
    """The mix editor's rows (speaker, weight at start, weight at end) as spk_mix JSON ('' = no mix)."""
    rows = rows.values.tolist() if hasattr(rows, "values") else (rows or [])
    mix = {}
    for row in rows:
        if len(row) < 3 or not str(row[0] or "").strip():
            continue
        try:
            start, end = float(row[1] or 0), float(row[2] or 0)
        except (TypeError, ValueError):
            raise OptionsError(f"mix weights must be numbers, got {row[1]!r} and {row[2]!r}") from None
        if start or end:
            mix[str(row[0]).strip()] = [[0.0, 1.0, start, end]]
    return json.dumps(mix) if mix else ""


def build(app: WebApp, state: gr.State) -> dict[str, gr.components.Component]:
    """The ``cluster``, ``cluster_ratio`` and ``spk_mix`` settings (the API takes spk_mix as JSON
    text; the editor writes it)."""
    with gr.Accordion("Timbre: cluster / index and speaker mix", open=False, elem_id="timbre"):
        cluster = gr.Textbox(label="Cluster model / feature index (from the model folder)", interactive=False,
                             elem_id="opt_cluster")
        ratio = setting_component("cluster_ratio")
        gr.Markdown("**Speaker mix**: weights per speaker, changing linearly from the start of the recording to "
                    "its end (all 0 = no mix; the Speaker choice is then ignored).")
        table = gr.Dataframe(headers=["speaker", "weight at start", "weight at end"],
                             datatype=["str", "number", "number"], value=[["", 0.0, 0.0]], type="array",
                             column_count=3, interactive=True, elem_id="mix_table")
        with gr.Row():
            use_btn = gr.Button("Use this mix", elem_id="mix_use_btn", scale=1)
            clear_btn = gr.Button("No mix", elem_id="mix_clear_btn", scale=1)
        spk_mix = gr.Textbox(label="Speaker mix (JSON, so-vits-svc spk_mix_map form; empty = off)", lines=2,
                             placeholder='{"alice": [[0, 1, 0.3, 0.3]], "bob": [[0, 1, 0.7, 0.7]]}',
                             elem_id="opt_spk_mix")
    state.change(event_handler(partial(timbre_controls, app), "loaded"), state, [cluster, table],
                 api_visibility="private")
    use_btn.click(shows_errors(mix_from_table), table, spk_mix, api_name="mix_from_table")
    clear_btn.click(lambda: "", None, spk_mix, api_visibility="private", queue=False)
    return {"cluster": cluster, "cluster_ratio": ratio, "spk_mix": spk_mix}
