"""Whisper PPG and WavLM content encoders, on small random-weight files in the release formats.

Checked against: outputs of the so-vits-svc 4.1 reference encoders (``vencoder/WhisperPPG.py``,
``vencoder/WavLMBasePlus.py``) run once on the same fixture files and stored in
``tests/data/encoders_b_reference.npz``; and the ``transformers`` WhisperEncoder / WavLMModel
loaded with the same weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from encoder_fixtures_b import (  # noqa: E402
    SMALL_WAVLM_CFG,
    SMALL_WHISPER_DIMS,
    make_wavlm_file,
    make_whisper_file,
    speech_like,
)
from reference_compare import assert_close_to_reference  # noqa: E402

from svc.encoders.hubert_net import parse_conv_layers  # noqa: E402
from svc.encoders.registry import EncoderSpec  # noqa: E402
from svc.encoders.wavlm import WavLMConfig, load_wavlm  # noqa: E402
from svc.encoders.whisper import load_whisper_ppg, plan_windows  # noqa: E402
from svc.encoders.whisper_audio import log_mel_spectrogram  # noqa: E402
from svc.errors import WeightFileError  # noqa: E402

REFERENCE = Path(__file__).parent / "data" / "encoders_b_reference.npz"
WHISPER_SPEC = EncoderSpec("whisper-ppg", "medium.pt", 64, "test", "svc.encoders.whisper:load_whisper_ppg")
WAVLM_SPEC = EncoderSpec("wavlmbase+", "WavLM-Base+.pt", 64, "test", "svc.encoders.wavlm:load_wavlm")
# Stored reference features: float32 kernel noise across CPUs and kernel paths measured up to 106 dB,
# 7.2e-6 x peak (ATEN_CPU_CAPABILITY=default); the bound keeps a 14x margin.
FEATURE_MIN_SNR_DB = 85.0
FEATURE_MAX_REL = 1e-4
SHORT_CTX_DIMS = {**SMALL_WHISPER_DIMS, "n_audio_ctx": 150}  # 3-s windows: cheap stitching tests


@pytest.fixture(scope="module")
def whisper_file(tmp_path_factory) -> Path:
    return make_whisper_file(tmp_path_factory.mktemp("whisper") / "medium.pt")


@pytest.fixture(scope="module")
def whisper(whisper_file):
    return load_whisper_ppg(whisper_file, WHISPER_SPEC)


@pytest.fixture(scope="module")
def short_whisper(tmp_path_factory):
    path = make_whisper_file(tmp_path_factory.mktemp("whisper3s") / "medium.pt", SHORT_CTX_DIMS, seed=5)
    return load_whisper_ppg(path, WHISPER_SPEC)


@pytest.fixture(scope="module")
def wavlm_file(tmp_path_factory) -> Path:
    return make_wavlm_file(tmp_path_factory.mktemp("wavlm") / "WavLM-Base+.pt")


@pytest.fixture(scope="module")
def wavlm(wavlm_file):
    return load_wavlm(wavlm_file, WAVLM_SPEC)


def run(model, wav: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(wav)


# ---------------------------------------------------------------- transformers twins


def hf_whisper_encoder(path: Path):
    """transformers' WhisperEncoder holding the encoder weights of a whisper file."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    data = torch.load(path, weights_only=True)
    dims, state = data["dims"], data["model_state_dict"]
    config = WhisperConfig(
        num_mel_bins=dims["n_mels"], max_source_positions=dims["n_audio_ctx"], d_model=dims["n_audio_state"],
        encoder_attention_heads=dims["n_audio_head"], encoder_layers=dims["n_audio_layer"],
        encoder_ffn_dim=4 * dims["n_audio_state"],
    )
    names = {"attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj", "attn.value": "self_attn.v_proj",
             "attn.out": "self_attn.out_proj", "attn_ln": "self_attn_layer_norm", "mlp.0": "fc1",
             "mlp.2": "fc2", "mlp_ln": "final_layer_norm"}
    mapped = {}
    for key, value in state.items():
        if not key.startswith("encoder."):
            continue
        key = key[len("encoder."):].replace("blocks.", "layers.").replace("ln_post", "layer_norm")
        key = key.replace("positional_embedding", "embed_positions.weight")
        for old, new in names.items():
            key = key.replace(f".{old}.", f".{new}.")
        mapped[key] = value.float()
    encoder = WhisperEncoder(config).eval()
    encoder.load_state_dict(mapped, strict=True)
    return encoder


def hf_whisper_features(wav: torch.Tensor, chunk_seconds: int) -> torch.Tensor:
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=chunk_seconds)
    feats = extractor(wav[0].numpy(), sampling_rate=16000, return_tensors="pt").input_features
    return feats.float()


def hf_wavlm(path: Path):
    """transformers' WavLMModel holding the weights of a WavLM release file."""
    from transformers import WavLMConfig as HFConfig
    from transformers import WavLMModel

    data = torch.load(path, weights_only=True)
    cfg, state = data["cfg"], data["model"]
    convs = parse_conv_layers(cfg["conv_feature_layers"])
    config = HFConfig(
        hidden_size=cfg["encoder_embed_dim"], num_hidden_layers=cfg["encoder_layers"],
        num_attention_heads=cfg["encoder_attention_heads"], intermediate_size=cfg["encoder_ffn_embed_dim"],
        conv_dim=[c[0] for c in convs], conv_kernel=[c[1] for c in convs], conv_stride=[c[2] for c in convs],
        conv_bias=cfg["conv_bias"], feat_extract_norm="group" if cfg["extractor_mode"] == "default" else "layer",
        num_conv_pos_embeddings=cfg["conv_pos"], num_conv_pos_embedding_groups=cfg["conv_pos_groups"],
        num_buckets=cfg["num_buckets"], max_bucket_distance=cfg["max_distance"],
        do_stable_layer_norm=cfg["layer_norm_first"], hidden_dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
    )
    model = WavLMModel(config).eval()
    layer_names = {
        "self_attn.grep_linear": "attention.gru_rel_pos_linear",
        "self_attn.grep_a": "attention.gru_rel_pos_const",
        "self_attn.relative_attention_bias": "attention.rel_attn_embed",
        "self_attn_layer_norm": "layer_norm",
        "self_attn.": "attention.",
        "fc1": "feed_forward.intermediate_dense",
        "fc2": "feed_forward.output_dense",
    }
    own_keys = set(model.state_dict())
    g_key = next(k for k in own_keys if "pos_conv_embed" in k and ("weight_g" in k or "original0" in k))
    v_key = next(k for k in own_keys if "pos_conv_embed" in k and ("weight_v" in k or "original1" in k))
    mapped = {}
    for key, value in state.items():
        if key == "mask_emb":
            key = "masked_spec_embed"
        elif key.startswith("feature_extractor."):
            parts = key.split(".")
            parts[3] = {"0": "conv", "2": "layer_norm"}[parts[3]]
            if parts[4] == "1":  # layer_norm mode: conv_layers.i.2.1.weight
                del parts[4]
            key = ".".join(parts)
        elif key.startswith("layer_norm."):
            key = "feature_projection." + key
        elif key.startswith("post_extract_proj."):
            key = key.replace("post_extract_proj", "feature_projection.projection")
        elif key == "encoder.pos_conv.0.weight_g":
            key = g_key
        elif key == "encoder.pos_conv.0.weight_v":
            key = v_key
        elif key == "encoder.pos_conv.0.bias":
            key = "encoder.pos_conv_embed.conv.bias"
        elif key.startswith("encoder.layers."):
            for old, new in layer_names.items():
                if f".{old}" in key:
                    key = key.replace(f".{old}", f".{new}", 1)
                    break
        mapped[key] = value
    model.load_state_dict(mapped, strict=True)
    return model


# ---------------------------------------------------------------- whisper


def test_whisper_equals_reference_outputs(whisper):
    expected = np.load(REFERENCE)
    for key, seconds, seed in (("whisper_0.5s", 0.5, 1), ("whisper_2s", 2.0, 2)):
        out = run(whisper, speech_like(seconds, seed=seed))
        assert out.shape == (1, 64, expected[key].shape[1])
        assert_close_to_reference(out[0].numpy(), expected[key], min_snr_db=FEATURE_MIN_SNR_DB,
                                  max_rel=FEATURE_MAX_REL, what=key)


@pytest.mark.parametrize("seconds", [0.5, 10.0, 30.0])
def test_whisper_matches_transformers(whisper, whisper_file, seconds):
    wav = speech_like(seconds, seed=3)
    hf = hf_whisper_encoder(whisper_file)
    with torch.inference_mode():
        want = hf(hf_whisper_features(wav, 30)).last_hidden_state[:, : wav.shape[1] // 320].transpose(1, 2)
    got = run(whisper, wav)
    assert got.shape == want.shape == (1, 64, wav.shape[1] // 320)
    assert (got - want).abs().max().item() <= 1e-4


@pytest.mark.parametrize("samples", [319, 320, 8000, 160000, 480000, 480001, 480320, 560000])
def test_whisper_frame_count(whisper, samples):
    wav = speech_like(samples / 16000, seed=4)
    assert run(whisper, wav).shape == (1, 64, samples // 320)


def test_whisper_long_input_is_stitched_from_windows(whisper, whisper_file):
    """35 s: frames are cross-faded outputs of 30-s windows of one global log-Mel (transformers encoder)."""
    wav = speech_like(35.0, seed=6)
    got = run(whisper, wav)
    n_frames = wav.shape[1] // 320
    assert got.shape == (1, 64, n_frames) and torch.isfinite(got).all()
    hf = hf_whisper_encoder(whisper_file)
    mel = log_mel_spectrogram(wav[0], whisper.mel_filters)
    windows = plan_windows(n_frames, 1500, whisper.context_frames)
    assert [(w.start, w.keep_from, w.keep_to) for w in windows] == [(0, 0, 1250), (250, 1250, 1750)]
    with torch.inference_mode():
        a, b = (hf(mel[None, :, 2 * w.start : 2 * w.start + 3000]).last_hidden_state[0] for w in windows)
    h = whisper.half_fade_frames
    assert h == 12
    assert (got[0, :, : 1250 - h].T - a[: 1250 - h]).abs().max() <= 1e-4
    assert (got[0, :, 1250 + h :].T - b[1250 + h - 250 :]).abs().max() <= 1e-4
    ramp = (torch.arange(1250 - h, 1250 + h) - 1250 + h + 0.5) / (2 * h)
    blend = (1 - ramp)[:, None] * a[1250 - h : 1250 + h] + ramp[:, None] * b[1000 - h : 1000 + h]
    assert (got[0, :, 1250 - h : 1250 + h].T - blend).abs().max() <= 1e-4


@pytest.mark.parametrize("n_frames", [151, 200, 251, 400, 1001])
@pytest.mark.parametrize("half_fade", [0, 1, 12])
def test_window_weights_sum_to_one(n_frames, half_fade):
    n_ctx = 150
    total = torch.zeros(n_frames)
    for w in plan_windows(n_frames, n_ctx, 25):
        total[w.start : w.start + n_ctx] += w.weights(n_ctx, n_frames, half_fade)
    assert torch.allclose(total, torch.ones(n_frames), atol=1e-6)


@pytest.mark.parametrize("n_frames", [1, 149, 150, 151, 200, 250, 251, 400, 1001])
def test_plan_windows_covers_once_with_context(n_frames):
    n_ctx, context = 150, 25
    windows = plan_windows(n_frames, n_ctx, context)
    assert windows[0].keep_from == 0 and windows[-1].keep_to == n_frames
    for prev, nxt in zip(windows[:-1], windows[1:], strict=True):
        assert prev.keep_to == nxt.keep_from
    for i, w in enumerate(windows):
        assert 0 <= w.start and w.start + n_ctx <= max(n_frames, n_ctx)
        assert w.start <= w.keep_from < w.keep_to <= w.start + n_ctx
        if i > 0:
            assert w.keep_from - w.start >= context
        if i < len(windows) - 1:
            assert w.start + n_ctx - w.keep_to >= context


def test_whisper_short_window_matches_transformers(short_whisper, tmp_path):
    """A 150-position model: the window is 3 s, ≤ 3 s equals pad-to-3-s + encoder + [:N//320]."""
    path = make_whisper_file(tmp_path / "m.pt", SHORT_CTX_DIMS, seed=5)
    hf = hf_whisper_encoder(path)
    for seconds in (0.5, 2.99):
        wav = speech_like(seconds, seed=8)
        with torch.inference_mode():
            want = hf(hf_whisper_features(wav, 3)).last_hidden_state[:, : wav.shape[1] // 320].transpose(1, 2)
        got = run(short_whisper, wav)
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= 1e-4
    for seconds in (3.5, 10.0):
        wav = speech_like(seconds, seed=9)
        assert run(short_whisper, wav).shape == (1, 64, wav.shape[1] // 320)


def test_whisper_is_deterministic_and_encodes_other_rates(whisper):
    wav = speech_like(1.0, seed=10)
    assert torch.equal(run(whisper, wav), run(whisper, wav))
    wav44 = speech_like(1.0, seed=10, sr=44100)
    out = whisper.encode(wav44, 44100)
    assert out.shape == (1, 64, 50) and not out.requires_grad


def test_whisper_ignores_decoder_and_upcasts_fp16(whisper, whisper_file):
    data = torch.load(whisper_file, weights_only=True)
    assert any(k.startswith("decoder.") for k in data["model_state_dict"])
    assert data["model_state_dict"]["encoder.conv1.weight"].dtype == torch.float16
    params = dict(whisper.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())
    assert not any("decoder" in k for k in whisper.state_dict())
    stored = data["model_state_dict"]["encoder.positional_embedding"].float()
    assert torch.equal(whisper.encoder.positional_embedding, stored)


# ---------------------------------------------------------------- wavlm


def test_wavlm_equals_reference_outputs(wavlm):
    expected = np.load(REFERENCE)["wavlm_2s"]
    out = run(wavlm, speech_like(2.0, seed=2))
    assert out.shape == (1, 64, expected.shape[1])
    assert_close_to_reference(out[0].numpy(), expected, min_snr_db=FEATURE_MIN_SNR_DB, max_rel=FEATURE_MAX_REL,
                              what="wavlm_2s")


@pytest.mark.parametrize("seconds", [0.5, 3.0])
def test_wavlm_matches_transformers(wavlm, wavlm_file, seconds):
    wav = speech_like(seconds, seed=11)
    with torch.inference_mode():
        want = hf_wavlm(wavlm_file)(wav).last_hidden_state.transpose(1, 2)
    got = run(wavlm, wav)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-4


def test_wavlm_prenorm_layer_norm_extractor_matches_transformers(tmp_path):
    cfg = {**SMALL_WAVLM_CFG, "extractor_mode": "layer_norm", "layer_norm_first": True, "conv_bias": True}
    path = make_wavlm_file(tmp_path / "w.pt", cfg, seed=3)
    model = load_wavlm(path, WAVLM_SPEC)
    wav = speech_like(1.0, seed=12)
    with torch.inference_mode():
        want = hf_wavlm(path)(wav).last_hidden_state.transpose(1, 2)
    assert (run(model, wav) - want).abs().max().item() <= 1e-4


@pytest.mark.parametrize("samples", [50, 399, 400, 719, 720, 8000, 16000, 48000])
def test_wavlm_frame_count_and_determinism(wavlm, samples):
    wav = speech_like(samples / 16000, seed=13)
    out = run(wavlm, wav)
    # conv stack: 10/5 then six stride-2 layers -> frames = floor((N - 400) / 320) + 1
    assert wavlm.receptive_field == 400
    assert out.shape == (1, 64, max(0, (samples - 400) // 320 + 1))
    assert torch.equal(out, run(wavlm, wav))


def test_wavlm_hyperparameters_come_from_cfg(tmp_path):
    defaults = WavLMConfig.from_cfg({})
    assert (defaults.relative_position_embedding, defaults.max_distance, defaults.gru_rel_pos) == (False, 1280, False)
    model = load_wavlm(make_wavlm_file(tmp_path / "w.pt"), WAVLM_SPEC)
    assert model.cfg.max_distance == 800 and model.cfg.gru_rel_pos and model.cfg.relative_position_embedding
    assert model.encoder.layers[0].self_attn.relative_attention_bias is not None
    assert model.encoder.layers[1].self_attn.relative_attention_bias is None
    # a file without relative bias/gating (the class defaults) has none of those keys, and loads
    plain = {**SMALL_WAVLM_CFG, "relative_position_embedding": False, "gru_rel_pos": False}
    plain_model = load_wavlm(make_wavlm_file(tmp_path / "p.pt", plain), WAVLM_SPEC)
    assert run(plain_model, speech_like(0.5)).shape == (1, 64, 24)


def test_wavlm_normalize_applies_input_layer_norm(tmp_path):
    # the default extractor (GroupNorm, no conv bias) is almost blind to input scale and offset
    cfg = {**SMALL_WAVLM_CFG, "normalize": True, "extractor_mode": "layer_norm", "conv_bias": True}
    path = make_wavlm_file(tmp_path / "n.pt", cfg, seed=4)
    normalising = load_wavlm(path, WAVLM_SPEC)
    data = torch.load(path, weights_only=True)
    plain = make_wavlm_file(tmp_path / "p.pt", {**data["cfg"], "normalize": False}, seed=4)
    raw = load_wavlm(plain, WAVLM_SPEC)
    wav = speech_like(1.0, seed=14) * 3 + 0.2
    normed = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-5)
    assert (run(normalising, wav) - run(raw, normed)).abs().max() <= 1e-5
    assert (run(normalising, wav) - run(raw, wav)).abs().max() > 1e-2


def test_parse_conv_layers_is_literal_only():
    assert parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2") == (
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    )
    with pytest.raises(ValueError):
        parse_conv_layers("__import__('os').getcwd()")


# ---------------------------------------------------------------- bad files


class _FakeDictionary:  # stands for fairseq's Dictionary in a ContentVec checkpoint
    pass


def test_contentvec_like_file_is_rejected_by_both(tmp_path):
    path = tmp_path / "medium.pt"
    torch.save({"cfg": {"model": {}}, "model": {"x": torch.zeros(1)},
                "task_state": {"dictionaries": [_FakeDictionary()]}}, path)
    for loader, spec in ((load_whisper_ppg, WHISPER_SPEC), (load_wavlm, WAVLM_SPEC)):
        with pytest.raises(WeightFileError) as err:
            loader(path, spec)
        assert str(path) in str(err.value) and spec.filename in str(err.value)
        assert "contains the Python class" in str(err.value) and "_FakeDictionary" in str(err.value)


def test_plain_file_of_the_wrong_kind(tmp_path, whisper_file, wavlm_file):
    with pytest.raises(WeightFileError, match="lacks 'dims'"):
        load_whisper_ppg(wavlm_file, WHISPER_SPEC)
    with pytest.raises(WeightFileError, match="lacks 'cfg'"):
        load_wavlm(whisper_file, WAVLM_SPEC)
    state_only = tmp_path / "state.pt"
    torch.save([torch.zeros(3)], state_only)
    with pytest.raises(WeightFileError, match="not a dict"):
        load_whisper_ppg(state_only, WHISPER_SPEC)


def test_wrong_dimension_is_named(whisper_file, wavlm_file):
    with pytest.raises(WeightFileError, match="64-dim whisper encoder but whisper-ppg needs 1024"):
        load_whisper_ppg(whisper_file, EncoderSpec("whisper-ppg", "medium.pt", 1024, "src", "x:y"))
    with pytest.raises(WeightFileError, match="64-dim WavLM but wavlmbase\\+ needs 768"):
        load_wavlm(wavlm_file, EncoderSpec("wavlmbase+", "WavLM-Base+.pt", 768, "src", "x:y"))


@pytest.mark.parametrize("damage", ["truncate", "text", "missing"])
def test_corrupt_files(tmp_path, whisper_file, damage):
    path = tmp_path / "medium.pt"
    if damage == "truncate":
        path.write_bytes(whisper_file.read_bytes()[:5000])
    elif damage == "text":
        path.write_text("<html>404 Not Found</html>")
    with pytest.raises(WeightFileError) as err:
        load_whisper_ppg(path, WHISPER_SPEC)
    assert str(path) in str(err.value) and "medium.pt" in str(err.value)
    assert ("does not exist" if damage == "missing" else "damaged, truncated") in str(err.value)


def test_mismatched_tensors_are_named(tmp_path):
    data = {"dims": dict(SMALL_WHISPER_DIMS), "model_state_dict": {}}
    source = torch.load(make_whisper_file(tmp_path / "a.pt"), weights_only=True)["model_state_dict"]
    data["model_state_dict"] = {k: v for k, v in source.items() if k != "encoder.ln_post.bias"}
    torch.save(data, tmp_path / "missing.pt")
    with pytest.raises(WeightFileError, match="encoder|ln_post"):
        load_whisper_ppg(tmp_path / "missing.pt", WHISPER_SPEC)
    data["model_state_dict"] = {**source, "encoder.conv1.weight": torch.zeros(64, 80, 5)}
    torch.save(data, tmp_path / "shape.pt")
    with pytest.raises(WeightFileError, match="conv1.weight"):
        load_whisper_ppg(tmp_path / "shape.pt", WHISPER_SPEC)
    bad_dims = {"dims": {**SMALL_WHISPER_DIMS, "n_mels": "80"}, "model_state_dict": source}
    torch.save(bad_dims, tmp_path / "dims.pt")
    with pytest.raises(WeightFileError, match="dims"):
        load_whisper_ppg(tmp_path / "dims.pt", WHISPER_SPEC)


def test_half_precision_models_return_float32(short_whisper, wavlm):
    import copy

    for model, seconds in ((short_whisper, 4.0), (wavlm, 1.0)):
        wav = speech_like(seconds, seed=15)
        full = run(model, wav)
        half = run(copy.deepcopy(model).half(), wav)
        assert half.dtype == torch.float32 and half.shape == full.shape
        assert (half - full).abs().max() < 0.05
