"""Full-size random-weight model files for the benchmarks, built once and cached under ``bench/cache/``.

The checkpoint is a so-vits-svc 4.1 ``G_*.pth`` with the default config template's model section
(vec768l12, 3 speakers); the encoder is an official-format ContentVec file with full-size random
weights.  Both come from the test fixture builders, so they load through the real code paths.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "bench" / "cache"
SPEAKERS = ("alice", "bob", "carol")

logger = logging.getLogger(__name__)

# The "model" section of so-vits-svc 4.1's configs_template/config_template.json (3 speakers).
FULL_MODEL: dict = {
    "inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
    "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [8, 8, 2, 2, 2],
    "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 4, 4, 4], "n_layers_q": 3,
    "n_layers_trans_flow": 3, "n_flow_layer": 4, "use_spectral_norm": False, "gin_channels": 768,
    "ssl_dim": 768, "n_speakers": len(SPEAKERS), "vocoder_name": "nsf-hifigan", "speech_encoder": "vec768l12",
    "speaker_embedding": False, "vol_embedding": False, "use_depthwise_conv": False,
    "flow_share_parameter": False, "use_automatic_f0_prediction": True, "use_transformer_flow": False,
}
FULL_DATA: dict = {
    "sampling_rate": 44100, "hop_length": 512, "filter_length": 2048, "win_length": 2048,
    "max_wav_value": 32768.0, "n_mel_channels": 80, "mel_fmin": 0.0, "mel_fmax": 22050,
    "unit_interpolate_mode": "nearest",
}


def _tests_on_path() -> None:
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def full_config() -> dict:
    return {
        "train": {"segment_size": 10240, "learning_rate": 0.0001, "seed": 1234},
        "data": dict(FULL_DATA),
        "model": dict(FULL_MODEL),
        "spk": {name: i for i, name in enumerate(SPEAKERS)},
    }


def model_dir(cache: Path = CACHE_DIR) -> Path:
    """``cache/model`` with ``G_0.pth`` + ``config.json`` of a full-size 4.1 model (built on first use)."""
    directory = cache / "model"
    pth = directory / "G_0.pth"
    if not pth.is_file():
        _tests_on_path()
        from model_fixtures import make_state_dict

        logger.info("building full-size checkpoint in %s", directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = full_config()
        (directory / "config.json").write_text(json.dumps(cfg, indent=2))
        state = make_state_dict(cfg, seed=0)
        tmp = pth.with_suffix(".tmp")
        torch.save({"model": state, "iteration": 0, "optimizer": None, "learning_rate": 1e-4}, tmp)
        tmp.replace(pth)
    return directory


def pretrain_dir(cache: Path = CACHE_DIR) -> Path:
    """``cache/pretrain`` with a full-size random ContentVec ``checkpoint_best_legacy_500.pt``."""
    directory = cache / "pretrain"
    path = directory / "checkpoint_best_legacy_500.pt"
    if not path.is_file():
        _tests_on_path()
        from encoder_fixtures import make_contentvec_file

        logger.info("building full-size ContentVec file in %s", directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        make_contentvec_file(tmp, small=False)
        tmp.replace(path)
    return directory


def rmvpe_file(cache: Path = CACHE_DIR) -> Path:
    """``cache/pretrain/rmvpe.pt``: a full-size random RMVPE (built on first use, for ``--f0 rmvpe``)."""
    from svc.f0.rmvpe import RMVPE_FILENAME

    path = cache / "pretrain" / RMVPE_FILENAME
    if not path.is_file():
        _tests_on_path()
        from f0_fixtures import make_rmvpe_file

        logger.info("building full-size RMVPE file %s", path)
        tmp = path.with_suffix(".tmp")
        make_rmvpe_file(tmp)
        tmp.replace(path)
    return path
