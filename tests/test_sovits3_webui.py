"""so-vits-svc 3.0 models in the web UI, through its HTTP API (gradio_client)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from gradio_client import Client  # noqa: E402
from test_webui_api import convert, launch, sung  # noqa: E402, F401  (sung is a fixture)


@pytest.fixture(scope="module")
def server(sovits3_checkpoints, sovits3_pretrain):
    demo = launch(sovits3_checkpoints, sovits3_pretrain)
    yield demo.local_url
    demo.close()


def test_model_panel_names_30_models(server):
    choices = Client(server, verbose=False).predict(None, api_name="/list_models")["choices"]
    labels = dict((value, label) for label, value in choices)
    assert "so-vits-svc 3.0 (32 kHz), hubertsoft, 3 speakers" in labels["v3_32k"]
    assert "so-vits-svc 3.0 (48 kHz)" in labels["v3_48k"]
    assert "1 speaker" in labels["v3_solo"]


@pytest.mark.parametrize("model,rate", [("v3_32k", 32000), ("v3_48k", 48000)])
def test_convert_with_a_30_model(server, sung, model, rate):  # noqa: F811
    client = Client(server, verbose=False)
    facts, speakers, _ = client.predict(model, "cpu", api_name="/load_model")
    assert f"so-vits-svc 3.0 ({rate // 1000} kHz)" in facts and "hubertsoft" in facts
    assert "**Noise scale** is set to 1 for its original sound" in facts
    assert [c[1] for c in speakers["choices"]] == ["nen", "paimon", "yunhao"]
    audio_path, plot, info = convert(client, sung, "yunhao", transpose=-2)
    out, sr = sf.read(audio_path)
    length = sf.info(str(sung)).frames
    assert sr == rate and len(out) == int(np.ceil(length * rate / sf.info(str(sung)).samplerate))
    assert np.abs(out).max() > 0.01 and plot["plot"].startswith("data:image")


def test_loading_a_model_sets_its_noise_scale(tmp_path, sovits3_checkpoints, sovits3_pretrain, checkpoints_dir,
                                              pretrain_dir):
    import functools

    import webui
    from svc.webui.app import LoadedChoice
    from svc.webui.model_panel import model_noise_scale

    app3 = webui.WebApp(sovits3_checkpoints, sovits3_pretrain, "cpu", output_dir=tmp_path / "o3")
    v3 = LoadedChoice(str(sovits3_checkpoints / "v3_32k"), "cpu")
    assert model_noise_scale(app3, v3, 0.4)["value"] == 1.0  # a 3.0 model samples at 1
    assert "value" not in model_noise_scale(app3, v3, 0.7)  # the visitor's own choice stays
    app4 = webui.WebApp(checkpoints_dir, pretrain_dir, "cpu", output_dir=tmp_path / "o4")
    v4 = LoadedChoice(str(checkpoints_dir / "tiny41"), "cpu")
    assert model_noise_scale(app4, v4, 1.0)["value"] == 0.4  # back to 4.x after a 3.0 model
    assert "value" not in model_noise_scale(app4, None, 1.0)
    # and the page runs it whenever a visitor's loaded model changes
    demo = webui.build_demo(device="cpu", app=app4)
    assert any(isinstance(f.fn, functools.partial) and f.fn.func is model_noise_scale for f in demo.fns.values())
