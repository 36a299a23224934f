"""Test-wide settings: stay offline, keep torch deterministic and small."""

import os

# Before anything imports gradio / huggingface_hub: never call home from tests.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


# --- shared fixtures: a pretrain/ folder and a checkpoints/ folder with tiny random models -------

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from encoder_fixtures import contentvec_model_cfg, fairseq_hubert_state, save_fairseq_checkpoint  # noqa: E402
from model_fixtures import make_checkpoint  # noqa: E402

SPEAKERS = ("alice", "bob", "carol")


def write_test_contentvec(path: Path, wide: bool = False) -> None:
    """A ContentVec file for pipeline tests: final_proj gives the real 256 dims (vec256l9).

    ``wide`` also gives layer 12 the real 768 dims (vec768l12), at several times the cost.
    """
    cfg = contentvec_model_cfg(small=True, layers=12)
    cfg.update(final_dim=256)
    if wide:
        cfg.update(encoder_embed_dim=768, encoder_ffn_embed_dim=64, encoder_attention_heads=12)
    state = fairseq_hubert_state(cfg, seed=11)
    save_fairseq_checkpoint(path, cfg, {k: v.half() for k, v in state.items()})


@pytest.fixture(scope="session")
def pretrain_dir(tmp_path_factory) -> Path:
    """A pretrain/ folder holding a small test ContentVec (serves vec256l9 models)."""
    folder = tmp_path_factory.mktemp("pretrain")
    write_test_contentvec(folder / "checkpoint_best_legacy_500.pt")
    return folder


@pytest.fixture(scope="session")
def pretrain_dir_768(tmp_path_factory) -> Path:
    """A pretrain/ folder whose test ContentVec also serves vec768l12 models."""
    folder = tmp_path_factory.mktemp("pretrain768")
    write_test_contentvec(folder / "checkpoint_best_legacy_500.pt", wide=True)
    return folder


# The fast test models use the 256-dim content of vec256l9; "tiny768" is the 4.1 default encoder.
FAST_41 = {"speech_encoder": "vec256l9", "ssl_dim": 256}


@pytest.fixture(scope="session")
def checkpoints_dir(tmp_path_factory) -> Path:
    """checkpoints/ with small 4.1 ("tiny41"), vol_embedding ("tinyvol"), 4.0 ("tiny40") and
    vec768l12 ("tiny768") models, 3 speakers each."""
    folder = tmp_path_factory.mktemp("checkpoints")
    make_checkpoint(folder / "tiny41", "4.1", speakers=SPEAKERS, **FAST_41)
    make_checkpoint(folder / "tinyvol", "vol_embedding", speakers=SPEAKERS, **FAST_41)
    make_checkpoint(folder / "tiny40", "4.0", speakers=SPEAKERS)
    make_checkpoint(folder / "tiny768", "4.1", speakers=SPEAKERS)
    return folder


def sung_note(seconds: float, sr: int = 44100, f0: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with vibrato and a little noise: a stand-in for a sung vowel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    freq = f0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    wav = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2
    return (wav + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


# --- so-vits-svc 3.0 models (full-size fixed decoder, small text encoder and flow) ---------------

from sovits3_fixtures import make_sovits3_checkpoint, write_test_hubert_soft  # noqa: E402


@pytest.fixture(scope="session")
def sovits3_pretrain(tmp_path_factory) -> Path:
    """A pretrain/ folder with a small test HuBERT-soft (256-dim units)."""
    folder = tmp_path_factory.mktemp("pretrain3")
    write_test_hubert_soft(folder / "hubert-soft-0d54a1f4.pt")
    return folder


@pytest.fixture(scope="session")
def sovits3_checkpoints(tmp_path_factory) -> Path:
    """checkpoints/ in 3.0's layout (``<name>/model.pth`` + ``config.json``): "v3_32k" (3 speakers,
    training file with optimizer state), "v3_48k" (3 speakers, optimizer None), "v3_solo" (32 kHz,
    1 speaker)."""
    folder = tmp_path_factory.mktemp("checkpoints3")
    make_sovits3_checkpoint(folder / "v3_32k", 32000, optimizer=True)
    make_sovits3_checkpoint(folder / "v3_48k", 48000, optimizer=False)
    make_sovits3_checkpoint(folder / "v3_solo", 32000, speakers=("solo",), optimizer=False)
    return folder
