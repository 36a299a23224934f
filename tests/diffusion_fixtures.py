"""Tiny random-weight shallow-diffusion models in so-vits-svc 4.1's file format, and the vocoder they use.

``write_diffusion_model`` writes ``model_<step>.pt`` (``{'global_step', 'model'}``, as ``train_diff.py``
saves it) and ``config.yaml`` (the template's layout, written with PyYAML's sorted ``dump`` as the
preprocessing step does).  ``write_diffusion_vocoder`` writes an NSF-HiFiGAN at the test models' rate
and hop (44.1 kHz, 512) into ``pretrain/nsf_hifigan/``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import yaml
from enhancer_fixtures import TINY_CONFIG, write_tiny_nsf_hifigan

from svc.diffusion.config import DiffusionConfig
from svc.diffusion.model import Unit2Mel

MEL_BINS = 32
GAIN = 1.5  # measured: noise estimates of std ~2; samplers then differ by 17-21 dB in the mel
VOCODER_GAIN = 2.0  # conv_post gain: output std ~0.1 instead of ~0.04
VOCODER_CONFIG = {
    **TINY_CONFIG,
    "upsample_rates": [8, 8, 8], "upsample_kernel_sizes": [16, 16, 16], "upsample_initial_channel": 16,
    "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
    "num_mels": MEL_BINS, "num_freq": 1025, "n_fft": 2048, "hop_size": 512, "win_size": 2048,
    "sampling_rate": 44100, "fmin": 40, "fmax": 16000,
}

TEMPLATE: dict[str, Any] = {
    "data": {
        "sampling_rate": 44100, "block_size": 512, "duration": 2, "encoder": "vec256l9", "cnhubertsoft_gate": 10,
        "encoder_sample_rate": 16000, "encoder_hop_size": 320, "encoder_out_channels": 256,
        "training_files": "filelists/train.txt", "validation_files": "filelists/val.txt", "extensions": ["wav"],
        "unit_interpolate_mode": "nearest",
    },
    "model": {"type": "Diffusion", "n_layers": 2, "n_chans": 16, "n_hidden": 16, "use_pitch_aug": True,
              "timesteps": 1000, "k_step_max": 0, "n_spk": 3},
    "device": "cpu",
    "vocoder": {"type": "nsf-hifigan", "ckpt": "pretrain/nsf_hifigan/model"},
    "infer": {"speedup": 10, "method": "dpm-solver++"},
    "env": {"expdir": "logs/44k/diffusion", "gpu_id": 0},
    "train": {"num_workers": 4, "amp_dtype": "fp32", "batch_size": 48, "cache_all_data": True, "cache_device": "cpu",
              "cache_fp16": True, "epochs": 100000, "interval_log": 10, "interval_val": 2000,
              "interval_force_save": 5000, "lr": 0.0001, "decay_step": 100000, "gamma": 0.5, "weight_decay": 0,
              "save_opt": False},
    "spk": {"alice": 0, "bob": 1, "carol": 2},
}


def diffusion_config(**changes: Any) -> dict[str, Any]:
    """The template with ``section_key=value`` changes (e.g. ``model_k_step_max=100``, ``infer_method='ddim'``)."""
    cfg = copy.deepcopy(TEMPLATE)
    for key, value in changes.items():
        if key == "spk":
            cfg["spk"] = value
            continue
        section, name = key.split("_", 1)
        cfg[section][name] = value
    return cfg


def write_diffusion_model(folder: str | Path, step: int = 100, seed: int = 0, mel_bins: int = MEL_BINS,
                          config_name: str = "config.yaml", gain: float = GAIN, **changes: Any) -> Path:
    """Write ``folder/model_<step>.pt`` and ``folder/<config_name>``; return the model path.

    Weights are drawn with std ``gain / sqrt(fan_in)`` (embeddings: ``gain``), so the random denoiser's
    noise estimate is of order one and the samplers' results clearly differ.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = diffusion_config(**changes)
    (folder / config_name).write_text(yaml.dump(cfg))
    net = Unit2Mel(DiffusionConfig.from_dict(cfg), mel_bins)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if key.startswith("decoder.") and not key.startswith("decoder.denoise_fn."):
            state[key] = value  # the schedule buffers, as training saves them
        elif key.endswith("bias"):
            state[key] = 0.1 * torch.randn(value.shape, generator=gen)
        else:
            fan_in = 1 if "spk_embed" in key else value[0].numel()
            state[key] = gain * torch.randn(value.shape, generator=gen) / fan_in**0.5
    path = folder / f"model_{step}.pt"
    torch.save({"global_step": step, "model": state}, path)
    return path


def write_diffusion_vocoder(pretrain_dir: str | Path, seed: int = 0) -> Path:
    """An NSF-HiFiGAN at 44.1 kHz, hop 512, ``MEL_BINS`` mels in ``pretrain_dir/nsf_hifigan/``."""
    path = write_tiny_nsf_hifigan(Path(pretrain_dir), seed, VOCODER_CONFIG)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["generator"]["conv_post.weight_g"] *= VOCODER_GAIN
    torch.save(checkpoint, path)
    return path


def build_diffusion_env(root: Path, models: tuple[str, ...] = ("tiny41",)) -> tuple[Path, Path]:
    """``(pretrain, checkpoints)`` under ``root``: the test ContentVec, the diffusion vocoder, and the
    conftest models ``models`` (vec256l9, 3 speakers) each with a ``diffusion/`` folder."""
    from conftest import FAST_41, SPEAKERS, write_test_contentvec
    from model_fixtures import make_checkpoint

    variants = {"tiny41": "4.1", "tinyvol": "vol_embedding"}
    pretrain, checkpoints = Path(root) / "pretrain", Path(root) / "checkpoints"
    pretrain.mkdir(parents=True)
    write_test_contentvec(pretrain / "checkpoint_best_legacy_500.pt")
    write_diffusion_vocoder(pretrain)
    for name in models:
        make_checkpoint(checkpoints / name, variants[name], speakers=SPEAKERS, **FAST_41)
        write_diffusion_model(checkpoints / name / "diffusion")
    return pretrain, checkpoints
