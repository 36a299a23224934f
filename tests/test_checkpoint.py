"""Reading G_*.pth files and config.json: accepted formats, inferred fixes and every refusal."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from model_fixtures import make_checkpoint, make_inputs, make_state_dict, small_config  # noqa: E402

from svc.checkpoint import load_generator, read_state_dict  # noqa: E402
from svc.config import ModelConfig  # noqa: E402
from svc.errors import CheckpointError, ConfigError  # noqa: E402


def _load(model_dir: Path, pth: str = "G_100.pth"):
    return load_generator(model_dir / pth, ModelConfig.from_json(model_dir / "config.json"))


def _audio(model, cfg):
    x = make_inputs(cfg)
    return model.infer(x["c"], x["f0"], x["uv"], x["g"])[0]


def _edit_config(model_dir: Path, edit) -> None:
    path = model_dir / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


# ---- accepted files -------------------------------------------------------------------------

def test_training_and_release_files_give_the_same_model(tmp_path):
    training = make_checkpoint(tmp_path / "train", optimizer=True, enc_q=True)
    release = make_checkpoint(tmp_path / "release")
    assert any(k.startswith("enc_q.") for k in torch.load(training / "G_100.pth", weights_only=True)["model"])
    a = _audio(_load(training).model, small_config())
    b = _audio(_load(release).model, small_config())
    assert torch.equal(a, b)


def test_fp16_file_is_cast_to_fp32(tmp_path):
    model_dir = make_checkpoint(tmp_path / "half", fp16=True, enc_q=True)
    loaded = _load(model_dir)
    emb = loaded.model.emb_g.weight
    assert emb.dtype == torch.float32
    expected = make_state_dict(small_config())["emb_g.weight"].half().float()
    assert torch.equal(emb, expected)
    assert _audio(loaded.model, small_config()).dtype == torch.float32


def test_bare_state_dict_is_accepted(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    torch.save(make_state_dict(small_config()), model_dir / "bare.pth")
    assert torch.equal(_audio(_load(model_dir, "bare.pth").model, small_config()),
                       _audio(_load(model_dir).model, small_config()))


def test_40_config_without_speech_encoder_is_inferred(tmp_path):
    loaded = _load(make_checkpoint(tmp_path / "old", "4.0"))
    assert loaded.config.version == "4.0"
    assert loaded.config.speech_encoder == "vec256l9"
    assert any("vec256l9" in note for note in loaded.notes)


def test_early_40_speaker_table_of_200_rows(tmp_path):
    model_dir = make_checkpoint(tmp_path / "early", "4.0", n_speakers=200)
    _edit_config(model_dir, lambda c: c["model"].update(n_speakers=3))
    loaded = _load(model_dir)
    assert loaded.model.emb_g.weight.shape[0] == 200
    assert loaded.config.model.n_speakers == 200
    assert any("200-row" in note for note in loaded.notes)


def test_41_config_defaults():
    cfg = small_config()
    for key in ("speech_encoder", "vol_embedding", "use_automatic_f0_prediction"):
        del cfg["model"][key]
    del cfg["data"]["unit_interpolate_mode"]
    config = ModelConfig.from_dict(cfg)
    assert config.version == "4.1"
    assert config.speech_encoder == "vec768l12" and not config.speech_encoder_given
    assert config.data.unit_interpolate_mode == "left"
    assert config.model.vol_embedding is False and config.model.use_automatic_f0_prediction is True
    assert config.speakers == ["alice", "bob", "carol"]
    assert config.sampling_rate == 44100 and config.hop_length == 512


# ---- refused files --------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "G_1.pth")


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "G_1.pth"
    path.write_text("hello, not a model")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_state_dict(path)


def test_truncated_file(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    data = (model_dir / "G_100.pth").read_bytes()
    (model_dir / "G_100.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged, truncated"):
        read_state_dict(model_dir / "G_100.pth")


class _Payload:
    pass


def test_file_with_pickled_objects_is_refused(tmp_path):
    torch.save({"model": _Payload()}, tmp_path / "G_1.pth")
    with pytest.raises(CheckpointError, match="contains the Python class .*_Payload"):
        read_state_dict(tmp_path / "G_1.pth")


def test_torch_file_that_is_not_a_generator(tmp_path):
    torch.save({"model": {"convs.0.weight": torch.zeros(2)}}, tmp_path / "D_1.pth")
    with pytest.raises(CheckpointError, match="G_\\*.pth"):
        read_state_dict(tmp_path / "D_1.pth")


def test_json_syntax_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model": {"inter_channels": 16,}}')
    with pytest.raises(ConfigError, match=r"not valid JSON \(line 1"):
        ModelConfig.from_json(path)


@pytest.mark.parametrize("section,key", [("model", "hidden_channels"), ("model", "ssl_dim"),
                                         ("data", "sampling_rate"), ("data", "hop_length")])
def test_missing_required_key(tmp_path, section, key):
    cfg = small_config()
    del cfg[section][key]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=f"{section}.{key} is missing") as err:
        ModelConfig.from_json(path)
    assert str(path) in str(err.value)


def test_missing_speaker_map():
    cfg = small_config()
    del cfg["spk"]
    with pytest.raises(ConfigError, match="spk is missing"):
        ModelConfig.from_dict(cfg)


def test_hop_must_match_upsample_rates():
    cfg = small_config()
    cfg["data"]["hop_length"] = 320
    with pytest.raises(ConfigError, match="product of model.upsample_rates"):
        ModelConfig.from_dict(cfg)


def test_bad_value_types_name_the_key():
    cfg = small_config()
    cfg["model"]["vol_embedding"] = "yes"
    with pytest.raises(ConfigError, match="model.vol_embedding must be true or false"):
        ModelConfig.from_dict(cfg)


def test_40_checkpoint_with_41_encoder_config(tmp_path):
    old = make_checkpoint(tmp_path / "old", "4.0")
    new = make_checkpoint(tmp_path / "new", "4.1")
    with pytest.raises(CheckpointError, match='looks like a 4.0 model: set "speech_encoder": "vec256l9"'):
        load_generator(old / "G_100.pth", ModelConfig.from_json(new / "config.json"))


def test_encoder_that_contradicts_ssl_dim(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    _edit_config(model_dir, lambda c: c["model"].update(speech_encoder="vec256l9"))
    with pytest.raises(CheckpointError, match="speech_encoder 'vec256l9' gives 256"):
        _load(model_dir)


def test_wrong_speaker_count(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    _edit_config(model_dir, lambda c: (c["model"].update(n_speakers=4), c["spk"].update(dave=3)))
    with pytest.raises(CheckpointError, match="has 3 speakers but .* says n_speakers 4"):
        _load(model_dir)


def test_speaker_id_beyond_the_table(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    _edit_config(model_dir, lambda c: c["spk"].update(dave=7))
    with pytest.raises(ConfigError, match="not below n_speakers 3"):
        _load(model_dir)


@pytest.mark.parametrize("variant,config_value,fix", [("vol_embedding", False, "true"), ("4.1", True, "false")])
def test_vol_embedding_mismatch(tmp_path, variant, config_value, fix):
    model_dir = make_checkpoint(tmp_path / "m", variant)
    _edit_config(model_dir, lambda c: c["model"].update(vol_embedding=config_value))
    with pytest.raises(CheckpointError, match=f"set model.vol_embedding to {fix}"):
        _load(model_dir)


@pytest.mark.parametrize("variant,key,value,hint", [
    ("4.1", "use_automatic_f0_prediction", False, "use_automatic_f0_prediction to true"),
    ("no_auto_f0", "use_automatic_f0_prediction", True, "use_automatic_f0_prediction to false"),
    ("snake", "vocoder_name", "nsf-hifigan", '"nsf-snake-hifigan"'),
    ("depthwise", "use_depthwise_conv", False, "use_depthwise_conv to true"),
    ("flow_share", "flow_share_parameter", False, "flow_share_parameter to true"),
    ("transformer_flow", "use_transformer_flow", False, "use_transformer_flow to true"),
    ("4.1", "n_flow_layer", 3, "n_flow_layer"),
])
def test_structure_mismatch_names_the_switch(tmp_path, variant, key, value, hint):
    model_dir = make_checkpoint(tmp_path / "m", variant)
    _edit_config(model_dir, lambda c: c["model"].update({key: value}))
    with pytest.raises(CheckpointError, match="does not match") as err:
        _load(model_dir)
    assert hint in str(err.value)


def test_missing_tensor(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    state = make_state_dict(small_config())
    del state["dec.conv_post.bias"]
    torch.save({"model": state}, model_dir / "G_100.pth")
    with pytest.raises(CheckpointError, match="1 missing \\(e.g. dec.conv_post.bias\\)"):
        _load(model_dir)


def test_wrong_channel_size(tmp_path):
    model_dir = make_checkpoint(tmp_path / "m")
    _edit_config(model_dir, lambda c: c["model"].update(filter_channels=96))
    with pytest.raises(CheckpointError, match="with other shapes .*check the channel sizes"):
        _load(model_dir)


def test_config_with_byte_order_mark(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(small_config()).encode())
    assert ModelConfig.from_json(path).speakers == ["alice", "bob", "carol"]
