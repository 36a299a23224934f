"""Web UI: ``python webui.py [--host 127.0.0.1] [--port 7860] [--share] [--device auto] [--checkpoints DIR]``.

The launcher: the page itself is ``svc.webui`` (one module per part of the page, every handler a
plain function over ``svc.webui.WebApp``).  Names tests and scripts import stay available here.
"""

from __future__ import annotations

import os
import tempfile

# Before gradio / huggingface_hub are imported: no telemetry, no version checks, no calls home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if __name__ == "__main__" and not os.environ.get("GRADIO_TEMP_DIR"):
    # Uploads go to a folder of this server's own, removed when it stops (Gradio reads the
    # variable when it is imported).
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="svc-webui-uploads-")
    _OWN_UPLOADS = os.environ["GRADIO_TEMP_DIR"]
else:
    _OWN_UPLOADS = None

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402

from svc.errors import SvcError  # noqa: E402
from svc.webui import (  # noqa: E402, F401  (re-exported for scripts and tests)
    CSS,
    MAX_COMPARE,
    SETTING_NAMES,
    WebApp,
    build_demo,
    parse_transposes,
    shows_errors,
)
from svc.webui.app import DEFAULT_MAX_INPUT_MINUTES  # noqa: E402
from svc.weights import DEFAULT_PRETRAIN_DIR  # noqa: E402

log = logging.getLogger("svc.webui")

ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINTS = ROOT / "checkpoints"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="so-vits-svc web UI")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the whole network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also make a temporary public link (needs internet)")
    parser.add_argument("--device", default="auto", help="default device: auto, cpu, cuda or mps")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS, help="folder of model folders")
    parser.add_argument("--pretrain", type=Path, default=DEFAULT_PRETRAIN_DIR, help="folder of pretrained weights")
    parser.add_argument("--max-models", type=int, default=2, help="models kept loaded at once (default 2)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="conversion precision: fp32 (default); bf16 (CPUs with AVX512-BF16/AMX, GPUs; "
                             "on AMX about 2.7x faster end to end) or fp16 (GPUs)")
    parser.add_argument("--allow-weight-uploads", action="store_true",
                        help="show the Weights panel: visitors may add encoder / rmvpe / NSF-HiFiGAN files "
                             "to --pretrain (each is checked before it is stored)")
    parser.add_argument("--max-input-minutes", type=float, default=DEFAULT_MAX_INPUT_MINUTES,
                        help=f"longest recording accepted (default {DEFAULT_MAX_INPUT_MINUTES:g}; 0 = no limit)")
    parser.add_argument("--enable-training", action="store_true", help="show the Train tab (trains on this server)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of training runs (default runs/)")
    return parser


def _stop_on_signals() -> None:
    """SIGTERM (and SIGHUP) end the server like Ctrl-C does, so the clean-up below runs."""
    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per internal request otherwise
    app = None
    try:
        app = WebApp(args.checkpoints, args.pretrain, args.device, args.max_models,
                     allow_weight_uploads=args.allow_weight_uploads, max_input_minutes=args.max_input_minutes,
                     precision=args.precision)
        demo = build_demo(device=args.device, app=app, training_runs=args.runs if args.enable_training else None)
    except SvcError as e:
        _clean_up(app)
        raise SystemExit(f"error: {e}") from None
    _stop_on_signals()
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, prevent_thread_lock=True,
                    css=CSS, footer_links=["api", "settings"])
        if args.share and not demo.share_url:
            app.banner = ("**No public link could be made** (no internet connection, or the share server is "
                          "unreachable). The page is still served locally.")
            log.warning("No share link could be created; still serving locally at %s", demo.local_url)
        elif demo.share_url:
            app.banner = f"Public link (valid for a limited time): {demo.share_url}"
        demo.block_thread()
    except KeyboardInterrupt as e:
        log.info("stopping (%s)", e or "interrupted")
    finally:
        try:
            demo.close()
        finally:
            _clean_up(app)


def _clean_up(app: WebApp | None) -> None:
    """Remove this server's temporary folders: outputs, and uploads if the folder is its own."""
    if app is not None:
        app.close()
    if _OWN_UPLOADS:
        shutil.rmtree(_OWN_UPLOADS, ignore_errors=True)


if __name__ == "__main__":
    main()
