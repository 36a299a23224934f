"""``VitsSvc``: one loaded so-vits-svc model on one device — the API the CLI and web UI use.

Also the cheap helpers for listing ``checkpoints/<name>/`` folders without loading weights.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import read_audio, to_mono, write_audio
from .checkpoint import load_generator
from .config import ModelConfig
from .device import resolve_device
from .encoders import EncoderCache
from .encoders.registry import get_spec
from .enhancer import Enhancer
from .errors import AudioError, CheckpointError, ConfigError, OptionsError, SvcError
from .f0 import F0PredictorCache
from .f0 import get_spec as get_f0_spec
from .models import SynthesizerTrn
from .options import ConvertOptions
from .pipeline import ConversionResult, Progress, SynthesisParts, convert
from .precision import precision_dtype
from .timbre import ContentMix, TimbreFileCache, check_dim, find_timbre_file
from .timbre.spk_mix import MixPlan, parse_speaker_mix
from .weights import DEFAULT_PRETRAIN_DIR, require_weight_file

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
    """A so-vits-svc model session: load a checkpoint, pick a device, convert audio.

    The session owns the model and the caches of the parts a conversion needs (speech encoder,
    F0 predictors, enhancer); ``svc.pipeline`` does the work.  Conversions on one session are
    serialised by a lock, so a session can be shared by threads.
    """

    def __init__(self, device: str | torch.device = "auto", pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
                 precision: str = "fp32"):
        self.device = resolve_device(device)
        self._dtype = precision_dtype(precision, self.device)
        self.precision = str(precision).strip().lower()
        self.pretrain_dir = Path(pretrain_dir)
        self._model: SynthesizerTrn | None = None
        self._config: ModelConfig | None = None
        self.model_path: Path | None = None
        self.load_notes: list[str] = []
        self._encoders = EncoderCache(self.pretrain_dir, self.device)
        self._f0_predictors = F0PredictorCache()
        self._enhancer: Enhancer | None = None
        self._timbre_files = TimbreFileCache()
        self._lock = threading.RLock()

    def set_device(self, device: str | torch.device) -> torch.device:
        """Switch to ``device`` (moving the model and cached encoders) and return the resolved device."""
        with self._lock:
            self.device = resolve_device(device)
            if self._model is not None:
                self._model.to(self.device)
            self._encoders.to(self.device)
            self._enhancer = None  # rebuilt on the new device when next needed
            try:
                self._dtype = precision_dtype(self.precision, self.device)
            except OptionsError as exc:
                logger.warning("%s; synthesizing in fp32 on %s", exc, self.device)
                self.precision, self._dtype = "fp32", torch.float32
            if self._model is not None:
                self._model.set_precision(self._dtype)
            return self.device

    def set_precision(self, precision: str) -> str:
        """Choose the synthesis precision: "fp32" (default, matches so-vits-svc), "bf16" or "fp16".

        bf16 needs a CPU with AVX512-BF16/AMX or a GPU, fp16 a GPU; an unsupported choice is an
        ``OptionsError`` and leaves the precision unchanged.
        """
        with self._lock:
            self._dtype = precision_dtype(precision, self.device)
            self.precision = str(precision).strip().lower()
            if self._model is not None:
                self._model.set_precision(self._dtype)
            return self.precision

    def load(self, model_dir_or_pth: str | Path, config_path: str | Path | None = None) -> list[str]:
        """Load a model folder (one .pth + config.json) or an explicit .pth (+ config); return the load notes.

        On error the previously loaded model stays loaded.
        """
        pth, cfg_path = find_model_files(model_dir_or_pth, config_path)
        loaded = load_generator(pth, ModelConfig.from_json(cfg_path))
        self._model = loaded.model.to(self.device)
        self._model.set_precision(self._dtype)
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
        return expected_speech_encoder(self.config)

    def speaker_id(self, speaker: str | int | None = None) -> int:
        """The ``emb_g`` row of ``speaker`` (a name from the config's spk map or one of its ids; None = first)."""
        spk = self.config.spk
        if speaker is None:
            return spk[self.speakers[0]]
        if isinstance(speaker, str) and speaker in spk:
            return spk[speaker]
        if isinstance(speaker, str) and speaker.strip().isdigit():
            speaker = int(speaker)  # an id typed on the command line
        if isinstance(speaker, int) and not isinstance(speaker, bool) and speaker in spk.values():
            return speaker
        listing = ", ".join(f"{name} ({sid})" for name, sid in sorted(spk.items(), key=lambda kv: kv[1]))
        raise OptionsError(f"unknown speaker {speaker!r}; this model has: {listing}")

    # --- conversion -------------------------------------------------------------------------

    def check_weights(self, options: ConvertOptions) -> None:
        """Raise ``WeightFileError`` now if a weight file the conversion needs is missing."""
        spec = get_spec(self.speech_encoder)
        require_weight_file(self.pretrain_dir, spec.filename, f"the speech encoder {spec.name}", spec.source)
        get_f0_spec(options.f0_method).check_weights(self.pretrain_dir)
        if options.enhance:
            Enhancer.check_files(self.pretrain_dir)

    def convert(
        self, wav: np.ndarray, sr: int, options: ConvertOptions | None = None, progress: Progress | None = None
    ) -> ConversionResult:
        """Convert audio (mono ``[N]`` or ``[channels, N]`` float at ``sr`` Hz) to the loaded voice."""
        options = options or ConvertOptions()
        wav = _as_mono_float(wav, sr)
        with self._lock:
            self._require()
            self.check_weights(options)
            parts = self._synthesis_parts(options)
            try:
                with torch.inference_mode():
                    return convert(wav, sr, options, parts, progress)
            except torch.OutOfMemoryError:
                raise SvcError(
                    f"out of memory on {self.device}; convert on the CPU or set clip_seconds (e.g. 15)"
                ) from None

    def convert_file(
        self,
        in_path: str | Path,
        out_path: str | Path,
        options: ConvertOptions | None = None,
        progress: Progress | None = None,
    ) -> ConversionResult:
        """Read any supported audio file, convert it and write ``out_path`` (.wav or .flac) atomically."""
        wav, sr = read_audio(in_path, mono=True)
        result = self.convert(wav, sr, options, progress)
        write_audio(out_path, result.audio, result.sampling_rate)
        return result

    def _synthesis_parts(self, options: ConvertOptions) -> SynthesisParts:
        config = self.config
        predictor = self._f0_predictors.get(
            options.f0_method, hop_length=config.hop_length, sampling_rate=config.sampling_rate,
            device=self.device, threshold=options.cr_threshold, pretrain_dir=self.pretrain_dir,
        )
        enhancer = None
        if options.enhance:
            if self._enhancer is None:
                self._enhancer = Enhancer.from_pretrain(self.pretrain_dir, self.device)
            enhancer = self._enhancer
        return SynthesisParts(
            model=self.model,
            sampling_rate=config.sampling_rate,
            hop_length=config.hop_length,
            unit_interpolate_mode=config.data.unit_interpolate_mode,
            vol_embedding=config.model.vol_embedding,
            encoder=self._encoders.get(self.speech_encoder, half=self._half_encoder()),
            f0_predictor=predictor,
            speaker_id=self.speaker_id(options.speaker),
            device=self.device,
            enhancer=enhancer,
            content_mix=self._content_mix(options),
            speaker_mix=self._speaker_mix(options),
        )

    def _speaker_mix(self, options: ConvertOptions) -> MixPlan | None:
        if options.spk_mix is None:
            return None
        config = self.config
        mix = parse_speaker_mix(options.spk_mix, config.spk, config.model.n_speakers)
        return MixPlan(mix, config.sampling_rate, config.hop_length, options.pad_seconds, options.clip_seconds,
                       options.crossfade_seconds)

    def timbre_file(self, options: ConvertOptions) -> Path | None:
        """The cluster / index file a conversion with ``options`` uses: the given one, else the model folder's."""
        if options.cluster:
            return Path(options.cluster)
        return find_timbre_file(self.model_path.parent) if self.model_path is not None else None

    def _content_mix(self, options: ConvertOptions) -> ContentMix | None:
        if options.cluster_ratio == 0:
            return None  # like so-vits-svc: no file is read when the ratio is 0
        path = self.timbre_file(options)
        if path is None:
            raise OptionsError(f"cluster_ratio {options.cluster_ratio} needs a cluster model (kmeans_*.pt) or "
                               f"feature index (.pkl): pass one or put it in the model's folder")
        model = self._timbre_files.get(path, self.device)
        check_dim(model, self.config.model.ssl_dim)
        sid = self.speaker_id(options.speaker)
        name = next(n for n, i in self.config.spk.items() if i == sid)
        return ContentMix(model, name, sid, options.cluster_ratio)

    def _half_encoder(self) -> bool:
        """Reduced precision on a GPU runs the speech encoder in half precision too."""
        return self.precision != "fp32" and self.device.type == "cuda"

    def _require(self) -> tuple[SynthesizerTrn, ModelConfig]:
        if self._model is None or self._config is None:
            raise OptionsError("no model is loaded; load a model first")
        return self._model, self._config


MIN_SECONDS = 0.1


def _as_mono_float(wav: np.ndarray, sr: int) -> np.ndarray:
    """Validate in-memory input the way ``read_audio`` validates files."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = to_mono(wav)
    if wav.ndim != 1:
        raise AudioError(f"audio must be mono [N] or [channels, N], got shape {tuple(wav.shape)}")
    if not isinstance(sr, (int, np.integer)) or not 1000 <= sr <= 768000:
        raise AudioError(f"sample rate must be between 1000 and 768000 Hz, got {sr}")
    if len(wav) < MIN_SECONDS * sr:
        raise AudioError(f"audio is too short ({len(wav) / sr:.3f} s); it must be at least {MIN_SECONDS} s long")
    if not np.isfinite(wav).all():
        raise AudioError("audio contains NaN or infinite samples")
    return wav
