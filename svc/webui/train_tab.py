"""The web UI's "Train" tab (shown with ``webui.py --enable-training``).

Pick a dataset folder on the server, prepare it into a run, start / stop training, watch the
losses and step rate, listen to validation samples, and export the model into the model list.
The work happens in ``svc.train.jobs.TrainingJobs`` (child processes); this module is only
the page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gradio as gr
from matplotlib.figure import Figure

from ..encoders.registry import ENCODERS
from ..errors import SvcError
from ..f0 import F0_PREDICTORS
from ..train.config import TEMPLATES
from ..train.jobs import RunStatus, TrainingJobs
from .common import shows_errors

REFRESH_SECONDS = 3.0


def _errors_to_page(fn: Callable) -> Callable:
    """The page's one-toast, one-log-line error display (``svc.webui.common.shows_errors``)."""
    return shows_errors(fn)


def describe(status: RunStatus) -> str:
    """The status line of a run, as Markdown."""
    parts = [f"**{status.name}**: {status.state}", f"step {status.step}"]
    if status.steps_per_s:
        parts.append(f"{status.steps_per_s:.2f} steps/s")
    if status.losses:
        last = status.losses[-1]
        parts.append("mel {:.2f}, kl {:.2f}, fm {:.2f}, g {:.2f}, d {:.2f}".format(
            *(last.get(k, float("nan")) for k in ("loss_mel", "loss_kl", "loss_fm", "loss_g", "loss_d"))))
    if status.checkpoints:
        parts.append(f"checkpoints: {', '.join(f'G_{s}' for s in status.checkpoints)}")
    return " · ".join(parts)


def loss_figure(status: RunStatus) -> Figure | None:
    if not status.losses:
        return None
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    steps = [r["step"] for r in status.losses]
    for key in ("loss_mel", "loss_kl", "loss_fm", "loss_g", "loss_d"):
        ax.plot(steps, [r.get(key) for r in status.losses], label=key[5:])
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


class TrainTab:
    """Handlers of the tab (one ``TrainingJobs`` shared by every visitor: one job at a time)."""

    def __init__(self, jobs: TrainingJobs, refresh_models: Callable[[str | None], dict]):
        self.jobs = jobs
        self.refresh_models = refresh_models

    def runs_update(self, current: str | None = None):
        runs = self.jobs.runs()
        return gr.update(choices=runs, value=current if current in runs else (runs[-1] if runs else None))

    @_errors_to_page
    def prepare(self, dataset: str, name: str, template: str, encoder: str, f0: str):
        self.jobs.prepare(Path(dataset.strip()), name.strip(), template, encoder, f0)
        return f"preparing **{name}** from `{dataset}` (this takes a while: features of every clip)", \
            gr.update(choices=[*self.jobs.runs(), name.strip()], value=name.strip())

    @_errors_to_page
    def start(self, name: str | None, max_steps: float, batch_size: float, eval_interval: float, device: str,
              precision: str):
        if not name:
            raise SvcError("choose a prepared run first")
        self.jobs.start(name, max_steps=int(max_steps or 0) or None, batch_size=int(batch_size or 0) or None,
                        eval_interval=int(eval_interval or 0) or None, device=device, precision=precision)
        return f"training **{name}** started"

    @_errors_to_page
    def stop(self):
        return "stopping (a checkpoint is saved first)" if self.jobs.stop() else "no job is running"

    @_errors_to_page
    def export(self, name: str | None, current_model: str | None):
        if not name:
            raise SvcError("choose a run first")
        path = self.jobs.export(name)
        return f"exported `{path.name}` as model **{name}** (now in the model list)", self.refresh_models(current_model)

    def poll(self, name: str | None):
        if not name:
            return "no run chosen", None, None, ""
        status = self.jobs.status(name)
        generated = [p for p in status.samples if p.name.endswith("_generated.wav")]
        return describe(status), loss_figure(status), (str(generated[0]) if generated else None), status.log_tail


def train_tab(jobs: TrainingJobs, device_choices: list[str], model_dd: gr.Dropdown,
              refresh_models: Callable[[str | None], dict]) -> None:
    """Build the tab's components and events inside the current ``gr.Tab``."""
    tab = TrainTab(jobs, refresh_models)
    gr.Markdown("Train a so-vits-svc 4.1 voice: a dataset folder on this server holds one subfolder of "
                "recordings per speaker.")
    with gr.Row():
        with gr.Column():
            dataset = gr.Textbox(label="Dataset folder (on the server)", placeholder="/data/my_voices",
                                 elem_id="train_dataset")
            name = gr.Textbox(label="Run name", value="my_voice", elem_id="train_name")
            with gr.Row():
                template = gr.Dropdown(list(TEMPLATES), value="default", label="Model size", elem_id="train_template")
                encoder = gr.Dropdown(list(ENCODERS), value="vec768l12", label="Speech encoder",
                                      elem_id="train_encoder")
                f0 = gr.Dropdown(sorted(F0_PREDICTORS), value="rmvpe", label="F0 predictor", elem_id="train_f0")
            prepare_btn = gr.Button("Prepare dataset", elem_id="train_prepare")
        with gr.Column():
            run = gr.Dropdown(jobs.runs(), label="Run", allow_custom_value=True, elem_id="train_run")
            with gr.Row():
                max_steps = gr.Number(value=10000, precision=0, label="Stop at step", elem_id="train_max_steps")
                batch = gr.Number(value=0, precision=0, label="Batch size (0: config)", elem_id="train_batch")
                interval = gr.Number(value=0, precision=0, label="Checkpoint every (0: config)",
                                     elem_id="train_interval")
            with gr.Row():
                device = gr.Dropdown(device_choices, value=device_choices[0], label="Device", elem_id="train_device")
                precision = gr.Radio(["fp32", "bf16", "fp16"], value="fp32", label="Precision",
                                     elem_id="train_precision")
            with gr.Row():
                start_btn = gr.Button("Start / resume", variant="primary", elem_id="train_start")
                stop_btn = gr.Button("Stop", elem_id="train_stop")
                export_btn = gr.Button("Export to model list", elem_id="train_export")
    message = gr.Markdown(elem_id="train_message")
    status = gr.Markdown(elem_id="train_status")
    with gr.Row():
        plot = gr.Plot(label="Losses", elem_id="train_plot")
        sample = gr.Audio(label="Latest validation sample", type="filepath", interactive=False,
                          elem_id="train_sample")
    log = gr.Textbox(label="Job output", lines=6, max_lines=12, elem_id="train_log")

    prepare_btn.click(tab.prepare, [dataset, name, template, encoder, f0], [message, run], api_name="train_prepare")
    start_btn.click(tab.start, [run, max_steps, batch, interval, device, precision], message, api_name="train_start")
    stop_btn.click(tab.stop, None, message, api_name="train_stop")
    export_btn.click(tab.export, [run, model_dd], [message, model_dd], api_name="train_export")
    timer = gr.Timer(REFRESH_SECONDS)
    timer.tick(tab.poll, run, [status, plot, sample, log], api_name="train_status")
    run.change(tab.poll, run, [status, plot, sample, log], api_visibility="private")
