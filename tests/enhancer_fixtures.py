"""A tiny random-weight NSF-HiFiGAN in openvpi's file format, and the signals the enhancer tests use."""

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from svc.enhancer_net import HifiganConfig, NsfGenerator
from svc.models.layers import is_weight_normed

TINY_CONFIG = {
    "resblock": "1", "num_gpus": 0, "batch_size": 1, "learning_rate": 0.0002,
    "upsample_rates": [4, 4, 4], "upsample_kernel_sizes": [8, 8, 8], "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "discriminator_periods": [3, 5, 7, 11, 17], "segment_size": 4096,
    "num_mels": 16, "num_freq": 129, "n_fft": 256, "hop_size": 64, "win_size": 256,
    "sampling_rate": 8000, "fmin": 40, "fmax": 3800, "fmax_for_loss": None,
}


def write_tiny_nsf_hifigan(pretrain_dir: Path, seed: int = 0, config: dict | None = None) -> Path:
    """Write ``pretrain_dir/nsf_hifigan/{model,config.json}`` like the official release; return the model path."""
    config = TINY_CONFIG if config is None else config
    folder = Path(pretrain_dir) / "nsf_hifigan"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    torch.manual_seed(seed)
    net = NsfGenerator(HifiganConfig.from_dict(config))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # weight_norm is deprecated but is what wrote the real files
        for module in net.modules():
            if is_weight_normed(module):  # conv_pre, ups, resblocks and conv_post, as in openvpi
                torch.nn.utils.weight_norm(module)
    # Give the weight-norm gains a spread so that folding them is actually tested.
    state = {k: (v * (1.0 + 0.5 * torch.rand(v.shape)) if k.endswith("weight_g") else v)
             for k, v in net.state_dict().items()}
    torch.save({"generator": state}, folder / "model")
    return folder / "model"


def enhancer_inputs() -> tuple[np.ndarray, int, np.ndarray, int]:
    """1 s of a harmonic glide at 8 kHz and its F0 at a 128-sample hop (with an unvoiced gap)."""
    sr, hop = 8000, 128
    n = sr
    t = np.arange(n) / sr
    f0_curve = 150 + 100 * t
    phase = 2 * np.pi * np.cumsum(f0_curve) / sr
    audio = 0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase)
    audio[3000:4000] = 0.0
    f0 = (150 + 100 * np.arange(n // hop + 1) * hop / sr).astype(np.float32)
    f0[3000 // hop: 4000 // hop] = 0.0
    return audio.astype(np.float32), sr, f0, hop
