"""The "Weights" panel (``--allow-weight-uploads``): add encoder / F0 / vocoder files to ``pretrain/``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from ..errors import SvcError
from ..weight_store import save_uploaded_weight, weight_targets
from .app import WebApp
from .common import event_handler, log
from .model_panel import landing_text


def weights_table(app: WebApp) -> str:
    """Every pretrained file the app can use: what it is for, its name, whether the server has it."""
    rows = ["| for | file | on this server | where to get it |", "|---|---|---|---|"]
    for target in weight_targets(app.pretrain_dir):
        names = ", ".join(f"`{name}`" for name in target.filenames)
        rows.append(f"| {target.label} | {names} | {'✅ present' if target.present else '— missing'} | "
                    f"{target.source} |")
    return "\n".join(rows)


def upload_weight(app: WebApp, path: str | None, loaded, progress: gr.Progress):
    """Check and store one uploaded weight file; returns the message, the table, the emptied drop box
    and the first-screen text again (when no model is loaded)."""
    if not path:
        return "❌ drop a weight file into the box first", weights_table(app), None, gr.update()
    name = Path(path).name  # Gradio keeps the uploaded file's own name
    try:
        progress(0.2, desc=f"checking {name}")
        stored = save_uploaded_weight(app.pretrain_dir, path, name, move=True)
    except SvcError as e:
        log.info("upload_weight: %s", e)
        return f"❌ {e}", weights_table(app), None, gr.update()
    log.info("stored uploaded weight file %s", stored)
    return (f"Stored **{name}** as `{stored}`.", weights_table(app), None,
            landing_text(app) if loaded is None else gr.update())


def build(app: WebApp, state: gr.State, model_info: gr.Markdown) -> None:
    missing = any(not t.present for t in weight_targets(app.pretrain_dir))
    with gr.Accordion("Weights (speech encoders, rmvpe, NSF-HiFiGAN)", open=bool(app.missing_encoders()),
                      elem_id="weights_panel"):
        gr.Markdown("Files are checked (format, size, that they load as what their name says) before they are "
                    "stored in the server's pretrain folder." + (" Some are missing:" if missing else ""))
        table = gr.Markdown(weights_table(app), elem_id="weights_table")
        upload = gr.File(file_count="single", type="filepath", label="Weight file", elem_id="weight_upload")
        save = gr.Button("Add weight file", elem_id="weight_upload_btn")
        message = gr.Markdown(elem_id="weight_msg")
    handler = event_handler(partial(upload_weight, app), "file", "loaded")
    save.click(handler, [upload, state], [message, table, upload, model_info], api_name="upload_weight",
               concurrency_id="load", concurrency_limit=4)
