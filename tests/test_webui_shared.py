"""The web UI shared by several visitors: nobody waits for someone else's conversion unless they
must, every job can be cancelled, mistakes get one clear message (issue 13).  Through the HTTP API
(gradio_client); the browser side is in test_webui_browser_shared.py."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from conftest import FAST_41, sung_note  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from model_fixtures import make_checkpoint  # noqa: E402

import webui  # noqa: E402
from svc.errors import OptionsError  # noqa: E402
from svc.options import ConvertOptions  # noqa: E402
from svc.webui.model_panel import landing_text  # noqa: E402

DEFAULTS = {f.name: f.default for f in fields(ConvertOptions) if f.name in webui.SETTING_NAMES}
ROOT = Path(__file__).resolve().parent.parent


def long_song(path: Path, phrases: int = 10, sr: int = 22050) -> Path:
    """``phrases`` sung phrases of 3 s, each followed by 1 s of silence: as many chunks."""
    parts = []
    for i in range(phrases):
        parts += [sung_note(3.0, sr, 196.0 * 2 ** ((i % 5) / 12), seed=i), np.zeros(sr, np.float32)]
    sf.write(path, np.concatenate(parts), sr)
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory, pretrain_dir):
    from test_webui_api import free_port

    root = tmp_path_factory.mktemp("shared")
    make_checkpoint(root / "checkpoints" / "trio", speakers=("alto", "bass", "tenor"), **FAST_41)
    make_checkpoint(root / "checkpoints" / "solo", speakers=("solo",), **FAST_41)
    app = webui.WebApp(root / "checkpoints", pretrain_dir, "cpu", output_dir=root / "out")
    demo = webui.build_demo(device="cpu", app=app)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    song = long_song(root / "long song.wav")
    short = root / "short.wav"
    sf.write(short, sung_note(1.0, 22050), 22050)
    yield {"url": demo.local_url, "app": app, "song": song, "short": short, "out": root / "out"}
    demo.close()


def submit_convert(client: Client, audio: Path, speaker: str = "alto", **settings):
    values = DEFAULTS | settings
    return client.submit(handle_file(str(audio)), speaker, "wav", *values.values(), api_name="/convert")


def convert(client: Client, audio: Path, speaker: str = "alto", **settings):
    values = DEFAULTS | settings
    return client.predict(handle_file(str(audio)), speaker, "wav", *values.values(), api_name="/convert")


def running_job(app, timeout: float = 60.0):
    """The job that is running, once it has done some work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [j for j in app.scheduler.jobs() if j.started is not None and j.fraction > 0]
        if jobs:
            return jobs[0]
        time.sleep(0.05)
    raise AssertionError("no job started")


def wait_idle(app, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while app.scheduler.jobs():
        assert time.monotonic() < deadline, f"jobs still queued: {app.scheduler.jobs()}"
        time.sleep(0.05)


def outputs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.wav"))


def test_analyze_and_loading_run_while_a_conversion_runs_and_cancel_stops_it(shared):
    app = shared["app"]
    alice = Client(shared["url"], verbose=False)
    alice.predict("trio", "cpu", api_name="/load_model")
    before = outputs(shared["out"])
    job = submit_convert(alice, shared["song"])
    running = running_job(app)
    # Bob's model-free analysis and his load of another model finish while Alice's song converts.
    bob = Client(shared["url"], verbose=False)
    _, table = bob.predict(handle_file(str(shared["short"])), ["pm"], 0.05, "cpu", api_name="/analyze")
    assert "| pm |" in table
    facts, speakers, _ = bob.predict("solo", "cpu", api_name="/load_model")
    assert "solo" in facts and speakers["value"] == "solo"
    assert running in app.scheduler.jobs() and running.fraction < 1.0 and not job.done()
    # Alice cancels: the job stops at its next progress report, inside the piece it is on.
    fraction_at_cancel = running.fraction
    alice.predict(api_name="/cancel")
    audio, plot, info = job.result(timeout=60)
    assert audio is None and "Cancelled" in info
    assert running.fraction - fraction_at_cancel < 0.15  # at most about one of the ten phrases more
    wait_idle(app)
    assert outputs(shared["out"]) == before  # nothing half-written is left


def test_a_waiting_conversion_is_told_its_place_and_a_visitor_runs_one_job_at_a_time(shared):
    app = shared["app"]
    alice, bob = Client(shared["url"], verbose=False), Client(shared["url"], verbose=False)
    for client in (alice, bob):
        client.predict("trio", "cpu", api_name="/load_model")
    first = submit_convert(alice, shared["song"])
    running_job(app)
    second = submit_convert(alice, shared["short"])  # Alice's second job waits for her first
    third = submit_convert(bob, shared["short"], speaker="bass")
    seen = set()
    deadline = time.monotonic() + 60
    while not any("next in line" in d for d in seen) and time.monotonic() < deadline:
        for unit in third.status().progress_data or []:
            seen.add(unit.desc or "")
        time.sleep(0.05)
    assert any(d.startswith("waiting for cpu: next in line") for d in seen), seen
    owners = [j.owner for j in app.scheduler.jobs()]
    assert len(owners) == 3 and owners[0] == owners[2] != owners[1]
    # Bob's job was queued after Alice's second but runs before it: visitors take turns.
    alice.predict(api_name="/cancel")
    assert first.result(timeout=60)[0] is None and second.result(timeout=60)[0] is None
    audio, _, info = third.result(timeout=120)
    assert "bass" in Path(audio).name
    wait_idle(app)


def test_typed_values_are_refused_not_rounded_or_clamped(shared):
    client = Client(shared["url"], verbose=False)
    client.predict("trio", "cpu", api_name="/load_model")
    with pytest.raises(AppError, match="seed must be a whole number, got 1.5"):
        convert(client, shared["short"], seed=1.5)
    with pytest.raises(AppError, match="99"):
        convert(client, shared["short"], transpose=99)
    _, _, info = convert(client, shared["short"], transpose=12, noise_scale=0.5)
    assert "transpose +12" in info and "noise scale 0.5" in info  # what was used is shown


@pytest.mark.parametrize("content, message", [(b"", "'empty take.wav' is empty (0 bytes)"),
                                              (b"just some text, renamed", "'empty take.wav' is not an audio file")])
def test_bad_recordings_are_named_as_the_visitor_knows_them(shared, tmp_path, content, message):
    bad = tmp_path / "empty take.wav"
    bad.write_bytes(content)
    client = Client(shared["url"], verbose=False)
    client.predict("trio", "cpu", api_name="/load_model")
    with pytest.raises(AppError) as error:
        convert(client, bad)
    assert message in str(error.value)
    assert str(tmp_path) not in str(error.value) and "/tmp" not in str(error.value).replace(message, "")


def test_user_mistakes_log_one_line_not_a_traceback(shared, capfd, caplog):
    caplog.set_level("INFO", logger="svc.webui")
    client = Client(shared["url"], verbose=False)
    with pytest.raises(AppError, match="load a model first"):
        convert(client, shared["short"])
    time.sleep(0.2)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert any("load a model first" in r.getMessage() for r in caplog.records)


def test_the_first_screen_says_what_is_missing(tmp_path, pretrain_dir):
    empty = webui.WebApp(tmp_path / "checkpoints", tmp_path / "pretrain", "cpu", output_dir=tmp_path / "o")
    text = landing_text(empty)
    assert "No model yet" in text and "checkpoints" in text and "Add a model" in text
    assert "checkpoint_best_legacy_500.pt" in text  # the encoder file models need
    make_checkpoint(tmp_path / "checkpoints" / "voice", speakers=("a",))
    locked = landing_text(empty)
    assert "Choose a model" in locked
    assert "voice needs the speech-encoder file `checkpoint_best_legacy_500.pt`" in locked
    assert "--allow-weight-uploads" in locked
    open_app = webui.WebApp(tmp_path / "checkpoints", tmp_path / "pretrain", "cpu", output_dir=tmp_path / "o",
                            allow_weight_uploads=True)
    assert "**Weights** panel" in landing_text(open_app)
    ready = webui.WebApp(tmp_path / "checkpoints", pretrain_dir, "cpu", output_dir=tmp_path / "o")
    assert "needs" not in landing_text(ready)


def test_sigterm_removes_the_servers_temporary_folders(tmp_path):
    from test_webui_api import free_port

    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    env.pop("GRADIO_TEMP_DIR", None)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "webui.py"), "--port", str(port), "--device", "cpu",
                               "--checkpoints", str(tmp_path / "none")], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(tmp_path.glob("svc-webui-*")) or not _answers(port):
            assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
            time.sleep(0.2)
        assert len(list(tmp_path.glob("svc-webui-*"))) == 2  # outputs and uploads
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    finally:
        server.kill()
    assert list(tmp_path.glob("svc-webui-*")) == []


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
            return True
    except OSError:
        return False


def test_server_precision_reaches_every_session(tmp_path, checkpoints_dir, pretrain_dir, monkeypatch):
    from svc.precision import cpu_has_bf16

    # fp16 has no CPU kernels: the launcher says so in one line and exits non-zero
    out = subprocess.run([sys.executable, str(ROOT / "webui.py"), "--device", "cpu", "--precision", "fp16",
                          "--checkpoints", str(tmp_path / "none")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "error: precision fp16 needs a GPU" in out.stderr
    assert "Traceback" not in out.stderr
    if not cpu_has_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX)")
    app = webui.WebApp(checkpoints_dir, pretrain_dir, "cpu", output_dir=tmp_path / "o", precision="bf16")
    session = app._load_session(checkpoints_dir / "tiny41", "cpu")
    assert session.precision == "bf16" and session.model.dec.compute_dtype is torch.bfloat16
    from svc.webui.model_panel import _facts

    assert "loaded on **cpu** in bf16" in _facts(app, "tiny41", session, "cpu", "in 1.0 s")
    # a device without the server's precision runs that model in fp32 and says so in its notes
    import svc.webui.app as app_module

    real = app_module.VitsSvc

    def no_bf16(*args, precision="fp32", **kwargs):
        if precision != "fp32":
            raise OptionsError("precision bf16 is not supported on MPS; use fp16 or fp32")
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "VitsSvc", no_bf16)
    fallback = app._load_session(checkpoints_dir / "tiny41", "cpu")
    assert fallback.precision == "fp32" and "runs in fp32 on cpu" in fallback.load_notes[-1]
