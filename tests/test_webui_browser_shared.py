"""The shared web page in headless Chromium, as several visitors would use it (issue 13):
a fresh server's first screen leads to a conversion (adding the encoder file from the browser),
one visitor's long conversion blocks nobody, Cancel and closing the tab stop it.

Screenshots go to ``test-artifacts/`` (the README's first-screen picture comes from here).
"""

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from test_webui_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, pick  # noqa: E402
from test_webui_shared import running_job  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")

import webui  # noqa: E402

ENCODER = "checkpoint_best_legacy_500.pt"


@pytest.fixture(scope="module")
def site(tmp_path_factory, pretrain_dir):
    """A fresh server: two models, every weight file but the speech encoder, weight uploads allowed."""
    import soundfile as sf
    from conftest import FAST_41, sung_note
    from model_fixtures import make_checkpoint
    from test_webui_api import free_port
    from test_webui_shared import long_song

    root = tmp_path_factory.mktemp("shared-browser")
    make_checkpoint(root / "checkpoints" / "choir", speakers=("alto", "tenor"), **FAST_41)
    make_checkpoint(root / "checkpoints" / "another", speakers=("one",), **FAST_41)
    pretrain = root / "pretrain"
    pretrain.mkdir()
    for path in pretrain_dir.iterdir():
        if path.name != ENCODER:
            (pretrain / path.name).symlink_to(path)
    app = webui.WebApp(root / "checkpoints", pretrain, "cpu", output_dir=root / "out", allow_weight_uploads=True)
    demo = webui.build_demo(device="cpu", app=app)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                css=webui.CSS)
    short = root / "short take.wav"
    sf.write(short, sung_note(1.0, 22050), 22050)
    yield {"url": demo.local_url, "app": app, "encoder": pretrain_dir / ENCODER, "short": short,
           "song": long_song(root / "long song.wav"), "out": root / "out"}
    demo.close()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def visit(browser, url: str):
    """A new visitor: its own browser context, so its own session."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#convert_btn")
    return page


def start_long_conversion(page, site):
    pick(page, "model_dd", "choir")
    page.wait_for_function("document.querySelector('#model_info').innerText.includes('loaded on')")
    page.locator("#audio_in input[type=file]").set_input_files(str(site["song"]))
    page.locator('#audio_in [data-testid="download-link"]').first.wait_for()
    page.locator("#convert_btn").click()
    return running_job(site["app"])


def test_a_fresh_servers_first_screen_leads_to_a_conversion(browser, site):
    page = visit(browser, site["url"])
    info = page.locator("#model_info").inner_text()
    assert "Choose a model" in info and ENCODER in info and "Weights" in info
    assert page.locator("#model_dd input").input_value() == ""  # nothing looks loaded
    page.wait_for_timeout(500)  # let the page settle before the README's picture
    page.screenshot(path=str(ARTIFACTS / "webui-first-screen.png"), full_page=True)
    # The encoder file is added from the browser, checked, and stored.
    page.locator("#weight_upload input[type=file]").set_input_files(str(site["encoder"]))
    page.locator("#weight_upload_btn").click()
    page.locator("#weight_msg").get_by_text("Stored").wait_for()
    assert (site["app"].pretrain_dir / ENCODER).is_file()
    page.wait_for_function(f"!document.querySelector('#model_info').innerText.includes('{ENCODER}')")
    pick(page, "model_dd", "choir")
    page.wait_for_function("document.querySelector('#model_info').innerText.includes('loaded on')")
    assert "Missing weight file" not in page.locator("#model_info").inner_text()
    page.locator("#audio_in input[type=file]").set_input_files(str(site["short"]))
    page.locator("#convert_btn").click()
    page.wait_for_selector('#audio_out a[data-testid="download-link"]')
    assert "alto" in page.locator("#convert_info").inner_text()
    page.context.close()


def test_one_visitors_long_song_blocks_nobody_and_cancel_stops_it(browser, site):
    app = site["app"]
    alice, bob = visit(browser, site["url"]), visit(browser, site["url"])
    before = sorted(site["out"].rglob("*.wav"))
    job = start_long_conversion(alice, site)
    # Bob analyses a recording and loads another model while Alice's song converts.
    bob.get_by_role("tab", name="Analyze").click()
    bob.locator("#analyze_audio_in input[type=file]").set_input_files(str(site["short"]))
    bob.locator("#analyze_btn").click()
    bob.locator("#analyze_info").get_by_text("pm").first.wait_for()
    pick(bob, "model_dd", "another")
    bob.wait_for_function("document.querySelector('#model_info').innerText.includes('loaded on')")
    assert "another" in bob.locator("#model_info").inner_text()
    assert job in app.scheduler.jobs() and job.fraction < 1.0  # Alice's job is still running
    bob.screenshot(path=str(ARTIFACTS / "webui-while-another-converts.png"), full_page=True)
    # Alice cancels: the job stops within the piece it is working on; nothing is written.
    at_cancel = job.fraction
    alice.locator("#cancel_btn").click()
    alice.wait_for_function("document.querySelector('#convert_info').innerText.includes('Cancelled')")
    assert job.fraction - at_cancel < 0.15  # one of the song's ten phrases at most
    assert app.scheduler.jobs() == []
    assert sorted(site["out"].rglob("*.wav")) == before
    alice.context.close()
    bob.context.close()


def test_closing_the_tab_cancels_its_conversion(browser, site):
    app = site["app"]
    page = visit(browser, site["url"])
    before = sorted(site["out"].rglob("*.wav"))
    job = start_long_conversion(page, site)
    page.context.close()
    deadline = time.monotonic() + 30
    while app.scheduler.jobs():
        assert time.monotonic() < deadline, "the closed tab's job is still running"
        time.sleep(0.1)
    assert job.token.cancelled and job.token.reason == "the page was closed"
    assert sorted(site["out"].rglob("*.wav")) == before


def test_bad_drops_are_refused_at_once_and_clamped_values_are_shown(browser, site, tmp_path):
    if not (site["app"].pretrain_dir / ENCODER).exists():  # when run alone
        shutil.copy(site["encoder"], site["app"].pretrain_dir / ENCODER)
    page = visit(browser, site["url"])
    fake = tmp_path / "my song.wav"
    fake.write_text("these are words, not sound")
    page.locator("#audio_in input[type=file]").set_input_files(str(fake))
    toast = page.locator(".toast-body").filter(has_text="'my song.wav' is not an audio file")
    toast.wait_for()
    assert str(tmp_path) not in toast.inner_text()
    page.locator('#audio_in [data-testid="upload-text"]').wait_for()  # the bad file was taken out again
    pick(page, "model_dd", "choir")
    page.wait_for_function("document.querySelector('#model_info').innerText.includes('loaded on')")
    page.locator("#audio_in input[type=file]").set_input_files(str(site["short"]))
    page.locator('#audio_in [data-testid="download-link"]').first.wait_for()
    box = page.locator("#opt_transpose input[type=number]")
    box.fill("99")
    box.press("Enter")
    page.locator("#convert_btn").click()
    # The page's number box shows the clamped value at once, and the result says what was used.
    page.wait_for_function("document.querySelector('#convert_info').innerText.includes('Settings')")
    assert box.input_value() == "48"
    assert "transpose +48" in page.locator("#convert_info").inner_text()
    page.context.close()
