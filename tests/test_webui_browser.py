"""The web page in headless Chromium (Playwright): upload, convert, compare, as a user would.

Screenshots go to ``test-artifacts/``.
"""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

CHROMIUM = Path(os.environ.get("SVC_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    # Chromium's own background lookups go nowhere; only the app on 127.0.0.1 is reachable.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")

from test_webui_api import SPEAKERS, free_port, sung  # noqa: E402, F401  (sung is a fixture)

import webui  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory, pretrain_dir):
    from conftest import FAST_41
    from model_fixtures import make_checkpoint
    from sovits3_fixtures import make_sovits3_checkpoint

    root = tmp_path_factory.mktemp("browser")
    checkpoints, pretrain = root / "checkpoints", pretrain_dir
    make_checkpoint(checkpoints / "choir", speakers=tuple(SPEAKERS), **FAST_41)
    make_checkpoint(checkpoints / "another", speakers=("one",), **FAST_41)
    pretrain = _with_hubert_soft(pretrain_dir, root / "pretrain")
    make_sovits3_checkpoint(checkpoints / "sovits3", 48000, optimizer=False)
    demo = webui.build_demo(device="cpu", app=webui.WebApp(checkpoints, pretrain, "cpu", output_dir=root / "out"))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                css=webui.CSS)
    yield demo.local_url
    demo.close()


def _with_hubert_soft(pretrain_dir: Path, folder: Path) -> Path:
    """``pretrain_dir``'s files plus a test HuBERT-soft (for the 3.0 model)."""
    from sovits3_fixtures import write_test_hubert_soft

    folder.mkdir()
    for path in pretrain_dir.iterdir():
        (folder / path.name).symlink_to(path)
    write_test_hubert_soft(folder / "hubert-soft-0d54a1f4.pt")
    return folder


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["microphone"])
        page = context.new_page()
        page.requested_urls = []  # every request the page makes, for the offline check
        page.on("request", lambda request: page.requested_urls.append(request.url))
        page.set_default_timeout(60_000)
        page.goto(server)
        page.wait_for_selector("#convert_btn")
        yield page
        browser.close()


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"#{dropdown} input").click()
    page.get_by_role("option", name=option).click()


def test_errors_are_shown_in_the_page(page):
    # The first screen says what to do; nothing looks loaded that is not.
    assert "Choose a model" in page.locator("#model_info").inner_text()
    assert page.locator("#model_dd input").input_value() == ""
    page.locator("#convert_btn").click()  # nothing uploaded, no model loaded: the model comes first
    page.locator(".toast-body").filter(has_text="load a model first").wait_for()
    page.screenshot(path=str(ARTIFACTS / "webui-error.png"), full_page=True)
    page.locator(".toast-body button").first.click()


def test_convert_in_the_browser(page, sung):  # noqa: F811
    pick(page, "model_dd", "choir")
    page.wait_for_function("document.querySelector('#model_info').innerText.includes('loaded on')")
    assert "Speakers (3)" in page.locator("#model_info").inner_text()
    page.locator("#audio_in input[type=file]").set_input_files(str(sung))
    pick(page, "speaker_dd", "tenor")
    page.locator("#opt_transpose input[type=number]").fill("2")
    page.locator("#convert_btn").click()
    page.wait_for_selector('#audio_out a[data-testid="download-link"]')
    page.wait_for_selector("#f0_plot img")
    assert "tenor" in page.locator("#convert_info").inner_text()
    page.screenshot(path=str(ARTIFACTS / "webui-convert.png"), full_page=True)


def test_compare_three_speakers_in_the_browser(page):
    page.get_by_role("tab", name="Compare").click()
    # The Convert tab's recording is carried over as the comparison's input.
    page.locator('#compare_audio_in [data-testid="waveform-Input"]').first.wait_for()
    for speaker in SPEAKERS:  # loading the model ticked up to three speakers already
        assert page.locator("#compare_speakers").get_by_text(speaker).count() >= 1
    page.locator("#compare_btn").click()
    for i in range(len(SPEAKERS)):
        page.wait_for_selector(f'#compare_out_{i} a[data-testid="download-link"]')
    page.wait_for_selector("#compare_plot img")
    assert page.locator("#compare_out_3").is_hidden()
    page.screenshot(path=str(ARTIFACTS / "webui-compare.png"), full_page=True)


def test_record_from_the_microphone_and_convert(page):
    """Chromium's fake microphone (a beeping tone) stands in for a singer."""
    page.get_by_role("tab", name="Convert").click()
    page.locator("#audio_in button[aria-label='Clear']").first.click()
    page.locator("#audio_in button[aria-label='Record audio']").click()
    page.locator("#audio_in button.record-button").click()
    page.wait_for_timeout(1500)
    page.locator("#audio_in button.stop-button").first.click()
    page.locator('#audio_in [data-testid="download-link"]').wait_for()
    page.locator("#convert_btn").click()
    page.wait_for_function("!document.querySelector('#convert_info').innerText.includes('sung')")
    page.wait_for_selector('#audio_out a[data-testid="download-link"]')
    assert "tenor" in page.locator("#convert_info").inner_text()
    page.screenshot(path=str(ARTIFACTS / "webui-microphone.png"), full_page=True)


def test_add_a_model_by_dropping_its_files(page, tmp_path):
    from model_fixtures import make_checkpoint

    source = make_checkpoint(tmp_path / "new", speakers=("soprano",))
    page.locator("#upload_panel").get_by_text("Add a model").click()
    page.locator("#model_upload input[type=file]").set_input_files([str(p) for p in sorted(source.iterdir())])
    page.locator("#model_name input, #model_name textarea").first.fill("dropped-voice")
    page.locator("#upload_btn").click()
    page.locator("#upload_msg").get_by_text("Saved model").wait_for()
    pick(page, "model_dd", "dropped-voice")
    page.wait_for_function("document.querySelector('#model_info').innerText.includes('soprano')")
    page.screenshot(path=str(ARTIFACTS / "webui-upload.png"), full_page=True)


def test_convert_with_a_30_model_in_the_browser(page):
    page.get_by_role("tab", name="Convert").click()
    pick(page, "model_dd", "sovits3 — so-vits-svc 3.0 (48 kHz)")
    page.wait_for_function("document.querySelector('#model_info').innerText.includes('so-vits-svc 3.0 (48 kHz)')")
    # the 3.0 model's own noise scale (1) replaces the page's 4.x default (0.4)
    page.wait_for_function("document.querySelector('#opt_noise_scale input[type=number]').value === '1'")
    pick(page, "speaker_dd", "paimon")
    page.locator("#convert_btn").click()
    page.wait_for_function("document.querySelector('#convert_info').innerText.includes('paimon')")
    page.wait_for_selector('#audio_out a[data-testid="download-link"]')
    page.screenshot(path=str(ARTIFACTS / "webui-convert-sovits3.png"), full_page=True)


def test_the_page_calls_nothing_but_the_app(page, server):
    from urllib.parse import urlsplit

    app_host = urlsplit(server).netloc
    elsewhere = {url for url in page.requested_urls
                 if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != app_host}
    assert len(page.requested_urls) > 10
    assert elsewhere == set()
