"""``VitsSvc``: one loaded so-vits-svc model on one device — the API the CLI and web UI use.

Also the cheap helpers for listing ``checkpoints/<name>/`` folders without loading weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_generator
from .config import ModelConfig
from .device import resolve_device
from .errors import CheckpointError, ConfigError, OptionsError
from .models import SynthesizerTrn
from .weights import DEFAULT_PRETRAIN_DIR

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class ModelInfo:
    """What a model folder holds, read from its config only."""

    name: str
    path: Path
    version: str
    speech_encoder: str
    speakers: tuple[str, ...]
    sampling_rate: int


def list_model_dirs(checkpoints_dir: str | Path) -> list[Path]:
    """Sub-folders of ``checkpoints_dir`` that hold a ``.pth`` and a ``.json`` file, sorted by name."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    return sorted(
        d for d in root.iterdir()
        if d.is_dir() and any(d.glob("*.pth")) and any(d.glob("*.json"))
    )


def find_model_files(path: str | Path, config_path: str | Path | None = None) -> tuple[Path, Path]:
    """``(pth, config)`` for a model folder or an explicit ``.pth`` path.

    A folder must hold exactly one generator ``.pth`` (``D_*.pth`` discriminators are ignored)
    and one config (``config.json``, else the only ``.json``); anything else is a clear error.
    """
    path = Path(path)
    if path.is_dir():
        pth = _single(path, [p for p in sorted(path.glob("*.pth")) if not p.name.startswith("D_")],
                      "model (.pth) file", "pass the .pth file's path instead of the folder")
        folder = path
    elif path.is_file():
        pth, folder = path, path.parent
    else:
        raise CheckpointError(f"model path '{path}' does not exist")
    if config_path is not None:
        config = Path(config_path)
        if not config.is_file():
            raise ConfigError(f"config file '{config}' does not exist")
        return pth, config
    if (folder / CONFIG_NAME).is_file():
        return pth, folder / CONFIG_NAME
    config = _single(folder, sorted(folder.glob("*.json")), "config (.json) file", "pass the config path explicitly")
    return pth, config


def _single(folder: Path, candidates: list[Path], what: str, fix: str) -> Path:
    if not candidates:
        raise CheckpointError(f"folder '{folder}' has no {what}; put the model's {what} there")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise CheckpointError(f"folder '{folder}' has {len(candidates)} candidate {what}s ({names}); "
                              f"keep one or {fix}")
    return candidates[0]


def describe_model_dir(path: str | Path) -> ModelInfo:
    """Name, version, encoder and speakers of a model folder, from its config alone (no weights read)."""
    path = Path(path)
    _, config_path = find_model_files(path)
    config = ModelConfig.from_json(config_path)
    return ModelInfo(
        name=path.name if path.is_dir() else path.stem,
        path=path,
        version=config.version,
        speech_encoder=expected_speech_encoder(config),
        speakers=tuple(config.speakers),
        sampling_rate=config.sampling_rate,
    )


def expected_speech_encoder(config: ModelConfig) -> str:
    """The encoder a model needs: the configured one, or vec256l9 for a 256-dim model whose config names none."""
    if not config.speech_encoder_given and config.model.ssl_dim == 256:
        return "vec256l9"
    return config.speech_encoder


class VitsSvc:
    """A so-vits-svc model session: load a checkpoint, pick a device, look up speakers.

    Conversion methods live in the pipeline module and use ``.model`` and ``.config``.
    """

    def __init__(self, device: str | torch.device = "auto", pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR):
        self.device = resolve_device(device)
        self.pretrain_dir = Path(pretrain_dir)
        self._model: SynthesizerTrn | None = None
        self._config: ModelConfig | None = None
        self.model_path: Path | None = None
        self.load_notes: list[str] = []

    def set_device(self, device: str | torch.device) -> torch.device:
        """Switch to ``device`` (moving a loaded model) and return the resolved device."""
        self.device = resolve_device(device)
        if self._model is not None:
            self._model.to(self.device)
        return self.device

    def load(self, model_dir_or_pth: str | Path, config_path: str | Path | None = None) -> list[str]:
        """Load a model folder (one .pth + config.json) or an explicit .pth (+ config); return the load notes.

        On error the previously loaded model stays loaded.
        """
        pth, cfg_path = find_model_files(model_dir_or_pth, config_path)
        loaded = load_generator(pth, ModelConfig.from_json(cfg_path))
        self._model = loaded.model.to(self.device)
        self._config = loaded.config
        self.model_path = pth
        self.load_notes = list(loaded.notes)
        logger.info("loaded %s (so-vits-svc %s, %d speakers) on %s", pth, self.version, len(self.speakers),
                    self.device)
        return self.load_notes

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> SynthesizerTrn:
        return self._require()[0]

    @property
    def config(self) -> ModelConfig:
        return self._require()[1]

    @property
    def speakers(self) -> list[str]:
        return self.config.speakers

    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def speech_encoder(self) -> str:
        return self.config.speech_encoder

    def speaker_id(self, speaker: str | int | None = None) -> int:
        """The ``emb_g`` row of ``speaker`` (a name from the config's spk map or one of its ids; None = first)."""
        spk = self.config.spk
        if speaker is None:
            return spk[self.speakers[0]]
        if isinstance(speaker, str) and speaker in spk:
            return spk[speaker]
        if isinstance(speaker, int) and not isinstance(speaker, bool) and speaker in spk.values():
            return speaker
        listing = ", ".join(f"{name} ({sid})" for name, sid in sorted(spk.items(), key=lambda kv: kv[1]))
        raise OptionsError(f"unknown speaker {speaker!r}; this model has: {listing}")

    def _require(self) -> tuple[SynthesizerTrn, ModelConfig]:
        if self._model is None or self._config is None:
            raise OptionsError("no model is loaded; load a model first")
        return self._model, self._config
