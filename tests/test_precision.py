"""The reduced-precision synthesis option and the fast vocoder forward it runs on."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from conftest import sung_note  # noqa: E402
from model_fixtures import make_checkpoint, make_inputs  # noqa: E402

from svc import ConvertOptions  # noqa: E402
from svc.checkpoint import load_generator  # noqa: E402
from svc.config import ModelConfig  # noqa: E402
from svc.errors import OptionsError  # noqa: E402
from svc.models import nsf_hifigan  # noqa: E402
from svc.precision import cpu_has_bf16, precision_dtype  # noqa: E402
from svc.session import VitsSvc  # noqa: E402

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")
FRAMES = 40


def _snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    noise = (other.double() - reference.double()).pow(2).sum()
    return float(10 * torch.log10(reference.double().pow(2).sum() / noise))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    out = {}
    for variant in ("4.1", "resblock2"):
        folder = make_checkpoint(root / variant, variant)
        cfg = json.loads((folder / "config.json").read_text())
        model = load_generator(folder / "G_100.pth", ModelConfig.from_json(folder / "config.json")).model
        out[variant] = (model, make_inputs(cfg, FRAMES))
    return out


def _infer(model, x):
    audio, _ = model.infer(x["c"], x["f0"], x["uv"], x["g"])
    return audio


@pytest.mark.parametrize("tile", [None, 1024])
@pytest.mark.parametrize("variant", ["4.1", "resblock2"])
def test_fast_forward_equals_the_module_forward(models, variant, tile, monkeypatch):
    if tile is not None:  # force small time tiles, so that several tiles and their halos are used
        monkeypatch.setattr(nsf_hifigan, "MIN_TILE", tile)
        monkeypatch.setattr(nsf_hifigan, "TILE_BYTES", 1)
    model, x = models[variant]
    model.dec.fast = False
    try:
        plain = _infer(model, x)
    finally:
        model.dec.fast = True
    fast = _infer(model, x)
    assert fast.shape == plain.shape == (1, 1, FRAMES * 512)
    assert fast.dtype == torch.float32
    assert (fast - plain).abs().max() <= 1e-5


@needs_bf16
def test_bf16_is_finite_close_to_fp32_and_reversible(models):
    model, x = models["4.1"]
    fp32 = _infer(model, x)
    model.set_precision(torch.bfloat16)
    try:
        bf16 = _infer(model, x)
    finally:
        model.set_precision(torch.float32)
    assert bf16.shape == fp32.shape and bf16.dtype == torch.float32
    assert torch.isfinite(bf16).all()
    assert not torch.equal(bf16, fp32)  # it really ran in bf16
    assert _snr_db(fp32, bf16) >= 25.0
    # Weights stay float32, so going back gives the fp32 output exactly.
    assert torch.equal(_infer(model, x), fp32)


def test_precision_names_and_refusals():
    assert precision_dtype("fp32", "cpu") is torch.float32
    assert precision_dtype(" FP32 ", "cpu") is torch.float32
    with pytest.raises(OptionsError, match="fp16 needs a GPU"):
        precision_dtype("fp16", "cpu")
    with pytest.raises(OptionsError, match="unknown precision 'fp8'; choose one of fp32, bf16, fp16"):
        precision_dtype("fp8", "cpu")
    if not cpu_has_bf16():
        with pytest.raises(OptionsError, match="AVX512-BF16"):
            precision_dtype("bf16", "cpu")


def test_session_rejects_unsupported_precision_and_keeps_the_old_one(checkpoints_dir, pretrain_dir):
    with pytest.raises(OptionsError, match="fp16 needs a GPU"):
        VitsSvc(device="cpu", pretrain_dir=pretrain_dir, precision="fp16")
    session = VitsSvc(device="cpu", pretrain_dir=pretrain_dir)
    assert session.precision == "fp32"
    with pytest.raises(OptionsError):
        session.set_precision("fp16")
    assert session.precision == "fp32"


@needs_bf16
def test_session_converts_in_bf16(checkpoints_dir, pretrain_dir):
    wav = sung_note(1.0)
    session = VitsSvc(device="cpu", pretrain_dir=pretrain_dir, precision="bf16")
    session.load(checkpoints_dir / "tiny41")
    assert session.model.dec.compute_dtype is torch.bfloat16
    bf16 = session.convert(wav, 44100, ConvertOptions(speaker="bob")).audio
    # the speech encoder's transformer layers ran in bfloat16 too, and only that copy is held
    held = session._encoders._encoders
    assert list(held) == [(session.speech_encoder, True)]
    assert {p.dtype for part in held[session.speech_encoder, True].bfloat16_parts()
            for p in part.parameters()} == {torch.bfloat16}
    assert session.set_precision("fp32") == "fp32"
    fp32 = session.convert(wav, 44100, ConvertOptions(speaker="bob")).audio
    assert list(held) == [(session.speech_encoder, False)]
    assert bf16.shape == fp32.shape == (44100,) and np.isfinite(bf16).all()
    assert _snr_db(torch.from_numpy(fp32), torch.from_numpy(bf16)) >= 20.0


@needs_bf16
def test_packed_bf16_convs_equal_plain_bf16_convs():
    from svc.models.conv2d_plan import Conv, ConvTranspose, can_pack

    assert can_pack(torch.bfloat16, torch.device("cpu")) and not can_pack(torch.bfloat16, torch.device("meta"))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 32, 1, 300, generator=gen).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(32, 32, 1, 5, generator=gen).to(torch.bfloat16) * 0.1, torch.randn(32).to(torch.bfloat16)
    plain, packed = Conv(w, b, 1, 4, 2), Conv(w, b, 1, 4, 2, pack=True)
    # Same kernel and inputs; only the fused post-ops round once instead of twice (1 bf16 ulp).
    assert torch.allclose(packed(x, 0.1).float(), plain(x, 0.1).float(), rtol=1e-2, atol=1e-2)
    target = x.clone()
    out = packed.add_to(target, x)
    assert out is target  # fused in place
    assert torch.allclose(out.float(), plain.add_to(x, x).float(), rtol=1e-2, atol=2e-2)
    wt = torch.randn(32, 16, 1, 8, generator=gen).to(torch.bfloat16) * 0.1
    plain_t, packed_t = ConvTranspose(wt, None, 4, 2), ConvTranspose(wt, None, 4, 2, pack=True)
    assert torch.equal(packed_t(x), plain_t(x))


def can_pack_fp32() -> bool:
    from svc.models.conv2d_plan import can_pack

    return can_pack(torch.float32, torch.device("cpu"))


@pytest.mark.skipif(not can_pack_fp32(), reason="no oneDNN")
def test_packed_fp32_convs_equal_plain_fp32_convs():
    from svc.models.conv2d_plan import Conv, ConvTranspose

    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 32, 1, 300, generator=gen).contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(32, 32, 1, 5, generator=gen) * 0.1, torch.randn(32, generator=gen)
    plain, packed = Conv(w, b, 1, 4, 2), Conv(w, b, 1, 4, 2, pack=True)
    assert torch.allclose(packed(x, 0.1), plain(x, 0.1), rtol=0, atol=1e-5)
    assert torch.allclose(packed.add_to(x.clone(), x), plain.add_to(x, x), rtol=0, atol=1e-5)
    wt = torch.randn(32, 16, 1, 8, generator=gen) * 0.1
    plain_t, packed_t = ConvTranspose(wt, None, 4, 2), ConvTranspose(wt, None, 4, 2, pack=True)
    assert torch.allclose(packed_t(x), plain_t(x), rtol=0, atol=1e-5)


@needs_bf16
def test_switching_precision_keeps_each_plan(models):
    model, x = models["resblock2"]
    model.set_precision(torch.bfloat16)
    try:
        first = _infer(model, x)
        plan = model.dec._plans[torch.bfloat16]
        model.set_precision(torch.float32)
        _infer(model, x)
        model.set_precision(torch.bfloat16)
        assert torch.equal(_infer(model, x), first) and model.dec._plans[torch.bfloat16] is plan
    finally:
        model.set_precision(torch.float32)


@needs_bf16
def test_bf16_fixed_shape_chunks_equal_one_call(models, monkeypatch):
    """The bf16 vocoder's fixed-shape chunks (many here: small tiles and granule) give one call's
    output: the same dot products per sample, rounded alike — bit-identical under AMX (2 threads or
    1), 68.6 dB under ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` (another blocking per shape); bound
    50 dB, while audio one sample out of place is far below it."""
    model, x = models["4.1"]
    model.set_precision(torch.bfloat16)
    try:
        monkeypatch.setattr(nsf_hifigan, "MIN_CHUNK", 10**9)  # one call per stage
        direct = _infer(model, x)
        monkeypatch.setattr(nsf_hifigan, "MIN_CHUNK", 32)
        monkeypatch.setattr(nsf_hifigan, "MIN_TILE", 256)
        monkeypatch.setattr(nsf_hifigan, "TILE_BYTES", 1)
        chunked = _infer(model, x)
    finally:
        model.set_precision(torch.float32)
    assert chunked.shape == direct.shape
    assert _snr_db(direct, chunked) >= 50.0
    assert _snr_db(direct, direct.roll(1, -1)) < 30.0
