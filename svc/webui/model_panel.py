"""The model panel at the top of the page: choose, load, add a model; what a first visit needs."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import gradio as gr

from ..diffusion import DiffusionConfig
from ..encoders.registry import get_spec
from ..errors import SvcError
from ..model_store import default_model_name, save_uploaded_model
from ..models.sovits3 import SOVITS3_NOISE_SCALE
from ..options import ConvertOptions
from ..session import model_label
from .app import LoadedChoice, WebApp
from .common import device_choices, event_handler, log

NO_MODEL = "No model loaded."


def landing_text(app: WebApp) -> str:
    """What the first screen says: what is needed before a conversion, and how to get it."""
    models = app.model_dirs()
    lines = []
    if not models:
        lines.append(f"**No model yet.** A voice model is a folder in the server's `{app.checkpoints_dir}` with the "
                     "model's `G_<steps>.pth` and its `config.json`: put one there, or drop both files into "
                     "**Add a model** below.")
    else:
        lines.append(f"**{NO_MODEL}** Choose a model in the **Model** list to load it, then drop a recording into "
                     "**Convert** and press **Convert**.")
    for filename, names in sorted(app.missing_encoders().items()):
        where = ("add it in the **Weights** panel below" if app.allow_weight_uploads else
                 "the server's operator must add it (the browser can add weight files only when the server runs "
                 "with `--allow-weight-uploads`)")
        lines.append(f"⚠️ {', '.join(names)} need{'s' * (len(names) == 1)} the speech-encoder file `{filename}` in "
                     f"`{app.pretrain_dir}`, which is missing: {where}.")
    if not models:
        lines.append("Each model also needs the speech-encoder file its config names (for example "
                     f"`{get_spec('vec768l12').filename}` for vec768l12 models) in `{app.pretrain_dir}`.")
    return "\n\n".join(lines)


def load_model(app: WebApp, model: str | None, device: str | None, progress: gr.Progress):
    """Load a model for this session: the new state, the facts (or why not), and the speaker lists."""
    empty = gr.update(choices=[], value=None)
    try:
        path = app.model_path(model)
        device_name = app.device_name(device)
        progress(0.1, desc=f"loading {path.name} on {device_name}")
        start, cached = time.perf_counter(), app.manager.holds(path, device_name)
        session = app.manager.get(path, device_name)
    except SvcError as e:
        log.info("load_model: %s", e)
        return None, f"❌ **Could not load {model or 'a model'}:** {e}", empty, empty
    when = "(already in memory)" if cached else f"in {time.perf_counter() - start:.1f} s"
    speakers = list(session.speakers)
    return (
        LoadedChoice(str(path), device_name),
        _facts(app, path.name, session, device_name, when),
        gr.update(choices=speakers, value=speakers[0] if speakers else None),
        gr.update(choices=speakers, value=speakers[: min(3, len(speakers))]),
    )


def _facts(app: WebApp, name: str, session, device: str, when: str) -> str:
    lines = [
        f"**{name}** loaded on **{device}**{_precision_note(session)} {when} — "
        f"{model_label(session.version, session.sampling_rate)}, "
        f"encoder {session.speech_encoder}, {session.sampling_rate} Hz, hop {session.hop_length}",
        f"Speakers ({len(session.speakers)}): {', '.join(session.speakers)}",
    ]
    lines += [f"- note: {note}" for note in getattr(session, "load_notes", [])]
    if session.default_noise_scale != ConvertOptions.noise_scale:
        lines.append(f"This model's own generation samples with noise scale {session.default_noise_scale:g} "
                     f"(4.x models: {ConvertOptions.noise_scale:g}): **Noise scale** is set to "
                     f"{session.default_noise_scale:g} for its original sound, unless you had changed it.")
    lines.append(diffusion_facts(session))
    try:
        session.check_weights(ConvertOptions())
    except SvcError as e:  # said once, here; Convert repeats it only if pressed anyway
        fix = " Add it in the **Weights** panel." if app.allow_weight_uploads else ""
        lines.append(f"\n⚠️ **Missing weight file:** {e}{fix}")
    return "\n\n".join(lines)


def _precision_note(session) -> str:
    """`` in bf16`` (the server's ``--precision``) when the session is not in fp32, else nothing."""
    precision = getattr(session, "precision", "fp32")
    return "" if precision == "fp32" else f" in {precision}"


def model_noise_scale(app: WebApp, loaded: LoadedChoice | None, current: float | None):
    """The Noise scale slider after a load: the loaded model's own default (1 for 3.0 models, 0.4 for
    4.x), unless the visitor had moved the slider off every model's default."""
    if loaded is None:
        return gr.update()
    try:
        default = app.session_for(loaded).default_noise_scale
    except SvcError:  # gone meanwhile (evicted, deleted): the next conversion says so
        return gr.update()
    defaults = {ConvertOptions.noise_scale, SOVITS3_NOISE_SCALE}
    if current is None or float(current) in defaults:
        return gr.update(value=default)
    return gr.update()


def diffusion_facts(session) -> str:
    """The model panel's line about the diffusion model found beside the voice model."""
    files = getattr(session, "diffusion_files", None)
    if files is None:
        return ("No diffusion model (for shallow diffusion put `model_N.pt` and its `config.yaml` into "
                "`checkpoints/<model>/diffusion/`).")
    try:
        cfg = DiffusionConfig.from_yaml(files.config)
    except SvcError as e:
        return f"⚠️ Diffusion model `{files.model.name}` has an unusable config: {e}"
    return (f"Diffusion model: `{files.model.parent.name}/{files.model.name}` — {cfg.encoder}, k_step_max "
            f"{cfg.k_step_max}, sampler {cfg.method} (speedup {cfg.speedup}); tick 'Shallow diffusion' to use it.")


def upload_model(app: WebApp, files: list[str] | None, name: str | None, progress: gr.Progress):
    """Validate and save an uploaded model: a message, the model list, the (emptied) drop box, and the
    saved model's name for loading it next (None when nothing was saved)."""
    try:
        if not files:
            raise SvcError("drop the model's .pth file and its config.json into the box first")
        progress(0.2, desc="checking the model (loading it on the CPU)")
        saved = save_uploaded_model(app.checkpoints_dir, files, lambda folder: _validate(app, folder), name,
                                    move=True)
    except SvcError as e:
        log.info("upload_model: %s", e)
        # One message, in the panel; the drop box is emptied so the next attempt starts clean.
        return f"❌ {e}", gr.update(), None, None
    return (f"Saved model **{saved.name}** in `{saved}` and loaded it.", app.refresh(saved.name), None,
            saved.name)


def load_saved(app: WebApp, name: str | None, device: str | None, progress: gr.Progress):
    """After a save: load the new model (a saved model is ready to use); nothing after a failed save."""
    return load_model(app, name, device, progress) if name else (gr.update(),) * 4


def _validate(app: WebApp, folder: Path) -> None:
    from ..session import describe_model_dir

    describe_model_dir(folder)
    app._load_session(folder, "cpu")


def suggested_name(app: WebApp, files: list[str] | None):
    """The name a save would use when none is typed, shown as the name box's placeholder."""
    try:
        default = default_model_name(app.checkpoints_dir, [Path(f) for f in files or []]) if files else ""
    except SvcError:
        default = ""
    return gr.update(placeholder=f"default: {default}" if default else "default: from the config or the .pth name")


def build(app: WebApp, state: gr.State):
    """The panel; returns the components other parts wire to."""
    with gr.Group(elem_id="model_panel"):
        with gr.Row(equal_height=True):
            model_dd = gr.Dropdown(app.model_choices(), value=None, label="Model", scale=5, elem_id="model_dd",
                                   info="folders under checkpoints/: name — version, encoder, speakers")
            refresh_btn = gr.Button("↻ Refresh", scale=0, min_width=90, elem_id="refresh_btn")
            device_dd = gr.Dropdown(device_choices(), value=app.default_device, label="Device", scale=1,
                                    elem_id="device_dd")
            load_btn = gr.Button("Load model", variant="primary", scale=1, elem_id="load_btn")
        model_info = gr.Markdown(landing_text(app), elem_id="model_info")
        with gr.Accordion("Add a model (drop its .pth and config.json)", open=not app.model_dirs(),
                          elem_id="upload_panel"):
            upload_files = gr.File(file_count="multiple", file_types=[".pth", ".json"], type="filepath",
                                   label="Model files", elem_id="model_upload")
            with gr.Row():
                upload_name = gr.Textbox(label="Name (optional)", elem_id="model_name", scale=3,
                                         placeholder="default: from the config or the .pth name")
                upload_btn = gr.Button("Save model", elem_id="upload_btn", scale=1)
            upload_msg = gr.Markdown(elem_id="upload_msg")
    speaker_dd = gr.Dropdown([], label="Speaker", allow_custom_value=True, elem_id="speaker_dd", render=False)
    compare_speakers = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="Speakers",
                                   elem_id="compare_speakers", render=False)
    saved = gr.State(None)
    load_outputs = [state, model_info, speaker_dd, compare_speakers]
    # Loads run beside conversions: a model being loaded waits only for another load of itself.
    load_kwargs = dict(concurrency_id="load", concurrency_limit=4)
    load = event_handler(partial(load_model, app), "model", "device")
    load_btn.click(load, [model_dd, device_dd], load_outputs, api_name="load_model", **load_kwargs)
    model_dd.select(load, [model_dd, device_dd], load_outputs, api_visibility="private", **load_kwargs)
    device_dd.select(load, [model_dd, device_dd], load_outputs, api_visibility="private", **load_kwargs)
    refresh_btn.click(app.refresh, model_dd, model_dd, api_name="list_models")
    upload = event_handler(partial(upload_model, app), "files", "name")
    upload_files.upload(lambda files: suggested_name(app, files), upload_files, upload_name,
                        api_visibility="private", queue=False)
    upload_btn.click(upload, [upload_files, upload_name], [upload_msg, model_dd, upload_files, saved],
                     api_name="upload_model", concurrency_id="load", concurrency_limit=4).then(
        event_handler(partial(load_saved, app), "saved", "device"), [saved, device_dd], load_outputs,
        api_visibility="private")
    return model_dd, device_dd, speaker_dd, compare_speakers, model_info
