"""The web UI (Gradio 6): one module per part of the page, ``page.build_demo`` puts them together.

``webui.py`` at the repository root is the launcher.  Every handler is a plain function over a
``WebApp`` (folders, loaded models, the per-device job queue), so what the page does the Python
API can do too.
"""

from .app import DELETE_CACHE, OUTPUT_FORMATS, LoadedChoice, WebApp
from .common import SETTING_NAMES, parse_transposes, shows_errors
from .compare_tab import MAX_COMPARE
from .page import CSS, QUEUE_SIZE, build_demo

__all__ = ["CSS", "DELETE_CACHE", "MAX_COMPARE", "OUTPUT_FORMATS", "QUEUE_SIZE", "SETTING_NAMES", "LoadedChoice",
           "WebApp", "build_demo", "parse_transposes", "shows_errors"]
