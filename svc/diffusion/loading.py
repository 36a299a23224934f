"""Finding and loading a shallow-diffusion model (``model_N.pt`` + ``config.yaml``) safely.

The weights are read with the weights-only loader of ``svc.weights`` (a file carrying code is
refused); the network is built from the yaml and loaded strictly.  Checks against the generator
and the vocoder it is used with are here too, so every mismatch is one clear error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..encoders.registry import ENCODERS
from ..errors import CheckpointError, ConfigError, WeightFileError
from ..weights import float_state, load_module_state, load_torch_file
from .config import DiffusionConfig
from .model import Unit2Mel

SUBFOLDER = "diffusion"  # checkpoints/<model>/diffusion/ holds a model's diffusion files
CONFIG_NAMES = ("config.yaml", "diffusion.yaml")
WHAT = "a so-vits-svc 4.1 diffusion model (model_N.pt)"
MATCH = "its diffusion config (keep model_N.pt and the config.yaml training wrote beside it together)"
_STEP = re.compile(r"model_(\d+)\.pt$")


@dataclass(frozen=True)
class DiffusionFiles:
    model: Path
    config: Path


@dataclass
class DiffusionModel:
    """A loaded diffusion model on the CPU: the network, its config and where it came from."""

    net: Unit2Mel
    config: DiffusionConfig
    files: DiffusionFiles
    mel_bins: int

    def to(self, device: torch.device | str) -> DiffusionModel:
        self.net.to(device)
        return self


def find_diffusion_files(model_path: str | Path) -> DiffusionFiles | None:
    """The diffusion files beside a generator: ``<folder>/diffusion/model_<highest N>.pt`` + its yaml, or None."""
    model_path = Path(model_path)
    folder = (model_path if model_path.is_dir() else model_path.parent) / SUBFOLDER
    if not folder.is_dir():
        return None
    models = _model_files(folder)
    config = _config_beside(models[-1]) if models else None
    return DiffusionFiles(models[-1], config) if config is not None else None


def resolve_diffusion_files(path: str | Path, config_path: str | Path | None = None) -> DiffusionFiles:
    """``(model, config)`` for a ``.pt`` path or a folder of them; the config defaults to the yaml beside it."""
    path = Path(path)
    if path.is_dir():
        models = _model_files(path)
        if not models:
            raise CheckpointError(f"folder '{path}' has no diffusion model (model_N.pt); put it there or pass "
                                  "the .pt file's path")
        path = models[-1]
    elif not path.is_file():
        raise CheckpointError(f"diffusion model '{path}' does not exist")
    if config_path is not None:
        config = Path(config_path)
        if not config.is_file():
            raise ConfigError(f"diffusion config '{config}' does not exist")
        return DiffusionFiles(path, config)
    config = _config_beside(path)
    if config is None:
        raise ConfigError(f"no {' or '.join(CONFIG_NAMES)} beside the diffusion model '{path}'; put the "
                          "config.yaml that training wrote there or pass --diffusion-config")
    return DiffusionFiles(path, config)


def load_diffusion(files: DiffusionFiles) -> DiffusionModel:
    """Read the yaml and the weights (weights-only) and build the network in eval mode on the CPU."""
    config = DiffusionConfig.from_yaml(files.config)
    checkpoint = load_torch_file(files.model, WHAT)
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise WeightFileError(f"'{files.model}' is not {WHAT}: it has no 'model' weights")
    state = float_state(state)
    projection = state.get("decoder.denoise_fn.input_projection.weight")
    if projection is None or projection.dim() != 3:
        raise WeightFileError(f"'{files.model}' is not {WHAT}: no decoder.denoise_fn.input_projection weight")
    mel_bins = int(projection.shape[1])
    net = Unit2Mel(config, mel_bins)
    load_module_state(net, state, files.model, MATCH)
    return DiffusionModel(net.eval(), config, files, mel_bins)


def check_against_generator(model: DiffusionModel, sampling_rate: int, hop: int, speakers: int,
                            speech_encoder: str, content_dim: int) -> None:
    """A ``ConfigError`` unless the diffusion model fits the loaded generator."""
    cfg, name = model.config, model.files.model.name
    if (cfg.sampling_rate, cfg.block_size) != (sampling_rate, hop):
        raise ConfigError(f"the diffusion model {name} works at {cfg.sampling_rate} Hz with hop {cfg.block_size}, "
                          f"the voice model at {sampling_rate} Hz with hop {hop}; use a diffusion model trained "
                          "with the voice model's settings")
    if max(cfg.n_spk, 1) != speakers:
        raise ConfigError(f"the diffusion model {name} has {cfg.n_spk} speaker(s), the voice model {speakers}; "
                          "use the diffusion model trained on the same speakers")
    if cfg.encoder == speech_encoder and cfg.encoder_out_channels != content_dim:
        raise ConfigError(f"the diffusion model {name} takes {cfg.encoder_out_channels}-dim content but the voice "
                          f"model's {speech_encoder} gives {content_dim}")


def check_encoder(model: DiffusionModel) -> None:
    """A ``ConfigError`` unless the diffusion's own encoder is known and gives its content size."""
    cfg, name = model.config, model.files.model.name
    spec = ENCODERS.get(cfg.encoder)
    if spec is None:
        raise ConfigError(f"the diffusion model {name} names the unknown speech encoder {cfg.encoder!r}; "
                          f"available: {', '.join(ENCODERS)}")
    if spec.dim != cfg.encoder_out_channels:
        raise ConfigError(f"the diffusion model {name} takes {cfg.encoder_out_channels}-dim content but its "
                          f"encoder {cfg.encoder} gives {spec.dim}")


def check_vocoder(model: DiffusionModel, sampling_rate: int, hop: int, num_mels: int) -> None:
    """A ``ConfigError`` unless the NSF-HiFiGAN vocoder matches the diffusion model's rate, hop and mel size."""
    cfg, name = model.config, model.files.model.name
    if (sampling_rate, hop) != (cfg.sampling_rate, cfg.block_size):
        raise ConfigError(f"the NSF-HiFiGAN vocoder works at {sampling_rate} Hz with hop {hop}, the diffusion "
                          f"model {name} at {cfg.sampling_rate} Hz with hop {cfg.block_size}")
    if num_mels != model.mel_bins:
        raise ConfigError(f"the diffusion model {name} makes {model.mel_bins}-bin mels but the vocoder takes "
                          f"{num_mels}; use the vocoder it was trained with")


def _model_files(folder: Path) -> list[Path]:
    """``model_N.pt`` files of ``folder`` by step (plain ``*.pt`` when none is named that way)."""
    stepped = [p for p in folder.glob("model_*.pt") if _STEP.search(p.name)]
    if stepped:
        return sorted(stepped, key=lambda p: int(_STEP.search(p.name).group(1)))
    return sorted(folder.glob("*.pt"))


def _config_beside(model: Path) -> Path | None:
    for name in CONFIG_NAMES:
        if (model.parent / name).is_file():
            return model.parent / name
    return None
