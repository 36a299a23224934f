"""The web UI's timbre controls and Merge panel through the HTTP API (gradio_client)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from conftest import FAST_41, sung_note  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from model_fixtures import make_checkpoint  # noqa: E402
from test_webui_api import DEFAULT_SETTINGS, launch  # noqa: E402
from timbre_fixtures import write_kmeans  # noqa: E402

import webui  # noqa: E402

SPEAKERS = ("alto", "bass", "tenor")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, pretrain_dir):
    checkpoints = tmp_path_factory.mktemp("webui_timbre") / "checkpoints"
    make_checkpoint(checkpoints / "trio", speakers=SPEAKERS, **FAST_41)
    write_kmeans(checkpoints / "trio" / "kmeans_10000.pt", SPEAKERS, dim=256, n_clusters=16)
    make_checkpoint(checkpoints / "trio2", speakers=SPEAKERS, seed=1, **FAST_41)
    make_checkpoint(checkpoints / "vol", "vol_embedding", speakers=SPEAKERS, **FAST_41)
    return checkpoints, pretrain_dir


@pytest.fixture(scope="module")
def client(folders, tmp_path_factory):
    demo = launch(*folders)
    c = Client(demo.local_url, verbose=False)
    c.predict("trio", "cpu", api_name="/load_model")
    yield c
    demo.close()


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    sf.write(path, sung_note(0.8), 44100)
    return path


def convert(client, audio, speaker="bass", **settings):
    values = dict(zip(webui.SETTING_NAMES, DEFAULT_SETTINGS, strict=True)) | settings
    path, _, info = client.predict(handle_file(str(audio)), speaker, "wav", *values.values(), api_name="/convert")
    return sf.read(path)[0]


def test_the_ratio_slider_mixes_the_model_folders_cluster_file(client, song):
    plain = convert(client, song)
    mixed = convert(client, song, cluster_ratio=0.8)
    assert np.abs(plain - mixed).max() > 0.05
    # a path typed into the page is never read: the model folder's file is used
    again = convert(client, song, cluster_ratio=0.8, cluster="/etc/passwd")
    np.testing.assert_array_equal(mixed, again)


def test_ratio_out_of_range_is_an_error(client, song):
    with pytest.raises(AppError, match="greater than maximum value 1"):
        convert(client, song, cluster_ratio=1.5)


def test_mix_editor_writes_the_spk_mix_json(client, song):
    rows = {"headers": ["speaker", "weight at start", "weight at end"],
            "data": [["alto", 1.0, 0.0], ["bass", 0.0, 1.0], ["tenor", 0.0, 0.0]]}
    text = client.predict(rows, api_name="/mix_from_table")
    assert json.loads(text) == {"alto": [[0.0, 1.0, 1.0, 0.0]], "bass": [[0.0, 1.0, 0.0, 1.0]]}
    mixed = convert(client, song, spk_mix=text)
    assert np.abs(mixed - convert(client, song, speaker="alto")).max() > 0.01
    static = json.dumps({"tenor": [[0, 1, 1, 1]]})
    np.testing.assert_allclose(convert(client, song, spk_mix=static), convert(client, song, speaker="tenor"),
                               atol=1e-4)
    empty = {"headers": rows["headers"], "data": [["alto", 0, 0]]}
    assert client.predict(empty, api_name="/mix_from_table") == ""


def test_mix_errors_are_shown(client, song):
    with pytest.raises(AppError, match="unknown speaker 'nobody'"):
        convert(client, song, spk_mix=json.dumps({"nobody": [[0, 1, 1, 1]]}))
    with pytest.raises(AppError, match="gap between"):
        convert(client, song, spk_mix=json.dumps({"alto": [[0, 0.4, 1, 1], [0.5, 1, 1, 1]]}))
    with pytest.raises(AppError, match="cluster_ratio must be 0 with spk_mix"):
        convert(client, song, cluster_ratio=0.5, spk_mix=json.dumps({"alto": [[0, 1, 1, 1]]}))


def test_merge_panel_writes_a_loadable_model(client, folders):
    message, models = client.predict(["trio", "trio2"], "0.6,0.4", "average", "blend", api_name="/merge_models")
    assert "blend" in message and "blend" in [value for _, value in models["choices"]]
    written = folders[0] / "blend" / "blend.pth"
    state = torch.load(written, weights_only=True)["model"]
    a = torch.load(folders[0] / "trio" / "G_100.pth", weights_only=True)["model"]
    b = torch.load(folders[0] / "trio2" / "G_100.pth", weights_only=True)["model"]
    assert torch.allclose(state["emb_g.weight"], 0.6 * a["emb_g.weight"] + 0.4 * b["emb_g.weight"], atol=1e-7)
    facts, _, _ = client.predict("blend", "cpu", api_name="/load_model")
    assert "blend" in facts
    client.predict("trio", "cpu", api_name="/load_model")


@pytest.mark.parametrize("models, name, message", [
    (["trio", "vol"], "x1", "model architecture differs"),
    (["trio"], "x2", "at least two models"),
    (["trio", "trio2"], "../evil", "name the merged model"),
    (["trio", "trio2"], "trio", "already exists"),
])
def test_merge_errors(client, folders, models, name, message):
    with pytest.raises(AppError, match=message):
        client.predict(models, "1,1", "average", name, api_name="/merge_models")
    assert not (folders[0] / "x1").exists()
