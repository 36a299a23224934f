"""HuBERT-family encoders (ContentVec, Chinese HuBERT, HuBERT-Soft, DPHuBERT) and the safe unpickler."""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from encoder_fixtures import (  # noqa: E402
    contentvec_model_cfg,
    dphubert_config,
    fairseq_hubert_state,
    make_cnhubert_file,
    make_contentvec_file,
    make_dphubert_file,
    make_hubert_soft_file,
    save_fairseq_checkpoint,
)
from reference_compare import assert_close_to_reference  # noqa: E402

from svc.encoders import ENCODERS, ContentEncoder, EncoderCache, load_encoder  # noqa: E402
from svc.encoders.hubert import FAIRSEQ_GLOBALS, FairseqDictionary  # noqa: E402
from svc.errors import AudioError, WeightFileError  # noqa: E402
from svc.weights import load_torch_file  # noqa: E402

DATA = Path(__file__).parent / "data"
TOL = 1e-4


def _wav(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, n, generator=torch.Generator().manual_seed(seed)) * 0.3


@pytest.fixture(scope="module")
def pretrain(tmp_path_factory) -> Path:
    """A pretrain/ folder with small random files for every encoder of this module."""
    folder = tmp_path_factory.mktemp("pretrain")
    make_contentvec_file(folder / ENCODERS["vec768l12"].filename)
    make_cnhubert_file(folder / ENCODERS["cnhubertlarge"].filename)
    make_hubert_soft_file(folder / ENCODERS["hubertsoft"].filename)
    make_dphubert_file(folder / ENCODERS["dphubert"].filename)
    return folder


# --- transformers' HubertModel as the independent implementation --------------------------------

def _transformers_hubert(state: dict[str, torch.Tensor], cfg: dict):
    transformers = pytest.importorskip("transformers")
    stable = bool(cfg["layer_norm_first"])
    conv = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2
    config = transformers.HubertConfig(
        hidden_size=cfg["encoder_embed_dim"], num_hidden_layers=cfg["encoder_layers"],
        num_attention_heads=cfg["encoder_attention_heads"], intermediate_size=cfg["encoder_ffn_embed_dim"],
        hidden_act="gelu", conv_dim=[c for c, _, _ in conv], conv_kernel=[k for _, k, _ in conv],
        conv_stride=[s for _, _, s in conv], conv_bias=cfg["conv_bias"],
        feat_extract_norm="layer" if cfg["extractor_mode"] == "layer_norm" else "group",
        do_stable_layer_norm=stable, feat_proj_layer_norm=True, num_conv_pos_embeddings=cfg["conv_pos"],
        num_conv_pos_embedding_groups=cfg["conv_pos_groups"], layer_norm_eps=1e-5,
    )
    model = transformers.HubertModel(config).eval()
    mapped = {}
    for key, value in state.items():
        if key in ("label_embs_concat",) or key.startswith("final_proj."):
            continue
        new = {"mask_emb": "masked_spec_embed"}.get(key, key)
        new = re.sub(r"conv_layers\.(\d+)\.0\.", r"conv_layers.\1.conv.", new)
        new = re.sub(r"conv_layers\.(\d+)\.2\.(1\.)?", r"conv_layers.\1.layer_norm.", new)
        new = re.sub(r"^layer_norm\.", "feature_projection.layer_norm.", new)
        new = re.sub(r"^post_extract_proj\.", "feature_projection.projection.", new)
        new = new.replace("encoder.pos_conv.0.bias", "encoder.pos_conv_embed.conv.bias")
        weight_norm = "encoder.pos_conv_embed.conv.parametrizations.weight.original"
        new = new.replace("encoder.pos_conv.0.weight_g", weight_norm + "0")
        new = new.replace("encoder.pos_conv.0.weight_v", weight_norm + "1")
        new = new.replace(".self_attn_layer_norm.", ".layer_norm.").replace(".self_attn.", ".attention.")
        new = new.replace(".fc1.", ".feed_forward.intermediate_dense.").replace(".fc2.", ".feed_forward.output_dense.")
        mapped[new] = value.float()
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected and not missing, (missing, unexpected)
    return model


def test_contentvec_layers_match_transformers(pretrain: Path) -> None:
    state = make_contentvec_file(pretrain / "ref.pt")  # same seed as the encoders' file
    model = _transformers_hubert(state, contentvec_model_cfg())
    wav = _wav(2 * 16000 + 123)
    with torch.no_grad():
        out = model(wav, output_hidden_states=True)
        expected12 = out.last_hidden_state.transpose(1, 2)
        layer9 = out.hidden_states[9]
        expected9 = (layer9 @ state["final_proj.weight"].T + state["final_proj.bias"]).transpose(1, 2)
    vec768 = load_encoder("vec768l12", pretrain)
    vec256 = load_encoder("vec256l9", pretrain)
    got12, got9 = vec768(wav), vec256(wav)
    assert got12.shape == expected12.shape == (1, 64, (wav.shape[1] - 400) // 320 + 1)
    assert got9.shape == expected9.shape == (1, 32, got12.shape[2])
    assert (got12 - expected12).abs().max().item() <= TOL
    assert (got9 - expected9).abs().max().item() <= TOL
    # Layer 9 is really an intermediate layer, not the last one.
    assert (got9 - (expected12.transpose(1, 2) @ state["final_proj.weight"].T).transpose(1, 2)).abs().max() > 0.1


def test_cnhubert_large_matches_transformers(pretrain: Path) -> None:
    state = make_cnhubert_file(pretrain / "ref_cn.pt")
    cfg = contentvec_model_cfg(True, layers=3)
    cfg.update(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)
    model = _transformers_hubert(state, cfg)
    wav = _wav(16000 + 500, seed=1)
    with torch.no_grad():
        expected = model(wav).last_hidden_state.transpose(1, 2)
    got = load_encoder("cnhubertlarge", pretrain)(wav)
    assert got.shape == expected.shape == (1, 64, 51)
    assert (got - expected).abs().max().item() <= TOL


def _soft_to_transformers(state: dict[str, torch.Tensor]):
    transformers = pytest.importorskip("transformers")
    config = transformers.HubertConfig(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, hidden_act="gelu",
        conv_dim=[32] * 7, conv_bias=False, feat_extract_norm="group", do_stable_layer_norm=False,
        feat_proj_layer_norm=True, layer_norm_eps=1e-5,
    )
    model = transformers.HubertModel(config).eval()
    mapped = {"masked_spec_embed": state["masked_spec_embed"]}
    for i in range(7):
        mapped[f"feature_extractor.conv_layers.{i}.conv.weight"] = state[f"feature_extractor.conv{i}.weight"]
    for part in ("weight", "bias"):
        mapped[f"feature_extractor.conv_layers.0.layer_norm.{part}"] = state[f"feature_extractor.norm0.{part}"]
        mapped[f"feature_projection.layer_norm.{part}"] = state[f"feature_projection.norm.{part}"]
        mapped[f"feature_projection.projection.{part}"] = state[f"feature_projection.projection.{part}"]
        mapped[f"encoder.layer_norm.{part}"] = state[f"norm.{part}"]
        for i in range(2):
            src, dst = f"encoder.layers.{i}.", f"encoder.layers.{i}."
            q, k, v = state[src + f"self_attn.in_proj_{part}"].chunk(3)
            mapped[dst + f"attention.q_proj.{part}"] = q
            mapped[dst + f"attention.k_proj.{part}"] = k
            mapped[dst + f"attention.v_proj.{part}"] = v
            mapped[dst + f"attention.out_proj.{part}"] = state[src + f"self_attn.out_proj.{part}"]
            mapped[dst + f"feed_forward.intermediate_dense.{part}"] = state[src + f"linear1.{part}"]
            mapped[dst + f"feed_forward.output_dense.{part}"] = state[src + f"linear2.{part}"]
            mapped[dst + f"layer_norm.{part}"] = state[src + f"norm1.{part}"]
            mapped[dst + f"final_layer_norm.{part}"] = state[src + f"norm2.{part}"]
    pos = "encoder.pos_conv_embed.conv."
    mapped[pos + "bias"] = state["positional_embedding.conv.bias"]
    mapped[pos + "parametrizations.weight.original0"] = state["positional_embedding.conv.weight_g"]
    mapped[pos + "parametrizations.weight.original1"] = state["positional_embedding.conv.weight_v"]
    model.load_state_dict(mapped, strict=True)
    return model


def test_hubert_soft_matches_transformers(pretrain: Path) -> None:
    state = make_hubert_soft_file(pretrain / "ref_soft.pt")
    model = _soft_to_transformers(state)
    wav = _wav(16000 + 700, seed=2)
    with torch.no_grad():
        hidden = model(torch.nn.functional.pad(wav, (40, 40))).last_hidden_state
        expected = (hidden @ state["proj.weight"].T + state["proj.bias"]).transpose(1, 2)
    got = load_encoder("hubertsoft", pretrain)(wav)
    assert got.shape == expected.shape == (1, 16, wav.shape[1] // 320)
    assert (got - expected).abs().max().item() <= TOL


def test_hubert_soft_without_module_prefix(tmp_path: Path, pretrain: Path) -> None:
    make_hubert_soft_file(tmp_path / ENCODERS["hubertsoft"].filename, module_prefix=False)
    wav = _wav(9000, seed=3)
    plain = load_encoder("hubertsoft", tmp_path)(wav)
    prefixed = load_encoder("hubertsoft", pretrain)(wav)
    assert torch.equal(plain, prefixed)


def test_dphubert_matches_reference_code(pretrain: Path) -> None:
    # Expected values: so-vits-svc 4.1's vencoder/dphubert model run on the same fixture file
    # (scratch script, not in the repository).
    wav = torch.from_numpy(np.load(DATA / "dphubert_input.npy"))
    expected = torch.from_numpy(np.load(DATA / "dphubert_expected.npy"))
    got = load_encoder("dphubert", pretrain)(wav)
    assert got.shape == expected.shape == (1, 64, (wav.shape[1] - 400) // 320 + 1)
    # stored features: kernel noise measured 121 dB, 8.8e-7 x peak across kernel paths (README); 20x margin
    assert_close_to_reference(got.detach().numpy(), expected.numpy(), min_snr_db=100, max_rel=2e-5, what="dphubert")


def test_dphubert_wavlm_type_is_refused(tmp_path: Path) -> None:
    config = dphubert_config()
    config["encoder_remaining_heads"] = [[0, 1, 2]] * 3
    torch.save({"config": config, "state_dict": {}}, tmp_path / ENCODERS["dphubert"].filename)
    with pytest.raises(WeightFileError, match="WavLM-type DPHuBERT"):
        load_encoder("dphubert", tmp_path)


@pytest.mark.parametrize("name", ["vec768l12", "vec256l9", "cnhubertlarge", "hubertsoft", "dphubert"])
@pytest.mark.parametrize("seconds", [0.3, 1.0, 31.2])
def test_frame_counts_and_shapes(pretrain: Path, name: str, seconds: float) -> None:
    encoder = load_encoder(name, pretrain)
    assert isinstance(encoder, ContentEncoder) and encoder.name == name
    n = int(seconds * 16000) + 37
    feats = encoder.encode(_wav(n)[0].numpy(), 16000)
    frames = n // 320 if name == "hubertsoft" else (n - 400) // 320 + 1
    assert feats.shape == (1, encoder.dim, frames)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()


def test_encode_resamples_and_is_deterministic(pretrain: Path) -> None:
    encoder = load_encoder("vec768l12", pretrain)
    wav44 = _wav(44100, seed=5)
    a = encoder.encode(wav44, 44100)
    b = encoder.encode(wav44[0], 44100)
    assert a.shape == (1, 64, (16000 - 400) // 320 + 1)
    assert torch.equal(a, b)
    again = load_encoder("vec768l12", pretrain).encode(wav44, 44100)
    assert torch.equal(a, again)


def test_fp16_weights_are_upcast(pretrain: Path, tmp_path: Path) -> None:
    state = make_contentvec_file(tmp_path / "fp16.pt")
    net = load_encoder("vec768l12", pretrain).net
    assert net.post_extract_proj.weight.dtype == torch.float32
    assert torch.equal(net.post_extract_proj.weight, state["post_extract_proj.weight"])


def test_args_namespace_and_legacy_format_give_same_features(pretrain: Path, tmp_path: Path) -> None:
    make_contentvec_file(tmp_path / ENCODERS["vec768l12"].filename, use_args=True, legacy_format=True)
    wav = _wav(12000, seed=6)
    assert torch.equal(load_encoder("vec768l12", tmp_path)(wav), load_encoder("vec768l12", pretrain)(wav))


def test_too_short_audio_is_an_audio_error(pretrain: Path) -> None:
    with pytest.raises(AudioError, match="too short"):
        load_encoder("vec768l12", pretrain).encode(np.zeros(300, np.float32), 16000)


def test_cache_reuses_and_moves(pretrain: Path) -> None:
    cache = EncoderCache(pretrain)
    first = cache.get("vec256l9")
    assert cache.get("vec256l9") is first and "vec256l9" in cache and "vec768l12" not in cache
    assert cache.to("cpu").get("vec256l9").device == torch.device("cpu")
    cache.clear()
    assert "vec256l9" not in cache


# --- errors -------------------------------------------------------------------------------------

def test_missing_file_names_file_folder_and_source(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError) as err:
        load_encoder("vec768l12", tmp_path)
    message = str(err.value)
    assert "checkpoint_best_legacy_500.pt" in message and str(tmp_path) in message
    assert "ibm.ent.box.com" in message


def test_whisper_file_where_contentvec_is_expected(tmp_path: Path) -> None:
    torch.save({"dims": {"n_mels": 80}, "model_state_dict": {"encoder.conv1.weight": torch.zeros(2, 80, 3)}},
               tmp_path / ENCODERS["vec768l12"].filename)
    with pytest.raises(WeightFileError, match="not a ContentVec checkpoint.*Whisper"):
        load_encoder("vec768l12", tmp_path)


def test_contentvec_file_where_hubert_soft_is_expected(tmp_path: Path) -> None:
    make_contentvec_file(tmp_path / ENCODERS["hubertsoft"].filename)
    with pytest.raises(WeightFileError, match="not a HuBERT-Soft state dict"):
        load_encoder("hubertsoft", tmp_path)


def test_shape_mismatch_is_reported(tmp_path: Path) -> None:
    cfg = contentvec_model_cfg()
    state = fairseq_hubert_state(cfg)
    cfg["encoder_ffn_embed_dim"] = 100  # config disagrees with the tensors
    save_fairseq_checkpoint(tmp_path / ENCODERS["vec768l12"].filename, cfg, state)
    with pytest.raises(WeightFileError, match="shape mismatch.*fc1.weight"):
        load_encoder("vec768l12", tmp_path)


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    make_contentvec_file(tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / ENCODERS["vec768l12"].filename).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileError, match="damaged, truncated"):
        load_encoder("vec768l12", tmp_path)


# --- the restricted unpickler -------------------------------------------------------------------

class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_unpickler_refuses_code(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": _RunsCode(marker)}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(WeightFileError, match=r"refusing to load .*evil\.pt.*Python class .*system.*could run code"):
        load_torch_file(path, "a ContentVec checkpoint", FAIRSEQ_GLOBALS)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_unpickler_admits_fairseq_dictionary_as_data(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "cv.pt"
    make_contentvec_file(path, legacy_format=legacy)
    raw = path.read_bytes()
    if not legacy:
        with zipfile.ZipFile(path) as z:
            raw = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    # torch.save pickles with protocol 2: the GLOBAL opcode names module and class.
    assert b"cfairseq.data.dictionary\nDictionary\n" in raw
    assert "fairseq" not in sys.modules
    ckpt = load_torch_file(path, "a ContentVec checkpoint", FAIRSEQ_GLOBALS)
    dictionary = ckpt["task_state"]["dictionaries"][0]
    assert isinstance(dictionary, FairseqDictionary)
    assert dictionary.symbols[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert "fairseq" not in sys.modules



@pytest.mark.parametrize("name", ["vec768l12", "hubertsoft", "dphubert"])
def test_conv_features_in_tiles_equal_one_pass(pretrain: Path, name: str, monkeypatch) -> None:
    """The tiled conv stack (inference) gives the one-pass result, group norm statistics included."""
    from svc.encoders import hubert_net

    extractor = next(m for m in load_encoder(name, pretrain).modules() if isinstance(m, hubert_net.FeatureExtractor))
    wav = _wav(int(1.7 * 16000))
    with torch.enable_grad():  # autograd on: the plain one-pass forward
        whole = extractor(wav).detach()
    monkeypatch.setattr(hubert_net, "EXTRACTOR_TILE", 7)  # many tiles, the last one short
    with torch.no_grad():
        tiled = extractor(wav)
    assert tiled.shape == whole.shape and whole.shape[-1] > 7 * 5
    # float32 sums in another order, the statistics in float64 (1e-6 of the peak; a tile off by one
    # input sample or statistics of one tile only are 1e-2 and more)
    assert float((tiled - whole).abs().max()) <= 1e-5 * float(whole.abs().max())
