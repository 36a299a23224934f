"""Web UI: ``python webui.py [--host 127.0.0.1] [--port 7860] [--share] [--device auto] [--checkpoints DIR]``.

A thin Gradio layer over ``svc.session.VitsSvc``: every conversion setting comes from
``ConvertOptions``, every model from ``checkpoints/``; the page only wires them together.
"""

from __future__ import annotations

import os

# Before gradio / huggingface_hub are imported: no telemetry, no version checks, no calls home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import MISSING, dataclass, fields  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from svc.analysis import conversion_curves, extract_f0_curve, summarize  # noqa: E402
from svc.audio import read_audio, to_mono  # noqa: E402
from svc.device import resolve_device  # noqa: E402
from svc.diffusion import SAMPLERS, DiffusionConfig  # noqa: E402
from svc.errors import AudioError, OptionsError, SvcError  # noqa: E402
from svc.f0 import F0_PREDICTORS, F0PredictorCache  # noqa: E402
from svc.model_store import UPLOAD_PREFIX, ModelManager, save_uploaded_model  # noqa: E402
from svc.model_tools import MERGE_MODES, describe, merge, parse_weights  # noqa: E402
from svc.naming import output_filename  # noqa: E402
from svc.options import ConvertOptions, check_option  # noqa: E402
from svc.plots import F0Curve, plot_f0  # noqa: E402
from svc.session import VitsSvc, describe_model_dir, list_model_dirs, model_label  # noqa: E402
from svc.timbre import find_timbre_file  # noqa: E402
from svc.weights import DEFAULT_PRETRAIN_DIR  # noqa: E402

log = logging.getLogger("svc.webui")

ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINTS = ROOT / "checkpoints"
MAX_COMPARE = 6  # audio players in the Compare tab
QUEUE_SIZE = 16  # requests waiting beyond this are told the queue is full
DELETE_CACHE = (1800, 7200)  # every 30 min, delete uploads/outputs older than 2 h
OUTPUT_FORMATS = ("wav", "flac")
LINE_STYLES = ("-", "--", "-.", ":")
INFERENCE = "inference"  # concurrency group of everything that runs a model or an F0 predictor
OOM_MESSAGE = (
    "Out of memory. Try a shorter recording, set 'Clip seconds' (Advanced settings) to about 15, "
    "or choose the CPU as device."
)

# How each setting is shown; ranges, steps, help texts and defaults come from ConvertOptions itself.
LABELS = {"f0_method": "F0 predictor", "auto_f0": "Auto F0", "slice_db": "Slice threshold (dB)",
          "cr_threshold": "Voicing threshold (crepe/rmvpe/fcpe)", "enhance": "NSF-HiFiGAN enhancer",
          "shallow_diffusion": "Shallow diffusion", "only_diffusion": "Only diffusion", "k_step": "Diffusion k-step",
          "second_encoding": "Diffusion: second encoding", "diffusion_method": "Diffusion sampler",
          "diffusion_speedup": "Diffusion speedup", "cluster_ratio": "Timbre: cluster/index ratio"}
MAIN_SETTINGS = ("transpose", "f0_method", "auto_f0", "slice_db", "noise_scale", "shallow_diffusion")
CONFIG_SAMPLER = "config"  # the sampler dropdown's "as the diffusion model's config says"
# Every other ConvertOptions field but the speaker is an advanced setting, in declaration order.
SETTING_NAMES = tuple(f.name for f in fields(ConvertOptions) if f.name != "speaker")

CSS = """
#share_banner {border: 1px solid var(--color-accent); border-radius: 6px; padding: 4px 12px;}
#model_info {min-height: 2em;}
"""


@dataclass(frozen=True)
class LoadedChoice:
    """What one browser session has loaded: kept in its ``gr.State``."""

    model_dir: str
    device: str


def f0_predictor_names() -> list[str]:
    return list(F0_PREDICTORS)


def f0_predictor_choices() -> list[tuple[str, str]]:
    """(label, name) pairs: the name with its one-line summary."""
    return [(f"{name} — {spec.summary}", name) for name, spec in F0_PREDICTORS.items()]


def device_choices() -> list[str]:
    """'auto' and the devices this machine has."""
    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        choices += ["cuda"] if count == 1 else [f"cuda:{i}" for i in range(count)]
    if torch.backends.mps.is_available():
        choices.append("mps")
    return choices


def canonical_device(name: str) -> str:
    """One name per physical device ('cuda' and 'cuda:0' are the same GPU), for locks and caches."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def shows_errors(fn: Callable) -> Callable:
    """Turn every failure of a handler into a visible ``gr.Error`` (never a traceback or a stuck spinner)."""

    def translate(e: BaseException) -> gr.Error:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, SvcError):
            return gr.Error(str(e), duration=None)
        if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
            return gr.Error(OOM_MESSAGE, duration=None)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Unexpected error ({type(e).__name__}: {e}). The server log has the details.", duration=None)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise translate(e) from None
    return wrapper


def event_handler(method: Callable, *names: str) -> Callable:
    """``method(*inputs, progress)`` as a Gradio handler: errors shown, inputs named.

    Gradio reads the parameter names for the API page and finds ``gr.Progress`` by its default;
    the conversion settings' names come from ``ConvertOptions``, so handlers take them as
    ``*values`` and this signature names them.
    """
    fn = shows_errors(method)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(name, kind) for name in names]
    params.append(inspect.Parameter("progress", kind, default=gr.Progress()))
    fn.__signature__ = inspect.Signature(params)
    return fn


class WebApp:
    """The state the page's handlers share: folders, the model manager, the share status."""

    def __init__(self, checkpoints_dir: Path, pretrain_dir: Path, device: str = "auto", max_loaded: int = 2,
                 output_dir: Path | None = None) -> None:
        self.checkpoints_dir = Path(checkpoints_dir)
        self.pretrain_dir = Path(pretrain_dir)
        self.default_device = device
        self.manager = ModelManager(self._load_session, max_loaded=max_loaded)
        # Converted files are written here, then served (Gradio copies them into its own cache).
        self.output_dir = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="svc-webui-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.banner = ""  # set by main() when a share link could not be made
        self.f0_cache = F0PredictorCache(max_entries=4)  # predictors for plots, shared by all sessions

    # --- models -------------------------------------------------------------------------------

    def _load_session(self, model_dir: Path, device: str):
        session = VitsSvc(device=device, pretrain_dir=self.pretrain_dir)
        session.load(model_dir)
        return session

    def model_dirs(self) -> dict[str, Path]:
        if not self.checkpoints_dir.is_dir():
            return {}
        return {p.name: p for p in list_model_dirs(self.checkpoints_dir) if not p.name.startswith(UPLOAD_PREFIX)}

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, folder name) pairs for the model dropdown."""
        choices = []
        for name, path in self.model_dirs().items():
            try:
                info = describe_model_dir(path)
                count = len(info.speakers)
                label = (f"{name} — {info.label}, {info.speech_encoder}, "
                         f"{count} speaker{'s' * (count != 1)}" + (", diffusion" if info.diffusion else ""))
            except SvcError as e:
                label = f"{name} — unusable: {e}"
            choices.append((label, name))
        return choices

    def model_path(self, name: str | None) -> Path:
        if not name:
            raise SvcError("choose a model first (the 'Model' list at the top), or add one under 'Add a model'")
        dirs = self.model_dirs()
        if name not in dirs:
            raise SvcError(f"there is no model '{name}' in '{self.checkpoints_dir}'; press refresh and choose again")
        return dirs[name]

    def device_name(self, device: str | None) -> str:
        return canonical_device(device or self.default_device)

    def session_for(self, choice: LoadedChoice | None):
        if choice is None:
            raise SvcError("load a model first: choose one in the 'Model' list at the top")
        return self.manager.get(Path(choice.model_dir), choice.device)

    def refresh(self, current: str | None):
        choices = self.model_choices()
        names = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in names else (names[0] if names else None))

    def load_model(self, model: str | None, device: str | None, progress: gr.Progress):
        """Load a model for this session; returns the new state, the facts, and the speaker lists."""
        path = self.model_path(model)
        device_name = self.device_name(device)
        progress(0.1, desc=f"loading {path.name} on {device_name}")
        start, cached = time.perf_counter(), self.manager.holds(path, device_name)
        session = self.manager.get(path, device_name)
        progress(0.9, desc="checking weight files")
        when = "(already in memory)" if cached else f"in {time.perf_counter() - start:.1f} s"
        facts = self._facts(path.name, session, device_name, when)
        speakers = list(session.speakers)
        return (
            LoadedChoice(str(path), device_name),
            facts,
            gr.update(choices=speakers, value=speakers[0] if speakers else None),
            gr.update(choices=speakers, value=speakers[: min(3, len(speakers))]),
        )

    def _facts(self, name: str, session, device: str, when: str) -> str:
        lines = [
            f"**{name}** loaded on **{device}** {when} — {model_label(session.version, session.sampling_rate)}, "
            f"encoder {session.speech_encoder}, {session.sampling_rate} Hz, hop {session.hop_length}",
            f"Speakers ({len(session.speakers)}): {', '.join(session.speakers)}",
        ]
        lines += [f"- note: {note}" for note in getattr(session, "load_notes", [])]
        lines.append(diffusion_facts(session))
        try:
            session.check_weights(ConvertOptions())
        except SvcError as e:
            gr.Warning(str(e))
            lines.append(f"\n⚠️ **Missing weight file:** {e}")
        return "\n\n".join(lines)

    def upload_model(self, files: list[str] | None, name: str | None, progress: gr.Progress):
        """Validate and save an uploaded model; returns a message and the refreshed model list."""
        if not files:
            raise SvcError("drop the model's .pth file and its config.json into the box first")
        progress(0.2, desc="checking the model (loading it on the CPU)")
        saved = save_uploaded_model(self.checkpoints_dir, files, self._validate_upload, name)
        message = f"Saved model **{saved.name}** in `{saved}`. It is now in the model list."
        return message, self.refresh(saved.name), gr.update(value=None)

    def _validate_upload(self, folder: Path) -> None:
        describe_model_dir(folder)
        with self.manager.using("cpu"):
            self._load_session(folder, "cpu")

    # --- conversion ---------------------------------------------------------------------------

    def options(self, speaker: str | None, values: tuple) -> ConvertOptions:
        settings = dict(zip(SETTING_NAMES, values, strict=True))
        settings["seed"] = int(settings["seed"])
        settings["k_step"] = int(settings["k_step"])
        settings["diffusion_speedup"] = int(settings["diffusion_speedup"])
        if settings["diffusion_method"] in (CONFIG_SAMPLER, ""):
            settings["diffusion_method"] = None
        settings["cluster"] = None  # the model folder's file; never a path typed into the page
        settings["spk_mix"] = (settings.get("spk_mix") or "").strip() or None
        if settings["f0_method"] not in f0_predictor_names():
            raise OptionsError(f"unknown F0 predictor {settings['f0_method']!r}; choose one of "
                               f"{', '.join(f0_predictor_names())}")
        return ConvertOptions(speaker=speaker, **settings)

    def output_path(self, audio_path: str, speaker: str, transpose: float, fmt: str) -> Path:
        if fmt not in OUTPUT_FORMATS:
            raise OptionsError(f"output format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
        self._prune_outputs()
        folder = self.output_dir / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True)
        return folder / output_filename(Path(audio_path).stem, speaker, transpose, fmt)

    def _prune_outputs(self) -> None:
        limit = time.time() - DELETE_CACHE[1]
        for folder in self.output_dir.iterdir():
            if folder.stat().st_mtime < limit:
                for f in folder.iterdir():
                    f.unlink(missing_ok=True)
                folder.rmdir()

    def _convert_one(self, session, choice: LoadedChoice, audio_path: str, options: ConvertOptions, fmt: str,
                     report: Callable[[float, str], None]):
        """Run one conversion on the session's device; returns (output path, result, output F0 curve)."""
        out_path = self.output_path(audio_path, str(options.speaker), options.transpose, fmt)
        report(0.0, f"waiting for {choice.device}")
        with self.manager.using(choice.device):
            result = session.convert_file(audio_path, out_path, options, progress=report)
            report(1.0, "measuring the output's F0")
            output_curve = extract_f0_curve(
                result.audio, result.sampling_rate, options.f0_method, "output (re-extracted)",
                sampling_rate=session.sampling_rate, hop_length=session.hop_length, device=choice.device,
                threshold=options.cr_threshold, pretrain_dir=self.pretrain_dir, cache=self.f0_cache,
            )
        return out_path, result, output_curve

    def convert(self, *values):
        """Inputs: state, audio path, speaker, output format, SETTING_NAMES in order, then the progress."""
        choice, audio_path, speaker, fmt, *settings, progress = values
        if not audio_path:
            raise AudioError("add an input recording first (drop a file, pick one, or record)")
        session = self.session_for(choice)
        speaker = session.speaker_name(speaker)
        options = self.options(speaker, tuple(settings))
        session.check_weights(options)

        def report(fraction: float, text: str) -> None:
            progress(fraction, desc=text)

        out_path, result, output_curve = self._convert_one(session, choice, audio_path, options, fmt, report)
        curves = conversion_curves(result, options.transpose, options.auto_f0) + [output_curve]
        figure = plot_f0(curves, title=f"F0 — {speaker}, {options.transpose:+g} semitones")
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items() if v >= 0.005)
        info = (f"`{out_path.name}`: {result.duration:.2f} s at {result.sampling_rate} Hz, "
                f"{sum(c.is_speech for c in result.chunks)} voiced chunk(s). Time: {timings}")
        return str(out_path), figure, info

    def compare(self, *values):
        """Inputs: state, audio path, speakers, transposes text, output format, SETTING_NAMES, the progress."""
        choice, audio_path, speakers, transposes_text, fmt, *settings, progress = values
        if not audio_path:
            raise AudioError("add an input recording first (drop a file, pick one, or record)")
        session = self.session_for(choice)
        speakers = [session.speaker_name(s) for s in (speakers or [])]
        if not speakers:
            raise SvcError("tick at least one speaker to compare")
        transposes = parse_transposes(transposes_text)
        jobs = [(s, t) for s in speakers for t in transposes]
        if len(jobs) > MAX_COMPARE:
            raise SvcError(f"{len(jobs)} results asked for, at most {MAX_COMPARE}: pick fewer speakers or transposes")
        base = self.options(speakers[0], tuple(settings))
        session.check_weights(base)
        players = [gr.update(value=None, visible=False, label=f"result {i + 1}") for i in range(MAX_COMPARE)]
        curves: list[F0Curve] = []
        for index, (speaker, transpose) in enumerate(jobs):
            options = base.with_(speaker=speaker, transpose=transpose)
            label = f"{speaker} {transpose:+g}"

            def report(fraction: float, text: str, index=index, label=label) -> None:
                progress((index + fraction) / len(jobs), desc=f"result {index + 1}/{len(jobs)} ({label}): {text}")

            out_path, result, output_curve = self._convert_one(session, choice, audio_path, options, fmt, report)
            if not curves:
                curves.append(conversion_curves(result, 0.0, False)[0])
            curves.append(F0Curve(label, output_curve.times, output_curve.f0))
            players[index] = gr.update(value=str(out_path), visible=True, label=label)
        return *players, plot_f0(curves, title="F0 of each result (re-extracted from the output)")

    # --- timbre and model tools ----------------------------------------------------------------

    def timbre_controls(self, choice: LoadedChoice | None):
        """The loaded model's cluster / index file (shown) and one mix-editor row per speaker."""
        if choice is None:
            return "load a model first", gr.update(value=[["", 0.0, 0.0]])
        session = self.session_for(choice)
        found = find_timbre_file(Path(choice.model_dir))
        text = found.name if found else "none in the model folder (put kmeans_*.pt or feature_and_index.pkl there)"
        return text, gr.update(value=[[name, 0.0, 0.0] for name in session.speakers])

    def mix_from_table(self, rows) -> str:
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

    def merge_models(self, models: list[str] | None, weights: str, mode: str, name: str, progress: gr.Progress):
        """Merge checkpoints/ models into checkpoints/<name>; returns a message and the refreshed model list."""
        if not models or len(models) < 2:
            raise SvcError("pick at least two models to merge")
        name = (name or "").strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise OptionsError("name the merged model with letters, digits, '_', '-' or '.' (at most 64)")
        target = self.checkpoints_dir / name
        if target.exists():
            raise SvcError(f"a model folder '{name}' already exists; choose another name")
        paths = [self.model_path(m) for m in models]
        progress(0.2, desc="merging")
        try:
            written = merge(paths, parse_weights(weights or ""), target, mode)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return f"Merged into **{name}**: {describe(written)}", self.refresh(name)

    def analyze(self, audio: str | None, methods: list[str] | None, threshold: float, device: str | None,
                progress: gr.Progress):
        """The F0 of a recording by one or more predictors, overlaid (no model needed)."""
        if not audio:
            raise AudioError("add a recording to analyse first")
        if not methods:
            raise SvcError("tick at least one F0 predictor")
        unknown = [m for m in methods if m not in f0_predictor_names()]
        if unknown:
            raise OptionsError(f"unknown F0 predictor(s) {', '.join(unknown)}; choose from "
                               f"{', '.join(f0_predictor_names())}")
        wav, sr = read_audio(audio)
        wav = to_mono(wav)
        device_name = self.device_name(device)
        curves, failures = [], []
        for index, method in enumerate(methods):
            progress(index / len(methods), desc=f"{method} ({index + 1}/{len(methods)})")
            try:
                with self.manager.using(device_name):
                    style = LINE_STYLES[index % len(LINE_STYLES)]  # overlaid curves stay distinguishable
                    curves.append(extract_f0_curve(wav, sr, method, device=device_name, threshold=threshold,
                                                   pretrain_dir=self.pretrain_dir, cache=self.f0_cache, style=style))
            except SvcError as e:
                if len(methods) == 1:
                    raise
                failures.append(f"{method}: {e}")
                gr.Warning(f"{method}: {e}")
        if not curves:
            raise SvcError("no predictor could run: " + " ".join(failures))
        rows = ["| predictor | voiced | median | lowest | highest |", "|---|---|---|---|---|"]
        rows += [f"| {r.label} | {r.voiced_percent:.0f} % | {r.median_note} | {r.lowest_note} | {r.highest_note} |"
                 for r in summarize(curves)]
        rows += [f"\n⚠️ {f}" for f in failures]
        return plot_f0(curves, title=f"F0 of {Path(audio).name}"), "\n".join(rows)

    def banner_update(self):
        return gr.update(value=self.banner, visible=bool(self.banner))


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


def parse_transposes(text: str | float | None) -> list[float]:
    """'0, 12, -5' -> [0.0, 12.0, -5.0]; empty means [0]."""
    parts = [p for p in str(text if text is not None else "").replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts] or [0.0]
    except ValueError:
        raise OptionsError(f"transposes must be numbers separated by commas, like '0, 12', got {text!r}") from None
    for value in values:
        check_option("transpose", value)
    return list(dict.fromkeys(values))


def setting_component(name: str) -> gr.components.Component:
    """The input for one ConvertOptions field, labelled and defaulted from the dataclass."""
    field = next(f for f in fields(ConvertOptions) if f.name == name)
    default = field.default if field.default is not MISSING else None
    label = LABELS.get(name, name.replace("_", " ").capitalize())
    info = field.metadata.get("help", "")
    info = None if info.lower() == label.lower() else info
    elem_id = f"opt_{name}"
    if name == "f0_method":
        return gr.Dropdown(f0_predictor_choices(), value=default, label=label, info=info, elem_id=elem_id)
    if name == "diffusion_method":
        choices = [("as the diffusion model's config says", CONFIG_SAMPLER)] + [(m, m) for m in SAMPLERS]
        return gr.Dropdown(choices, value=CONFIG_SAMPLER, label=label, info=info, elem_id=elem_id)
    if isinstance(default, bool):
        return gr.Checkbox(value=default, label=label, info=info, elem_id=elem_id)
    if "range" in field.metadata:
        low, high = field.metadata["range"]
        return gr.Slider(low, high, value=default, step=field.metadata.get("step"), label=label, info=info,
                         elem_id=elem_id)
    return gr.Number(value=default, label=label, info=info, precision=0 if isinstance(default, int) else None,
                     elem_id=elem_id)


def build_demo(checkpoints_dir: str | Path = DEFAULT_CHECKPOINTS, pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
               device: str = "auto", app: WebApp | None = None, training_runs: str | Path | None = None) -> gr.Blocks:
    """The whole page, queued and ready to ``launch()``; ``training_runs`` adds the Train tab."""
    app = app or WebApp(Path(checkpoints_dir), Path(pretrain_dir), device)
    resolve_device(device)  # an unavailable --device is a clear error before the page starts
    with gr.Blocks(title="so-vits-svc", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        state = gr.State(None)
        banner = gr.Markdown(visible=False, elem_id="share_banner")
        gr.Markdown("## Singing voice conversion (so-vits-svc models)", elem_id="title")
        model_dd, device_dd, speaker_dd, compare_speakers, model_info = _model_panel(app, state)
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Convert", id="convert", elem_id="tab_convert"):
                convert_in, settings = _convert_tab(app, state, speaker_dd)
            with gr.Tab("Compare", id="compare", elem_id="tab_compare"):
                _compare_tab(app, state, compare_speakers, settings, convert_in)
            with gr.Tab("Analyze", id="analyze", elem_id="tab_analyze"):
                _analyze_tab(app, device_dd)
            with gr.Tab("Merge", id="merge", elem_id="tab_merge"):
                _merge_tab(app, model_dd)
            if training_runs is not None:
                _train_tab(app, Path(training_runs), model_dd)
        demo.load(app.banner_update, outputs=banner, api_visibility="private")
        demo.load(app.refresh, inputs=model_dd, outputs=model_dd, api_visibility="private")
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def _inference_limit() -> int:
    # One conversion at a time per device: the group admits one job per device, and the
    # manager's per-device lock keeps two jobs on the same device apart.
    return len({canonical_device(d) for d in device_choices()})


def _model_panel(app: WebApp, state: gr.State):
    with gr.Group(elem_id="model_panel"):
        with gr.Row(equal_height=True):
            model_dd = gr.Dropdown(app.model_choices(), value=None, label="Model", scale=5, elem_id="model_dd",
                                   info="folders under checkpoints/: name — version, encoder, speakers")
            refresh_btn = gr.Button("↻ Refresh", scale=0, min_width=90, elem_id="refresh_btn")
            device_dd = gr.Dropdown(device_choices(), value=app.default_device, label="Device", scale=1,
                                    elem_id="device_dd")
            load_btn = gr.Button("Load model", variant="primary", scale=1, elem_id="load_btn")
        model_info = gr.Markdown("No model loaded.", elem_id="model_info")
        with gr.Accordion("Add a model (drop its .pth and config.json)", open=False, elem_id="upload_panel"):
            upload_files = gr.File(file_count="multiple", file_types=[".pth", ".json"], type="filepath",
                                   label="Model files", elem_id="model_upload")
            with gr.Row():
                upload_name = gr.Textbox(label="Name (default: the .pth file's name)", elem_id="model_name", scale=3)
                upload_btn = gr.Button("Save model", elem_id="upload_btn", scale=1)
            upload_msg = gr.Markdown(elem_id="upload_msg")
    speaker_dd = gr.Dropdown([], label="Speaker", allow_custom_value=True, elem_id="speaker_dd", render=False)
    compare_speakers = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="Speakers",
                                   elem_id="compare_speakers", render=False)
    load_outputs = [state, model_info, speaker_dd, compare_speakers]
    load_kwargs = dict(concurrency_id=INFERENCE, concurrency_limit=_inference_limit())
    load = event_handler(app.load_model, "model", "device")
    load_btn.click(load, [model_dd, device_dd], load_outputs, api_name="load_model", **load_kwargs)
    model_dd.select(load, [model_dd, device_dd], load_outputs, api_visibility="private", **load_kwargs)
    device_dd.select(load, [model_dd, device_dd], load_outputs, api_visibility="private", **load_kwargs)
    refresh_btn.click(app.refresh, model_dd, model_dd, api_name="list_models")
    upload = event_handler(app.upload_model, "files", "name")
    upload_btn.click(upload, [upload_files, upload_name], [upload_msg, model_dd, upload_files],
                     api_name="upload_model")
    return model_dd, device_dd, speaker_dd, compare_speakers, model_info


def _convert_tab(app: WebApp, state: gr.State, speaker_dd: gr.Dropdown):
    with gr.Row():
        with gr.Column():
            audio_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Input (drop, pick or record)",
                                buttons=["download"], elem_id="audio_in")
            speaker_dd.render()
            settings = {name: setting_component(name) for name in MAIN_SETTINGS}
            settings.update(_timbre_section(app, state))
            with gr.Accordion("Advanced settings", open=False, elem_id="advanced"):
                for name in SETTING_NAMES:
                    if name not in settings:
                        settings[name] = setting_component(name)
            out_format = gr.Radio(list(OUTPUT_FORMATS), value="wav", label="Output format", elem_id="out_format")
            convert_btn = gr.Button("Convert", variant="primary", elem_id="convert_btn")
        with gr.Column():
            audio_out = gr.Audio(type="filepath", label="Output", interactive=False, buttons=["download"],
                                 elem_id="audio_out")
            f0_plot = gr.Plot(label="F0: input, target, output", elem_id="f0_plot")
            info = gr.Markdown(elem_id="convert_info")
    ordered = [settings[name] for name in SETTING_NAMES]
    handler = event_handler(app.convert, "loaded", "audio", "speaker", "output_format", *SETTING_NAMES)
    convert_btn.click(handler, [state, audio_in, speaker_dd, out_format, *ordered], [audio_out, f0_plot, info],
                      api_name="convert", concurrency_id=INFERENCE, concurrency_limit=_inference_limit())
    return audio_in, {"ordered": ordered, "format": out_format}


def _compare_tab(app: WebApp, state: gr.State, speakers: gr.Dropdown, settings: dict, convert_in: gr.Audio):
    gr.Markdown("Converts one recording with several speakers (and transposes) using the Convert tab's settings.")
    with gr.Row():
        with gr.Column():
            audio_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Input",
                                buttons=["download"], elem_id="compare_audio_in")
            speakers.render()
            transposes = gr.Textbox("0", label="Transposes (semitones, comma-separated)", elem_id="compare_transposes")
            shallow = gr.Checkbox(False, label=LABELS["shallow_diffusion"], elem_id="compare_shallow_diffusion",
                                  info="the same switch as in the Convert tab")
            compare_btn = gr.Button("Compare", variant="primary", elem_id="compare_btn")
        with gr.Column():
            plot = gr.Plot(label="F0 of each result", elem_id="compare_plot")
    with gr.Row(elem_id="compare_results"):
        players = [gr.Audio(type="filepath", interactive=False, visible=False, buttons=["download"],
                            elem_id=f"compare_out_{i}", min_width=200) for i in range(MAX_COMPARE)]
    handler = event_handler(app.compare, "loaded", "audio", "speakers", "transposes", "output_format", *SETTING_NAMES)
    compare_btn.click(handler, [state, audio_in, speakers, transposes, settings["format"], *settings["ordered"]],
                      [*players, plot], api_name="compare", concurrency_id=INFERENCE,
                      concurrency_limit=_inference_limit())
    # One setting, two switches: each follows the other when the user flips it.
    convert_shallow = settings["ordered"][SETTING_NAMES.index("shallow_diffusion")]
    shallow.input(lambda value: value, shallow, convert_shallow, api_visibility="private", queue=False)
    convert_shallow.input(lambda value: value, convert_shallow, shallow, api_visibility="private", queue=False)
    # The Convert tab's recording is the natural default here.
    convert_in.change(lambda path: path, convert_in, audio_in, api_visibility="private", queue=False)


def _timbre_section(app: WebApp, state: gr.State) -> dict[str, gr.components.Component]:
    """Cluster / index ratio and the speaker-mix editor: the ``cluster``, ``cluster_ratio`` and
    ``spk_mix`` settings (the API takes spk_mix as JSON text; the editor writes it)."""
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
    state.change(event_handler(app.timbre_controls, "loaded"), state, [cluster, table], api_visibility="private")
    use_btn.click(shows_errors(app.mix_from_table), table, spk_mix, api_name="mix_from_table")
    clear_btn.click(lambda: "", None, spk_mix, api_visibility="private", queue=False)
    return {"cluster": cluster, "cluster_ratio": ratio, "spk_mix": spk_mix}


def _merge_tab(app: WebApp, model_dd: gr.Dropdown):
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
    handler = event_handler(app.merge_models, "models", "weights", "mode", "name")
    merge_btn.click(handler, [models, weights, mode, name], [message, model_dd], api_name="merge_models",
                    concurrency_id=INFERENCE, concurrency_limit=_inference_limit())


def _analyze_tab(app: WebApp, device_dd: gr.Dropdown):
    gr.Markdown("The pitch of any recording, by one or more F0 predictors; no model needed.")
    with gr.Row():
        with gr.Column():
            audio_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Recording",
                                buttons=["download"], elem_id="analyze_audio_in")
            methods = gr.CheckboxGroup(f0_predictor_choices(), value=["pm", "harvest"], label="F0 predictors",
                                       elem_id="analyze_methods")
            threshold = setting_component("cr_threshold")
            analyze_btn = gr.Button("Analyze", variant="primary", elem_id="analyze_btn")
        with gr.Column():
            plot = gr.Plot(label="F0", elem_id="analyze_plot")
            table = gr.Markdown(elem_id="analyze_info")
    analyze = event_handler(app.analyze, "audio", "methods", "threshold", "device")
    analyze_btn.click(analyze, [audio_in, methods, threshold, device_dd], [plot, table], api_name="analyze",
                      concurrency_id=INFERENCE, concurrency_limit=_inference_limit())


def _train_tab(app: WebApp, runs_dir: Path, model_dd: gr.Dropdown) -> None:
    from svc.train.jobs import TrainingJobs
    from webui_train import train_tab

    with gr.Tab("Train", id="train", elem_id="tab_train"):
        jobs = TrainingJobs(runs_dir, app.checkpoints_dir, app.pretrain_dir)
        train_tab(jobs, device_choices(), model_dd, app.refresh)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="so-vits-svc web UI")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the whole network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also make a temporary public link (needs internet)")
    parser.add_argument("--device", default="auto", help="default device: auto, cpu, cuda or mps")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS, help="folder of model folders")
    parser.add_argument("--pretrain", type=Path, default=DEFAULT_PRETRAIN_DIR, help="folder of pretrained weights")
    parser.add_argument("--max-models", type=int, default=2, help="models kept loaded at once (default 2)")
    parser.add_argument("--enable-training", action="store_true", help="show the Train tab (trains on this server)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of training runs (default runs/)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per internal request otherwise
    try:
        app = WebApp(args.checkpoints, args.pretrain, args.device, args.max_models)
        demo = build_demo(device=args.device, app=app, training_runs=args.runs if args.enable_training else None)
    except SvcError as e:
        raise SystemExit(f"error: {e}") from None
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True,
                css=CSS, footer_links=["api", "settings"])
    if args.share and not demo.share_url:
        app.banner = ("**No public link could be made** (no internet connection, or the share server is "
                      "unreachable). The page is still served locally.")
        log.warning("No share link could be created; still serving locally at %s", demo.local_url)
    elif demo.share_url:
        app.banner = f"Public link (valid for a limited time): {demo.share_url}"
    try:
        demo.block_thread()
    finally:
        shutil.rmtree(app.output_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
