"""The "Weights" panel (``--allow-weight-uploads``): add encoder / F0 / vocoder files to ``pretrain/``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from ..errors import SvcError
from ..weight_store import save_uploaded_weights, weight_targets
from .app import WebApp
from .common import event_handler, log
from .model_panel import landing_text


def weights_table(app: WebApp) -> str:
    """Every pretrained file the app can use: what it is for, its name, whether the server has it."""
    rows = ["| for | file | on this server | where to get it |", "|---|---|---|---|"]
    for target in weight_targets(app.pretrain_dir):
        rows.append(f"| {target.label} | `{target.filename}` | {'✅ present' if target.present else '— missing'} | "
                    f"{target.source} |")
    return "\n".join(rows)


def upload_weight(app: WebApp, paths: list[str] | None, loaded, progress: gr.Progress):
    """Check and store uploaded weight files (NSF-HiFiGAN's ``model`` with its ``config.json``);
    returns the message, the table, the emptied drop box and the first-screen text again (when no
    model is loaded)."""
    if not paths:
        return "❌ drop a weight file into the box first", weights_table(app), None, gr.update()
    names = [Path(p).name for p in paths]  # Gradio keeps the uploaded files' own names
    try:
        progress(0.2, desc=f"checking {', '.join(names)}")
        stored = save_uploaded_weights(app.pretrain_dir, list(zip(paths, names, strict=True)), move=True)
    except SvcError as e:
        log.info("upload_weight: %s", e)
        return f"❌ {e}", weights_table(app), None, gr.update()
    log.info("stored uploaded weight file(s) %s", ", ".join(map(str, stored)))
    where = ", ".join(f"`{path.relative_to(app.pretrain_dir)}`" for path in stored)
    return (f"Stored {where} in `{app.pretrain_dir}`.", weights_table(app), None,
            landing_text(app) if loaded is None else gr.update())


def build(app: WebApp, state: gr.State, model_info: gr.Markdown) -> None:
    with gr.Accordion("Weights (speech encoders, rmvpe, NSF-HiFiGAN)", open=bool(app.missing_encoders()),
                      elem_id="weights_panel"):
        gr.Markdown("Drop a pretrained file under its published name (for example `checkpoint_best_legacy_500.pt`; "
                    "NSF-HiFiGAN's `model` together with its `config.json`). It is checked (size, format, that it "
                    "loads as what its name says) before it is stored in the server's pretrain folder.")
        with gr.Row(equal_height=True):
            upload = gr.File(file_count="multiple", type="filepath", label="Weight file(s)", elem_id="weight_upload",
                             height=120, scale=3)
            save = gr.Button("Add weight file", elem_id="weight_upload_btn", scale=1)
        message = gr.Markdown(elem_id="weight_msg")
        with gr.Accordion("Every weight file, and which are on this server", open=False, elem_id="weights_list"):
            table = gr.Markdown(weights_table(app), elem_id="weights_table")
    handler = event_handler(partial(upload_weight, app), "files", "loaded")
    save.click(handler, [upload, state], [message, table, upload, model_info], api_name="upload_weight",
               concurrency_id="weights", concurrency_limit=1)  # a check can load a 1.5 GB model: one at a time
