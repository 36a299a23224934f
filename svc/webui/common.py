"""What every part of the page shares: error display, handler signatures, devices, settings widgets."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import MISSING, fields

import gradio as gr
import torch

from ..device import resolve_device
from ..diffusion import SAMPLERS
from ..errors import OptionsError, SvcError, WeightFileError
from ..f0 import F0_PREDICTORS
from ..options import ConvertOptions, check_option
from ..progress import Cancelled

log = logging.getLogger("svc.webui")

OOM_MESSAGE = (
    "Out of memory. Try a shorter recording, set 'Clip seconds' (Advanced settings) to about 15, "
    "or choose the CPU as device."
)
TOAST_SECONDS = 12  # how long a toast the user need not act on stays up

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
INTEGER_SETTINGS = tuple(f.name for f in fields(ConvertOptions)
                         if isinstance(f.default, int) and not isinstance(f.default, bool))


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
    """One name per physical device ('cuda' and 'cuda:0' are the same GPU), for queues and caches."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def user_error(e: BaseException, where: str) -> gr.Error:
    """The page's message for a failure: one line in the server log for the user's own mistakes
    (a traceback only for bugs), a toast that stays up when the user must act on it."""
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, Cancelled):
        return gr.Error(f"Cancelled ({e}).", title="Cancelled", duration=TOAST_SECONDS, print_exception=False)
    if isinstance(e, SvcError):
        log.info("%s: %s", where, e)
        # A missing weight file or a bad setting needs the user; the rest is read and gone.
        sticky = isinstance(e, (WeightFileError, OptionsError))
        return gr.Error(str(e), duration=None if sticky else 3 * TOAST_SECONDS, print_exception=False)
    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        log.warning("%s: out of memory", where)
        return gr.Error(OOM_MESSAGE, duration=None, print_exception=False)
    log.exception("unexpected error in %s", where)
    return gr.Error(f"Unexpected error ({type(e).__name__}: {e}). The server log has the details.", duration=None,
                    print_exception=False)


def shows_errors(fn: Callable) -> Callable:
    """Turn every failure of a handler into a visible ``gr.Error`` (never a traceback or a stuck spinner)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise user_error(e, fn.__name__) from None
    return wrapper


def event_handler(method: Callable, *names: str, visitor: bool = False) -> Callable:
    """``method(*inputs, [visitor,] progress)`` as a Gradio handler: errors shown, inputs named.

    Gradio reads the parameter names for the API page, finds ``gr.Progress`` by its default and
    ``gr.Request`` by its annotation; the conversion settings' names come from ``ConvertOptions``,
    so handlers take them as ``*values`` and this signature names them.  With ``visitor`` the
    method gets the browser session's id (``gr.Request.session_hash``) before the progress.
    """
    def handler(*args):
        *inputs, request, progress = args if visitor else (*args[:-1], None, args[-1])
        if visitor:
            inputs.append(visitor_id(request))
        return method(*inputs, progress)

    # The method's own name for the log ('load_model'), also through functools.partial.
    handler.__name__ = getattr(getattr(method, "func", method), "__name__", "handler")

    fn = shows_errors(handler)
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(name, kind) for name in names]
    if visitor:
        params.append(inspect.Parameter("request", kind, annotation=gr.Request))
    params.append(inspect.Parameter("progress", kind, default=gr.Progress()))
    fn.__signature__ = inspect.Signature(params)
    fn.__annotations__ = {"request": gr.Request} if visitor else {}
    return fn


def visitor_id(request: gr.Request | None) -> str:
    """Who is asking: the browser session (one per open page); API calls without one share ''."""
    return getattr(request, "session_hash", None) or ""


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
    # No precision: Gradio would round 1.5 to 1 without a word; whole numbers are checked instead.
    return gr.Number(value=default, label=label, info=info, elem_id=elem_id)


def settings_from_values(values: tuple) -> dict:
    """The page's setting values as ``ConvertOptions`` keyword arguments (speaker excluded).

    A value the page cannot hold exactly is refused, never silently rounded or clamped.
    """
    settings = dict(zip(SETTING_NAMES, values, strict=True))
    for name in INTEGER_SETTINGS:
        value = settings[name]
        if value is None or float(value) != int(float(value)):
            raise OptionsError(f"{LABELS.get(name, name.replace('_', ' '))} must be a whole number, got {value}")
        settings[name] = int(float(value))
    if settings["diffusion_method"] in (CONFIG_SAMPLER, ""):
        settings["diffusion_method"] = None
    settings["cluster"] = None  # the model folder's file; never a path typed into the page
    settings["spk_mix"] = (settings.get("spk_mix") or "").strip() or None
    if settings["f0_method"] not in f0_predictor_names():
        raise OptionsError(f"unknown F0 predictor {settings['f0_method']!r}; choose one of "
                           f"{', '.join(f0_predictor_names())}")
    return settings


def changed_settings(options: ConvertOptions) -> str:
    """The settings that differ from the defaults, as the page shows them ('transpose +48, ...')."""
    default = ConvertOptions()
    parts = []
    for f in fields(ConvertOptions):
        value = getattr(options, f.name)
        if f.name in ("speaker", "cluster") or value == getattr(default, f.name):
            continue
        shown = f"{value:+g}" if f.name == "transpose" else value
        parts.append(f"{LABELS.get(f.name, f.name.replace('_', ' '))} {shown}")
    return ", ".join(parts) or "defaults"
