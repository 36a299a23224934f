"""The original so-vits-svc 3.0 session API on ``VitsSvc`` and a 3.0-style Gradio app driving it."""

import os
import socket
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from conftest import sung_note  # noqa: E402

from svc import VitsSvc  # noqa: E402
from svc.errors import AudioError, CheckpointError  # noqa: E402
from svc.sovits3_api import SpeakerMap, float_to_int16, gradio_audio_to_float  # noqa: E402

SR = 22050


def song(seconds: float = 0.5) -> np.ndarray:
    wav = sung_note(seconds, SR)
    wav[int(0.2 * SR):int(0.28 * SR)] = 0
    return wav


@pytest.fixture(scope="module")
def session(sovits3_checkpoints, sovits3_pretrain):
    s = VitsSvc(device="cpu", pretrain_dir=sovits3_pretrain, checkpoints_dir=sovits3_checkpoints)
    s.set_device("cpu")
    return s


def test_load_checkpoint_by_name_and_hps(session):
    session.loadCheckpoint("v3_48k")
    assert session.hps.spk == {"nen": 0, "paimon": 1, "yunhao": 2}
    assert session.hps.data.sampling_rate == 48000 and session.hps.version == "3.0"
    assert session.speakers == {"nen": 0, "paimon": 1, "yunhao": 2}
    assert session.speakers == ["nen", "paimon", "yunhao"] and session.speakers["paimon"] == 1
    assert session.speakers[0] == "nen" and list(session.speakers) == ["nen", "paimon", "yunhao"]
    with pytest.raises(CheckpointError, match="does not exist"):
        session.loadCheckpoint("nope")
    assert session.hps.data.sampling_rate == 48000  # the loaded model stays


@pytest.mark.parametrize("layout", ["int16 stereo", "float32 mono"])  # other layouts: test_gradio_audio_*
def test_inference_takes_gradio_audio(session, layout):
    session.loadCheckpoint("v3_32k")
    wav = song()
    if layout == "int16 stereo":
        audio = (np.stack([wav, 0.5 * wav], axis=1) * 32767).astype(np.int16)
    else:
        audio = wav
    sr, out = session.inference((SR, audio), "paimon", 3, -40)
    assert sr == 32000 and out.dtype == np.int16
    assert len(out) == int(np.ceil(len(wav) * 32000 / SR))
    assert np.abs(out).max() > 300


def test_inference_is_reproducible_and_speaker_dependent(session):
    session.loadCheckpoint("v3_32k")
    audio = (SR, (song() * 32767).astype(np.int16))
    a = session.inference(audio, "nen", 0, -40)[1]  # noise scale 1, seeded
    b = session.inference(audio, "nen", 0, -40)[1]
    c = session.inference(audio, "yunhao", 0, -40)[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_inference_works_for_4x_models(checkpoints_dir, pretrain_dir):
    s = VitsSvc(device="cpu", pretrain_dir=pretrain_dir, checkpoints_dir=checkpoints_dir)
    s.loadCheckpoint("tiny41")
    sr, out = s.inference((SR, (song(0.5) * 32767).astype(np.int16)), "bob", 0, -40)
    assert sr == 44100 and out.dtype == np.int16 and len(out) == int(np.ceil(int(0.5 * SR) * 44100 / SR))


def test_int16_output_clips_instead_of_wrapping():
    out = float_to_int16(np.array([1.0, -1.0, 0.5, 1.2, -0.25]))
    assert out.tolist() == [32767, -32768, 16384, 32767, -8192]


def test_gradio_audio_conversion():
    wav, sr = gradio_audio_to_float((16000, np.array([[32767, -32767], [0, 0]], dtype=np.int16)))
    assert sr == 16000 and wav.dtype == np.float32 and wav.tolist() == [0.0, 0.0]
    wav, _ = gradio_audio_to_float((8000, np.array([0.5, -0.5], dtype=np.float64)))
    assert wav.tolist() == [0.5, -0.5]
    wav, _ = gradio_audio_to_float((8000, np.array([[2147483647, 0]], dtype=np.int32)))
    assert wav.tolist() == [0.5]
    with pytest.raises(AudioError):
        gradio_audio_to_float(np.zeros(10))
    with pytest.raises(AudioError):
        gradio_audio_to_float((16000, np.array(["a"])))


def test_speaker_map():
    spk = SpeakerMap({"b": 1, "a": 0})
    assert list(spk) == ["a", "b"] and spk[1] == "b" and spk["b"] == 1 and spk[:1] == ["a"]
    assert spk == {"a": 0, "b": 1} and spk == ("a", "b") and spk != ["b", "a"]


# --- the 3.0-style Gradio app, in-process, through gradio_client -----------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gradio_app(sovits3_checkpoints, sovits3_pretrain):
    from sovits_gradio_app import VitsGradio

    app = VitsGradio(str(sovits3_checkpoints), str(sovits3_pretrain))
    app.Vits.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    yield app
    app.Vits.close()


@pytest.mark.parametrize("model,rate", [("v3_32k", 32000), ("v3_48k", 48000)])
def test_original_style_gradio_app_converts(gradio_app, tmp_path, model, rate):
    from gradio_client import Client, handle_file

    client = Client(gradio_app.Vits.local_url, verbose=False)
    speakers = client.predict(model, "cpu", api_name="/loadModel")  # the Row's update is not API output
    assert speakers["value"] == "nen" and [c[0] for c in speakers["choices"]] == ["nen", "paimon", "yunhao"]
    wav = song()
    sf.write(tmp_path / "in.wav", wav, SR, subtype="PCM_16")  # WAV: Gradio decodes it without ffmpeg
    out_path = client.predict(handle_file(str(tmp_path / "in.wav")), "paimon", 2, -40, api_name="/inference")
    out, sr = sf.read(out_path, dtype="int16")
    assert sr == rate and len(out) == int(np.ceil(len(wav) * rate / SR)) and np.abs(out).max() > 300


def test_cli_uses_the_models_own_noise_scale(session, sovits3_checkpoints, sovits3_pretrain, tmp_path, capsys):
    """``svc infer`` on a 3.0 model samples as 3.0 does (noise scale 1) unless --noise-scale is given."""
    import soundfile as sf

    from svc import ConvertOptions
    from svc.cli import main

    session.loadCheckpoint("v3_32k")
    assert session.default_noise_scale == 1.0
    wav = song()
    sf.write(tmp_path / "in.wav", wav, SR, subtype="FLOAT")
    expected = {scale: session.convert(wav, SR, ConvertOptions(speaker="nen", noise_scale=scale)).audio
                for scale in (1.0, 0.4)}
    # The two scales differ far beyond the comparison's bound below, so a wrong default is caught.
    assert np.abs(expected[1.0] - expected[0.4]).max() > 10 * 2e-4
    for flags, scale in (([], 1.0), (["--noise-scale", "0.4"], 0.4)):
        out_dir = tmp_path / f"out{scale}"
        code = main(["infer", "-m", str(sovits3_checkpoints / "v3_32k"), "-s", "nen", "--pretrain",
                     str(sovits3_pretrain), "--device", "cpu", "--no-progress", *flags, str(tmp_path / "in.wav"),
                     "-o", str(out_dir)])
        assert code == 0, capsys.readouterr().err
        (written,) = out_dir.glob("*.wav")
        audio, sr = sf.read(written, dtype="float32")
        assert sr == 32000
        # The written file is 16-bit PCM (quantisation up to 1/32768), the comparison is 2e-4.
        assert np.abs(audio - expected[scale]).max() < 2e-4, scale
