"""Speech encoders with their transformer layers (and the conv feature extractor's layers after the
first) in bfloat16: ``--precision bf16`` on a CPU.

The bound: bfloat16 keeps 8 bits of mantissa; on these small random-weight files the features came
out 31.7-42.6 dB from float32 under AMX, AVX512-BF16 (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``) and one
thread (the full-size ContentVec of ``bench/``: 39.0 dB), so 25 dB leaves a margin (the worst error
x1.9) and still fails a model read out one layer off (~0 dB, below).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from encoder_fixtures import make_cnhubert_file, make_contentvec_file, make_dphubert_file, make_hubert_soft_file  # noqa: E402
from encoder_fixtures_b import SMALL_WHISPER_DIMS, make_wavlm_file, make_whisper_file, speech_like  # noqa: E402

import svc.encoders as encoders  # noqa: E402
from svc.encoders import ENCODERS, ContentEncoder, EncoderCache, load_encoder  # noqa: E402
from svc.encoders.registry import EncoderSpec  # noqa: E402
from svc.encoders.wavlm import load_wavlm  # noqa: E402
from svc.encoders.whisper import load_whisper_ppg  # noqa: E402

MIN_SNR_DB = 25.0
HUBERTS = ["vec768l12", "vec256l9", "cnhubertlarge", "hubertsoft", "dphubert"]
WHISPER_SPEC = EncoderSpec("whisper-ppg", "medium.pt", 64, "test", "svc.encoders.whisper:load_whisper_ppg")
WAVLM_SPEC = EncoderSpec("wavlmbase+", "WavLM-Base+.pt", 64, "test", "svc.encoders.wavlm:load_wavlm")


@pytest.fixture(scope="module")
def pretrain(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pretrain_bf16")
    make_contentvec_file(folder / ENCODERS["vec768l12"].filename)
    make_cnhubert_file(folder / ENCODERS["cnhubertlarge"].filename)
    make_hubert_soft_file(folder / ENCODERS["hubertsoft"].filename)
    make_dphubert_file(folder / ENCODERS["dphubert"].filename)
    make_whisper_file(folder / "whisper.pt", {**SMALL_WHISPER_DIMS, "n_audio_ctx": 150}, seed=5)
    make_wavlm_file(folder / "wavlm.pt")
    return folder


def _load(name: str, folder: Path) -> ContentEncoder:
    if name == "whisper-ppg":
        return load_whisper_ppg(folder / "whisper.pt", WHISPER_SPEC)
    if name == "wavlmbase+":
        return load_wavlm(folder / "wavlm.pt", WAVLM_SPEC)
    logging.disable(logging.WARNING)  # the small files' dims differ from the real ones (a warning)
    try:
        return load_encoder(name, folder)
    finally:
        logging.disable(logging.NOTSET)


def snr_db(reference: torch.Tensor, test: torch.Tensor) -> float:
    return (10 * torch.log10(reference.pow(2).sum() / (reference - test).pow(2).sum())).item()


@pytest.mark.parametrize("name", [*HUBERTS, "whisper-ppg", "wavlmbase+"])
def test_bf16_layers_stay_close_to_float32(pretrain: Path, name: str) -> None:
    wav = speech_like(4.0, seed=3)
    full = _load(name, pretrain)
    reduced = _load(name, pretrain).use_bfloat16()
    layers = {id(p) for part in reduced.bfloat16_parts() for p in part.parameters()}
    assert layers, "an encoder with no bfloat16 part would silently stay float32"
    for param in reduced.parameters():
        # the listed layers in bfloat16, everything else (first conv, position conv) float32
        assert param.dtype == (torch.bfloat16 if id(param) in layers else torch.float32)
    a, b = full.encode(wav, 16000), reduced.encode(wav, 16000)
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert snr_db(a, b) > MIN_SNR_DB


def test_bound_fails_a_layer_off(pretrain: Path) -> None:
    wav = speech_like(4.0, seed=3)
    a = _load("vec768l12", pretrain).encode(wav, 16000)
    wrong = _load("vec768l12", pretrain).use_bfloat16()
    wrong.output_layer -= 1  # planted bug: the features of layer 11
    assert snr_db(a, wrong.encode(wav, 16000)) < MIN_SNR_DB - 15


def test_half_on_cpu_follows_bf16_support(pretrain: Path, monkeypatch) -> None:
    monkeypatch.setattr(encoders, "cpu_has_bf16", lambda: False)
    plain = load_encoder("vec256l9", pretrain, half=True)
    assert {p.dtype for p in plain.parameters()} == {torch.float32}
    monkeypatch.setattr(encoders, "cpu_has_bf16", lambda: True)
    reduced = load_encoder("vec256l9", pretrain, half=True)
    assert next(reduced.net.encoder.layers.parameters()).dtype == torch.bfloat16
    assert reduced.net.encoder.pos_conv.weight.dtype == torch.float32
    assert reduced.net.feature_extractor.conv_layers[0].conv.weight.dtype == torch.float32
    assert reduced.net.feature_extractor.conv_layers[1].conv.weight.dtype == torch.bfloat16


def test_cache_keeps_one_precision_per_encoder(pretrain: Path, monkeypatch) -> None:
    monkeypatch.setattr(encoders, "cpu_has_bf16", lambda: True)
    cache = EncoderCache(pretrain)
    full = cache.get("vec256l9")
    reduced = cache.get("vec256l9", half=True)
    assert reduced is not full and cache.get("vec256l9", half=True) is reduced
    assert len(cache._encoders) == 1  # switching precision does not keep both copies
    # moving the bfloat16 one keeps its layers in bfloat16 and its front-end exact
    moved = cache.to("cpu").get("vec256l9", half=True)
    assert next(moved.net.encoder.layers.parameters()).dtype == torch.bfloat16
    assert torch.equal(moved.net.feature_extractor.conv_layers[0].conv.weight,
                       full.net.feature_extractor.conv_layers[0].conv.weight)


def test_attention_falls_back_to_the_math_kernel_once_flash_fails(monkeypatch) -> None:
    """torch's bf16 CPU flash attention fails under ATEN_CPU_CAPABILITY=avx2 on AMX CPUs (some shapes):
    the math kernel takes over from then on; a float32 error is not swallowed."""
    import torch.nn.functional as F

    from svc.encoders import hubert_net

    real, calls = F.scaled_dot_product_attention, []

    def flaky(q, k, v, attn_mask=None):
        calls.append(q.dtype)
        if len(calls) == 1:
            raise RuntimeError("pack_vnni2 is only supported when avx512 is supported")
        return real(q, k, v, attn_mask=attn_mask)

    monkeypatch.setattr(hubert_net._FlashBf16, "failed", False)
    monkeypatch.setattr(hubert_net.F, "scaled_dot_product_attention", flaky)
    q = torch.randn(1, 2, 40, 16, generator=torch.Generator().manual_seed(1)).bfloat16()
    out = hubert_net.scaled_dot_product_attention(q, q, q, None)
    assert snr_db(real(q.float(), q.float(), q.float()), out.float()) > 40  # the math kernel's result
    assert hubert_net._FlashBf16.failed and len(calls) == 2
    hubert_net.scaled_dot_product_attention(q, q, q, None)
    assert len(calls) == 3  # straight to the math kernel now, no second failure
    calls.clear()
    with pytest.raises(RuntimeError):
        hubert_net.scaled_dot_product_attention(q.float(), q.float(), q.float(), None)
