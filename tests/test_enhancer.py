"""NSF-HiFiGAN enhancer against so-vits-svc 4.1's Enhancer on the same random-weight file and inputs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from enhancer_fixtures import TINY_CONFIG, enhancer_inputs, write_tiny_nsf_hifigan  # noqa: E402
from reference_compare import assert_close_to_reference  # noqa: E402

from svc.enhancer import Enhancer, MelSpectrogram, adaptive_sample_rate  # noqa: E402
from svc.enhancer_net import HifiganConfig  # noqa: E402
from svc.errors import ConfigError, WeightFileError  # noqa: E402

# Kernel noise across CPUs and kernel paths measured 108.6 dB, 1.14e-5 x peak (README; bit-exact on
# the AMD machine that stored it); 17x margin.
BOUNDS = {"min_snr_db": 90.0, "max_rel": 2e-4}
REFERENCE = np.load(Path(__file__).parent / "data" / "enhancer_reference.npz")


@pytest.fixture(scope="module")
def enhancer(tmp_path_factory: pytest.TempPathFactory) -> Enhancer:
    pretrain = tmp_path_factory.mktemp("pretrain")
    write_tiny_nsf_hifigan(pretrain)
    return Enhancer.from_pretrain(pretrain)


@pytest.mark.parametrize("key", [0, 3, -2])
def test_matches_reference_enhancer(enhancer: Enhancer, key: int) -> None:
    audio, sr, f0, hop = enhancer_inputs()
    f0_before = f0.copy()
    out = enhancer.enhance(torch.from_numpy(audio), sr, f0, hop, key, generator=torch.Generator().manual_seed(1234))
    expected = REFERENCE[f"key{key}"]
    assert out.shape == (len(audio),)  # the reference's output is up to a hop shorter
    n = len(expected)
    assert_close_to_reference(out.numpy()[:n], expected, **BOUNDS, what=f"enhancer key {key}")
    assert torch.all(out[n:] == 0)
    np.testing.assert_array_equal(f0, f0_before)  # the caller's F0 is left alone


def test_global_rng_and_generator_agree(enhancer: Enhancer) -> None:
    audio, sr, f0, hop = enhancer_inputs()
    torch.manual_seed(7)
    a = enhancer.enhance(torch.from_numpy(audio), sr, torch.from_numpy(f0), hop)
    b = enhancer.enhance(torch.from_numpy(audio), sr, f0, hop, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_other_input_rate_returns_input_rate(enhancer: Enhancer) -> None:
    audio, sr, f0, hop = enhancer_inputs()
    wav = torch.from_numpy(audio)
    up = torch.nn.functional.interpolate(wav[None, None], scale_factor=1.5, mode="linear")[0, 0]
    out = enhancer.enhance(up, 12000, f0, hop * 3 // 2, generator=torch.Generator().manual_seed(0))
    assert out.shape == up.shape and torch.isfinite(out).all() and out.abs().max() > 0


def test_adaptive_sample_rate() -> None:
    assert adaptive_sample_rate(44100, 0) == 44100
    assert adaptive_sample_rate(44100, 12) == 88200
    assert adaptive_sample_rate(44100, -12) == 22000  # 22050 rounded to 100 Hz (np.round: half to even)
    assert adaptive_sample_rate(8000, 3) == 9500


def test_mel_matches_nvstft_shape_and_floor() -> None:
    cfg = HifiganConfig.from_dict(TINY_CONFIG)
    mel = MelSpectrogram(cfg)(torch.zeros(1, 1000))
    assert mel.shape == (1, cfg.num_mels, 1000 // cfg.hop_size)
    assert torch.allclose(mel, torch.full_like(mel, float(np.log(1e-5))), atol=1e-3)
    short = MelSpectrogram(cfg)(torch.randn(1, 100))  # shorter than a window: zero padding, no crash
    assert short.shape == (1, cfg.num_mels, 1)


def test_missing_weights_name_the_file_and_release(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match="nsf_hifigan/model.*nsf_hifigan_20221211.zip"):
        Enhancer.from_pretrain(tmp_path)
    write_tiny_nsf_hifigan(tmp_path)
    (tmp_path / "nsf_hifigan" / "config.json").unlink()
    with pytest.raises(WeightFileError, match="config.json"):
        Enhancer.from_pretrain(tmp_path)


def test_bad_files(tmp_path: Path) -> None:
    model = write_tiny_nsf_hifigan(tmp_path)
    config = model.parent / "config.json"
    cfg = json.loads(config.read_text())
    config.write_text(json.dumps({**cfg, "upsample_initial_channel": 64}))
    with pytest.raises(WeightFileError, match="does not match its config.json"):
        Enhancer.from_pretrain(tmp_path)
    config.write_text(json.dumps({k: v for k, v in cfg.items() if k != "hop_size"}))
    with pytest.raises(ConfigError, match="'hop_size'"):
        Enhancer.from_pretrain(tmp_path)
    config.write_text(json.dumps({**cfg, "hop_size": 100}))
    with pytest.raises(ConfigError, match="product of upsample_rates"):
        Enhancer.from_pretrain(tmp_path)
    config.write_text("{not json")
    with pytest.raises(ConfigError, match="Cannot read"):
        Enhancer.from_pretrain(tmp_path)
    config.write_text(json.dumps(cfg))
    model.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightFileError, match="cannot be read as an NSF-HiFiGAN checkpoint"):
        Enhancer.from_pretrain(tmp_path)
    torch.save({"model": {}}, model)
    with pytest.raises(WeightFileError, match="no 'generator'"):
        Enhancer.from_pretrain(tmp_path)
    torch.save({"generator": {"conv_pre.weight_v": torch.zeros(32, 16, 7)}}, model)
    with pytest.raises(WeightFileError, match=r"does not match its config.json .*: missing 'conv_pre.weight_g'"):
        Enhancer.from_pretrain(tmp_path)
