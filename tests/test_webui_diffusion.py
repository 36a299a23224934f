"""The web UI's shallow diffusion: the model panel names the diffusion model, the switch and its settings
work through the HTTP API and in the browser."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from conftest import FAST_41, SPEAKERS, sung_note  # noqa: E402
from diffusion_fixtures import build_diffusion_env  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from model_fixtures import make_checkpoint  # noqa: E402
from test_webui_api import DEFAULT_SETTINGS, free_port  # noqa: E402

import webui  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("webui_diffusion")
    pretrain, checkpoints = build_diffusion_env(root)
    make_checkpoint(checkpoints / "plain", "4.1", speakers=SPEAKERS, **FAST_41)  # no diffusion/ folder
    demo = webui.build_demo(device="cpu", app=webui.WebApp(checkpoints, pretrain, "cpu", output_dir=root / "out"))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                css=webui.CSS)
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    sf.write(path, sung_note(0.8, 44100, 220.0, 4), 44100)
    return path


def convert(client: Client, audio: Path, **settings):
    values = dict(zip(webui.SETTING_NAMES, DEFAULT_SETTINGS, strict=True)) | settings
    return client.predict(handle_file(str(audio)), "bob", "wav", *values.values(), api_name="/convert")


def test_the_model_panel_names_the_diffusion_model(server):
    client = Client(server, verbose=False)
    labels = dict((value, label) for label, value in client.predict(None, api_name="/list_models")["choices"])
    assert labels["tiny41"].endswith(", diffusion") and not labels["plain"].endswith(", diffusion")
    facts, _, _ = client.predict("tiny41", "cpu", api_name="/load_model")
    assert "Diffusion model: `diffusion/model_100.pt`" in facts and "dpm-solver++" in facts
    facts, _, _ = client.predict("plain", "cpu", api_name="/load_model")
    assert "No diffusion model" in facts and "checkpoints/<model>/diffusion/" in facts


def test_shallow_diffusion_switch_with_k_step_and_sampler(server, song):
    client = Client(server, verbose=False)
    client.predict("tiny41", "cpu", api_name="/load_model")
    plain, _, _ = convert(client, song)
    shallow, _, info = convert(client, song, shallow_diffusion=True, k_step=30, diffusion_method="ddim")
    default_sampler, _, _ = convert(client, song, shallow_diffusion=True, k_step=30, diffusion_method="config")
    a, b, c = (sf.read(p)[0] for p in (plain, shallow, default_sampler))
    assert len(a) == len(b) == len(c) and np.abs(a - b).max() > 1e-3 and np.abs(b - c).max() > 1e-4
    assert "diffusion" in info
    *players, _ = client.predict(handle_file(str(song)), ["alice", "bob"], "0", "wav",
                                 *(dict(zip(webui.SETTING_NAMES, DEFAULT_SETTINGS, strict=True))
                                   | {"shallow_diffusion": True, "k_step": 20}).values(), api_name="/compare")
    assert sum(bool(p.get("visible")) for p in players) == 2


def test_without_a_diffusion_model_the_switch_says_what_to_do(server, song):
    client = Client(server, verbose=False)
    client.predict("plain", "cpu", api_name="/load_model")
    with pytest.raises(AppError, match="no diffusion model is loaded.*diffusion/"):
        convert(client, song, shallow_diffusion=True)
    client.predict("tiny41", "cpu", api_name="/load_model")
    with pytest.raises(AppError, match="at least 2 steps"):
        convert(client, song, shallow_diffusion=True, k_step=10)


CHROMIUM = Path(os.environ.get("SVC_CHROMIUM", "/usr/bin/chromium"))


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM}")
def test_the_switch_in_the_browser(server, song):
    playwright_api = pytest.importorskip("playwright.sync_api")
    from test_webui_browser import CHROMIUM_ARGS

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(120_000)  # generous: the page is slow to start on a loaded 2-CPU machine
        page.goto(server)
        page.wait_for_selector("#convert_btn", timeout=180_000)
        page.locator("#model_dd input").click()
        page.get_by_role("option", name="tiny41").click()
        page.wait_for_selector("#model_info :text('Diffusion model')")
        switch = page.locator("#opt_shallow_diffusion input")
        switch.check()
        page.locator("#advanced").click()  # k-step and sampler live under Advanced
        page.locator("#opt_k_step").wait_for(state="visible")  # the accordion opens asynchronously
        page.locator("#opt_diffusion_method").wait_for(state="visible")
        page.locator("#audio_in input[type=file]").set_input_files(str(song))
        page.locator("#convert_btn").click()
        page.wait_for_selector("#convert_info :text('diffusion')", timeout=120_000)
        page.get_by_role("tab", name="Compare").click()
        assert page.locator("#compare_shallow_diffusion input").is_checked()  # follows the Convert tab's switch
        browser.close()
