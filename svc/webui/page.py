"""The whole page: the model panel over the tabs, wired to one ``WebApp``."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from ..device import resolve_device
from ..weights import DEFAULT_PRETRAIN_DIR
from . import analyze_tab, compare_tab, convert_tab, merge_tab, model_panel
from .app import DELETE_CACHE, WebApp
from .common import SETTING_NAMES, device_choices, visitor_id

QUEUE_SIZE = 16  # requests waiting beyond this are told the queue is full

CSS = """
#share_banner {border: 1px solid var(--color-accent); border-radius: 6px; padding: 4px 12px;}
#model_info {min-height: 2em;}
#compare_results {display: grid !important; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px;}
#compare_results > * {min-width: 0 !important; width: auto !important;}
@media (max-width: 800px) {#compare_results {grid-template-columns: 1fr;}}
"""


def build_demo(checkpoints_dir: str | Path = "checkpoints", pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
               device: str = "auto", app: WebApp | None = None, training_runs: str | Path | None = None) -> gr.Blocks:
    """The whole page, queued and ready to ``launch()``; ``training_runs`` adds the Train tab."""
    app = app or WebApp(Path(checkpoints_dir), Path(pretrain_dir), device)
    resolve_device(app.default_device)  # an unavailable --device is a clear error before the page starts
    with gr.Blocks(title="so-vits-svc", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        state = gr.State(None)
        banner = gr.Markdown(visible=False, elem_id="share_banner")
        gr.Markdown("## Singing voice conversion (so-vits-svc models)", elem_id="title")
        model_dd, device_dd, speaker_dd, compare_speakers, model_info = model_panel.build(app, state)
        if app.allow_weight_uploads:
            from . import weights_panel

            weights_panel.build(app, state, model_info)
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Convert", id="convert", elem_id="tab_convert"):
                convert_in, settings = convert_tab.build(app, state, speaker_dd)
            # a newly loaded model brings its own noise scale (3.0 models sample at 1, 4.x at 0.4)
            noise = settings["ordered"][SETTING_NAMES.index("noise_scale")]
            state.change(partial(model_panel.model_noise_scale, app), [state, noise], noise,
                         api_visibility="private", show_progress="hidden", queue=False)
            with gr.Tab("Compare", id="compare", elem_id="tab_compare"):
                compare_tab.build(app, state, compare_speakers, settings, convert_in)
            with gr.Tab("Analyze", id="analyze", elem_id="tab_analyze"):
                analyze_tab.build(app, device_dd)
            with gr.Tab("Merge", id="merge", elem_id="tab_merge"):
                merge_tab.build(app, model_dd)
            if training_runs is not None:
                _train_tab(app, Path(training_runs), model_dd)
        demo.load(lambda: gr.update(value=app.banner, visible=bool(app.banner)), outputs=banner,
                  api_visibility="private", show_progress="hidden")
        # A fresh page shows what is on disk now, with nothing selected that is not loaded.
        # (choices only: a model the visitor picked before this arrives stays picked)
        demo.load(lambda: (gr.update(choices=app.model_choices()), model_panel.landing_text(app)),
                  outputs=[model_dd, model_info], api_visibility="private", show_progress="hidden")

        def page_closed(request: gr.Request) -> None:
            app.cancel(visitor_id(request), "the page was closed")

        demo.unload(page_closed)
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE)
    return demo


def _train_tab(app: WebApp, runs_dir: Path, model_dd: gr.Dropdown) -> None:
    from ..train.jobs import TrainingJobs
    from .train_tab import train_tab

    with gr.Tab("Train", id="train", elem_id="tab_train"):
        jobs = TrainingJobs(runs_dir, app.checkpoints_dir, app.pretrain_dir)
        train_tab(jobs, device_choices(), model_dd, app.refresh)
