"""``python -m svc merge`` / ``compress``: the files they write are so-vits-svc 4.1 release checkpoints."""

import json

import pytest
import torch
from conftest import FAST_41, SPEAKERS
from model_fixtures import make_checkpoint

from svc.checkpoint import load_generator
from svc.cli import main
from svc.config import ModelConfig
from svc.errors import CheckpointError, OptionsError
from svc.model_tools import compress, merge, merge_factors

RELEASE_KEYS = {"model", "iteration", "optimizer", "learning_rate"}


def assert_release_layout(path, n_params=None, dtype=torch.float32):
    """What so-vits-svc 4.1's ``utils.load_checkpoint(path, net_g, None)`` reads, and compress_model.py's layout."""
    raw = torch.load(path, map_location="cpu", weights_only=True)  # what torch >= 2.6 does by default
    assert set(raw) == RELEASE_KEYS
    assert raw["iteration"] == 0 and raw["learning_rate"] == 1e-4
    assert raw["optimizer"]["state"] == {}
    group = raw["optimizer"]["param_groups"][0]
    assert group["lr"] == 1e-4 and group["betas"] == (0.8, 0.99) and group["eps"] == 1e-9
    if n_params is not None:
        assert len(group["params"]) == n_params
    state = raw["model"]
    assert not any(k.startswith(("enc_q.", "module.")) for k in state)
    assert next(iter(state.values())).dtype == dtype  # the reference casts its model to the first tensor's dtype
    assert all(v.dtype == dtype for v in state.values() if v.is_floating_point())
    return state


def infer(model_dir, pth=None):
    config = ModelConfig.from_json(model_dir / "config.json")
    model = load_generator(pth or model_dir / "G_100.pth", config).model
    gen = torch.Generator().manual_seed(3)
    c = torch.randn(1, 256, 30, generator=gen)
    f0 = torch.full((1, 30), 220.0)
    audio, _ = model.infer(c, f0, torch.ones(1, 30), torch.LongTensor([[1]]))
    return audio


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training checkpoint: enc_q weights and a full AdamW state."""
    return make_checkpoint(tmp_path_factory.mktemp("trained") / "m", "4.1", speakers=SPEAKERS, optimizer=True,
                           enc_q=True, **FAST_41)


def test_compress_drops_optimizer_and_enc_q(trained, tmp_path):
    out = tmp_path / "G_release.pth"
    compress(trained / "G_100.pth", out)
    source = torch.load(trained / "G_100.pth", weights_only=True)
    state = assert_release_layout(out, n_params=len(source["optimizer"]["param_groups"][0]["params"]))
    assert set(state) == {k for k in source["model"] if not k.startswith("enc_q.")}
    assert all(torch.equal(v, source["model"][k]) for k, v in state.items())
    assert out.stat().st_size < (trained / "G_100.pth").stat().st_size / 2
    assert torch.equal(infer(trained, out), infer(trained))


def test_compress_half(trained, tmp_path):
    out = tmp_path / "G_half.pth"
    compress(trained / "G_100.pth", out, half=True)
    assert_release_layout(out, dtype=torch.float16)
    ours, full = infer(trained, out), infer(trained)
    assert (ours - full).abs().max() < 0.05 and not torch.equal(ours, full)


def test_compress_errors(tmp_path):
    torch.save({"model": {"disc.weight": torch.zeros(1)}}, tmp_path / "D_1.pth")
    with pytest.raises(CheckpointError, match="does not contain a so-vits-svc generator"):
        compress(tmp_path / "D_1.pth", tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        compress(tmp_path / "none.pth", tmp_path / "x.pth")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    a = make_checkpoint(root / "a", "4.1", speakers=SPEAKERS, seed=0, **FAST_41)
    b = make_checkpoint(root / "b", "4.1", speakers=("x", "y", "z"), seed=1, optimizer=True, **FAST_41)
    return a, b


def test_merge_is_the_weighted_average(pair, tmp_path):
    a, b = pair
    written = merge([a, b], [0.6, 0.4], tmp_path / "checkpoints" / "ab")
    assert written.pth == tmp_path / "checkpoints" / "ab" / "ab.pth" and written.config.name == "config.json"
    state = assert_release_layout(written.pth)
    sa = torch.load(a / "G_100.pth", weights_only=True)["model"]
    sb = torch.load(b / "G_100.pth", weights_only=True)["model"]
    for key in ("emb_g.weight", "dec.conv_post.weight_g", "flow.flows.0.enc.in_layers.0.weight_v"):
        assert torch.allclose(state[key], 0.6 * sa[key] + 0.4 * sb[key], atol=1e-7)
    assert json.loads(written.config.read_text())["spk"] == {name: i for i, name in enumerate(SPEAKERS)}
    assert any("speaker lists differ" in note for note in written.notes)
    assert infer(written.pth.parent, written.pth).abs().max() > 0.01


def test_merge_modes():
    assert merge_factors([3, 1], 2, "average") == [0.75, 0.25]
    assert merge_factors([0.6, 0.4], 2, "linear") == [0.6, 0.4]
    soft = merge_factors([0.6, 0.4], 2, "softmax")  # the 4.1 web UI's convex mode on 60 %, 40 %
    assert soft == pytest.approx(torch.softmax(torch.tensor([0.6, 0.4]), 0).tolist())
    with pytest.raises(OptionsError, match="2 models need 2 weights"):
        merge_factors([1.0], 2, "average")
    with pytest.raises(OptionsError, match=">= 0 with a positive sum"):
        merge_factors([1.0, -1.0], 2, "average")


def test_merge_of_different_architectures_is_an_error(pair, checkpoints_dir, tmp_path):
    a, _ = pair
    with pytest.raises(CheckpointError, match="model architecture differs.*vol_embedding"):
        merge([a, checkpoints_dir / "tinyvol"], [1, 1], tmp_path / "bad")
    with pytest.raises(CheckpointError, match="differs"):
        merge([a, checkpoints_dir / "tiny768"], [1, 1], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_cli_merge_and_compress(pair, trained, tmp_path, capsys):
    a, b = pair
    assert main(["merge", str(a), str(b), "--weights", "0.6,0.4", "-o", str(tmp_path / "ab")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "ab" / "ab.pth").is_file() and (tmp_path / "ab" / "config.json").is_file()
    assert main(["compress", str(trained / "G_100.pth"), "-o", str(tmp_path / "r.pth"), "--half"]) == 0
    assert_release_layout(tmp_path / "r.pth", dtype=torch.float16)
    capsys.readouterr()
    assert main(["merge", str(a), str(b), "--weights", "0.6,x", "-o", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --weights must be comma-separated numbers") and err.count("\n") == 1
