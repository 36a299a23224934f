"""The web UI through its HTTP API (gradio_client), with tiny random-weight models on the CPU."""

import os
import socket
import sys
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from conftest import FAST_41  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from model_fixtures import make_checkpoint  # noqa: E402

import webui  # noqa: E402
from svc.errors import AudioError  # noqa: E402
from svc.options import ConvertOptions  # noqa: E402

SPEAKERS = ["alto", "bass", "tenor"]
DEFAULT_SETTINGS = [f.default for f in fields(ConvertOptions) if f.name in webui.SETTING_NAMES]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(checkpoints: Path, pretrain: Path):
    outputs = checkpoints.parent / f"outputs-{free_port()}"
    demo = webui.build_demo(device="cpu", app=webui.WebApp(checkpoints, pretrain, "cpu", output_dir=outputs))
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    return demo


@pytest.fixture(scope="module")
def folders(tmp_path_factory, pretrain_dir):
    checkpoints = tmp_path_factory.mktemp("webui") / "checkpoints"
    make_checkpoint(checkpoints / "trio", speakers=tuple(SPEAKERS), **FAST_41)
    make_checkpoint(checkpoints / "solo", speakers=("solo",), **FAST_41)
    return checkpoints, pretrain_dir


@pytest.fixture(scope="module")
def server(folders):
    demo = launch(*folders)
    yield demo.local_url
    demo.close()


@pytest.fixture(scope="module")
def sung(tmp_path_factory) -> Path:
    """1.2 s of a harmonic-rich vibrato tone around A3 (220 Hz) with a short silence, at 22.05 kHz."""
    sr = 22050
    t = np.arange(int(1.2 * sr)) / sr
    phase = 2 * np.pi * np.cumsum(220 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)) / sr
    tone = 0.2 * sum(np.sin(k * phase) / k for k in range(1, 9))
    tone += 0.002 * np.random.default_rng(0).standard_normal(len(t))
    tone[int(0.5 * sr) : int(0.6 * sr)] = 0
    path = tmp_path_factory.mktemp("audio") / "sung.wav"
    sf.write(path, tone.astype(np.float32), sr)
    return path


def loaded_client(url: str, model: str = "trio") -> Client:
    client = Client(url, verbose=False)
    client.predict(model, "cpu", api_name="/load_model")
    return client


def convert(client: Client, audio: Path, speaker: str, fmt: str = "wav", **settings):
    values = dict(zip(webui.SETTING_NAMES, DEFAULT_SETTINGS, strict=True)) | settings
    return client.predict(handle_file(str(audio)), speaker, fmt, *values.values(), api_name="/convert")


def test_load_model_reports_its_facts_and_speakers(server):
    client = Client(server, verbose=False)
    facts, speakers, compare_speakers = client.predict("trio", "cpu", api_name="/load_model")
    assert "trio" in facts and "cpu" in facts
    assert "Noise scale" not in facts  # a 4.x model samples at the page's default
    assert [c[1] for c in speakers["choices"]] == SPEAKERS
    assert speakers["value"] == "alto"
    assert compare_speakers["value"] == SPEAKERS
    choices = client.predict(None, api_name="/list_models")["choices"]
    assert sorted(value for _, value in choices) == ["solo", "trio"]
    assert all("speaker" in label for label, _ in choices)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_convert_returns_the_written_file_and_a_plot(server, folders, sung, fmt):
    client = loaded_client(server)
    audio_path, plot, info = convert(client, sung, "bass", fmt, transpose=3)
    # Byte for byte the file the pipeline wrote (not re-encoded by Gradio).
    written = list(folders[0].parent.glob(f"outputs-*/*/{Path(audio_path).name}"))
    assert len(written) == 1 and written[0].read_bytes() == Path(audio_path).read_bytes()
    out, sr = sf.read(audio_path)
    assert Path(audio_path).suffix == f".{fmt}"
    assert "bass" in Path(audio_path).name
    assert sf.info(audio_path).format == fmt.upper()
    assert abs(len(out) / sr - 1.2) < 1e-3  # as long as the input
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image")
    assert "voiced chunk" in info


def test_same_seed_gives_the_same_audio(server, sung):
    client = loaded_client(server)
    first, _, _ = convert(client, sung, "alto")
    second, _, _ = convert(client, sung, "alto")
    np.testing.assert_array_equal(sf.read(first)[0], sf.read(second)[0])


def test_compare_three_speakers(server, sung):
    client = loaded_client(server)
    values = dict(zip(webui.SETTING_NAMES, DEFAULT_SETTINGS, strict=True))
    *players, plot = client.predict(handle_file(str(sung)), SPEAKERS, "0", "wav", *values.values(),
                                    api_name="/compare")
    assert len(players) == webui.MAX_COMPARE
    shown = [p for p in players if p.get("visible")]
    assert [p["label"] for p in shown] == [f"{s} +0" for s in SPEAKERS]
    audios = [sf.read(p["value"])[0] for p in shown]
    assert all(len(a) == len(audios[0]) for a in audios)
    # Three speakers of one model are three different voices.
    assert not np.allclose(audios[0], audios[1]) and not np.allclose(audios[1], audios[2])
    assert plot["plot"].startswith("data:image")


def test_compare_rejects_too_many_results(server, sung):
    client = loaded_client(server)
    with pytest.raises(AppError, match="at most 6"):
        client.predict(handle_file(str(sung)), SPEAKERS, "0, 5, 7", "wav", *DEFAULT_SETTINGS, api_name="/compare")


def test_analyze_needs_no_model_and_finds_the_pitch(server, sung):
    client = Client(server, verbose=False)
    plot, table = client.predict(handle_file(str(sung)), ["pm", "harvest"], 0.05, "cpu", api_name="/analyze")
    assert plot["plot"].startswith("data:image")
    rows = [r for r in table.splitlines() if r.startswith("| pm") or r.startswith("| harvest")]
    assert len(rows) == 2
    for row in rows:
        _, _, voiced, median, *_ = (cell.strip() for cell in row.split("|"))
        assert median == "A3"  # the tone's pitch
        assert 80 <= int(voiced.rstrip(" %")) <= 95  # voiced but for the gap and the edges


def test_each_session_keeps_its_own_model(server, sung):
    trio, solo = loaded_client(server, "trio"), loaded_client(server, "solo")
    audio_path, _, _ = convert(trio, sung, "tenor")  # 'tenor' exists only in trio
    assert "tenor" in Path(audio_path).name
    with pytest.raises(AppError, match="unknown speaker 'tenor'; this model has"):
        convert(solo, sung, "tenor")


def test_progress_is_reported_by_chunk(server, sung):
    client = loaded_client(server)
    values = dict(zip(webui.SETTING_NAMES, DEFAULT_SETTINGS, strict=True)) | {"clip_seconds": 0.3}
    job = client.submit(handle_file(str(sung)), "alto", "wav", *values.values(), api_name="/convert")
    seen = set()
    while not job.done():
        for unit in job.status().progress_data or []:
            seen.add(unit.desc)
    job.result()
    assert any(desc and "chunk" in desc for desc in seen), seen


def test_concurrent_users_get_their_own_results(server, sung):
    """Two visitors with different models convert at once; each result equals a solo run."""
    trio, solo = loaded_client(server, "trio"), loaded_client(server, "solo")
    alone_trio, _, _ = convert(trio, sung, "bass")
    alone_solo, _, _ = convert(solo, sung, "solo")
    values = dict(zip(webui.SETTING_NAMES, DEFAULT_SETTINGS, strict=True))
    jobs = [c.submit(handle_file(str(sung)), speaker, "wav", *values.values(), api_name="/convert")
            for c, speaker in ((trio, "bass"), (solo, "solo"), (trio, "bass"))]
    results = [job.result()[0] for job in jobs]
    np.testing.assert_array_equal(sf.read(results[0])[0], sf.read(alone_trio)[0])
    np.testing.assert_array_equal(sf.read(results[1])[0], sf.read(alone_solo)[0])
    np.testing.assert_array_equal(sf.read(results[2])[0], sf.read(alone_trio)[0])


def test_upload_good_model(server, folders, tmp_path):
    checkpoints, _ = folders
    source = make_checkpoint(tmp_path / "new", speakers=("x", "y"))
    files = [handle_file(str(p)) for p in sorted(source.iterdir())]
    client = Client(server, verbose=False)
    message, models, box = client.predict(files, "uploaded", api_name="/upload_model")
    assert "uploaded" in message and box is None
    assert models["value"] == "uploaded"
    assert sorted(p.name for p in (checkpoints / "uploaded").iterdir()) == sorted(p.name for p in source.iterdir())
    facts, speakers, _ = client.predict("uploaded", "cpu", api_name="/load_model")
    assert [c[1] for c in speakers["choices"]] == ["x", "y"]


def test_upload_bad_model_is_rejected_and_leaves_nothing(server, folders, tmp_path):
    checkpoints, _ = folders
    before = sorted(p.name for p in checkpoints.iterdir())
    source = make_checkpoint(tmp_path / "bad", speakers=("x",))
    pth = next(source.glob("*.pth"))
    pth.write_bytes(b"this is not a checkpoint")
    client = Client(server, verbose=False)
    # One message in the panel (no error overlays on the model list), the drop box emptied.
    message, models, box = client.predict([handle_file(str(p)) for p in source.iterdir()], "broken",
                                          api_name="/upload_model")
    assert message.startswith("❌") and "the model was not saved: 'G_100.pth' is not a PyTorch checkpoint" in message
    assert box is None
    assert sorted(p.name for p in checkpoints.iterdir()) == before
    message, *_ = client.predict([handle_file(str(pth))], "", api_name="/upload_model")
    assert "exactly one .pth file and one config.json" in message


def test_convert_without_a_model_says_what_to_do(server, sung):
    client = Client(server, verbose=False)
    with pytest.raises(AppError, match="load a model first"):
        convert(client, sung, "alto")


def test_bad_audio_is_a_clear_error(server, tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF but not really a wave file")
    client = loaded_client(server)
    with pytest.raises(AppError) as error:
        convert(client, bad, "alto")
    assert "noise.wav" in str(error.value)
    assert "Traceback" not in str(error.value)


def test_out_of_range_setting_is_a_clear_error(server, sung):
    client = loaded_client(server)
    with pytest.raises(AppError, match="crossfade_seconds"):
        convert(client, sung, "alto", clip_seconds=2, crossfade_seconds=3)


def test_missing_encoder_weights_name_the_file(folders, sung, tmp_path):
    checkpoints, _ = folders
    empty_pretrain = tmp_path / "pretrain"
    empty_pretrain.mkdir()
    demo = launch(checkpoints, empty_pretrain)
    try:
        client = Client(demo.local_url, verbose=False)
        facts, _, _ = client.predict("trio", "cpu", api_name="/load_model")
        assert "checkpoint_best_legacy_500.pt" in facts
        with pytest.raises(AppError, match="checkpoint_best_legacy_500.pt"):
            convert(client, sung, "alto")
    finally:
        demo.close()


def test_handler_errors_become_messages():
    def oom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def bug():
        raise KeyError("oops")

    def user():
        raise AudioError("file 'x.wav' is empty")

    with pytest.raises(gr.Error, match="Out of memory"):
        webui.shows_errors(oom)()
    with pytest.raises(gr.Error, match=r"Unexpected error \(KeyError"):
        webui.shows_errors(bug)()
    with pytest.raises(gr.Error, match="file 'x.wav' is empty"):
        webui.shows_errors(user)()


def test_parse_transposes():
    assert webui.parse_transposes("0, 12;-5 12") == [0.0, 12.0, -5.0]
    assert webui.parse_transposes("") == [0.0]
    with pytest.raises(Exception, match="numbers separated by commas"):
        webui.parse_transposes("up")
    with pytest.raises(Exception, match="transpose must be between -48 and 48, got 50"):
        webui.parse_transposes("0, 50")  # the range ConvertOptions gives the transpose
