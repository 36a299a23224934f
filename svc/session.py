"""``VitsSvc``: one loaded so-vits-svc model on one device — the API the CLI and web UI use.

Also the cheap helpers for listing ``checkpoints/<name>/`` folders without loading weights.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import AudioFileSamples, audio_writer, check_audio_array, open_audio
from .checkpoint import load_generator
from .config import ModelConfig
from .device import resolve_device
from .diffusion import (
    DiffusionFiles,
    DiffusionModel,
    DiffusionStage,
    find_diffusion_files,
    load_diffusion,
    resolve_diffusion_files,
)
from .diffusion.loading import check_against_generator, check_encoder, check_vocoder
from .encoders import EncoderCache
from .encoders.registry import get_spec
from .enhancer import Enhancer
from .errors import CheckpointError, ConfigError, OptionsError, SvcError
from .f0 import F0PredictorCache
from .f0 import get_spec as get_f0_spec
from .f0.sovits3 import sovits3_predictor
from .memory import keep_heap_pages, limit_onednn_cache
from .models import Sovits3Synthesizer, SynthesizerTrn
from .models.sovits3 import SOVITS3_NOISE_SCALE
from .models.sovits3 import sample_multiple as sovits3_sample_multiple
from .options import ConvertOptions
from .pipeline import ConversionResult, Progress, SynthesisParts, convert
from .precision import precision_dtype
from .sovits3_api import SpeakerMap, float_to_int16, gradio_audio_to_float
from .timbre import ContentMix, TimbreFileCache, check_dim, find_timbre_file
from .timbre.spk_mix import MixPlan, parse_speaker_mix
from .weights import DEFAULT_PRETRAIN_DIR, require_weight_file

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
DEFAULT_CHECKPOINTS_DIR = "checkpoints"


@dataclass(frozen=True)
class ModelInfo:
    """What a model folder holds, read from its config only."""

    name: str
    path: Path
    version: str
    speech_encoder: str
    speakers: tuple[str, ...]
    sampling_rate: int
    diffusion: str | None = None  # the diffusion model found in <folder>/diffusion/, if any

    @property
    def label(self) -> str:
        """"so-vits-svc 4.1", or "so-vits-svc 3.0 (32 kHz)" (a 3.0 model's rate is part of what it is)."""
        return model_label(self.version, self.sampling_rate)

    def __str__(self) -> str:
        return (f"{self.name}: {self.label}, encoder {self.speech_encoder}, {self.sampling_rate} Hz, "
                f"speakers: {', '.join(self.speakers)}")


def model_label(version: str, sampling_rate: int) -> str:
    """The name a model version is shown by; 3.0 models come in 32 and 48 kHz variants."""
    if version == "3.0":
        return f"so-vits-svc 3.0 ({sampling_rate // 1000} kHz)"
    return f"so-vits-svc {version}"


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
        diffusion=_diffusion_name(path),
    )


def _diffusion_name(path: Path) -> str | None:
    files = find_diffusion_files(path)
    return f"{files.model.parent.name}/{files.model.name}" if files is not None else None


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
                 precision: str = "fp32", checkpoints_dir: str | Path = DEFAULT_CHECKPOINTS_DIR):
        # before the first convolution, or the cache grows with every piece's shape
        limit_onednn_cache(precision)
        keep_heap_pages()
        self.device = resolve_device(device)
        self.checkpoints_dir = Path(checkpoints_dir)  # where loadCheckpoint(name) looks
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
        self._diffusion: DiffusionModel | None = None
        self.diffusion_files: DiffusionFiles | None = None  # found beside the model or given; loaded on use
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
            if self._diffusion is not None:
                self._diffusion.to(self.device)
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
        self._diffusion, self.diffusion_files = None, find_diffusion_files(pth)
        logger.info("loaded %s (so-vits-svc %s, %d speakers) on %s", pth, self.version, len(self.speakers),
                    self.device)
        return self.load_notes

    def load_diffusion(self, path: str | Path, config_path: str | Path | None = None) -> DiffusionModel:
        """Load a diffusion model (``model_N.pt`` or its folder; config: the yaml beside it) for shallow or
        only diffusion; checked against the loaded voice model, if any.  On error nothing changes."""
        with self._lock:
            files = resolve_diffusion_files(path, config_path)
            model = load_diffusion(files)
            check_encoder(model)
            if self._model is not None:
                self._check_diffusion(model)
            self._diffusion, self.diffusion_files = model.to(self.device), files
            logger.info("loaded diffusion model %s (k_step_max %d, sampler %s)", files.model,
                        model.config.k_step_max, model.config.method)
            return model

    @property
    def diffusion(self) -> DiffusionModel | None:
        """The loaded diffusion model (files found beside the voice model are loaded on first use)."""
        if self._diffusion is None and self.diffusion_files is not None:
            self.load_diffusion(self.diffusion_files.model, self.diffusion_files.config)
        return self._diffusion

    def _check_diffusion(self, model: DiffusionModel) -> None:
        config = self.config
        check_against_generator(model, config.sampling_rate, config.hop_length, len(config.spk),
                                self.speech_encoder, config.model.ssl_dim)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> SynthesizerTrn | Sovits3Synthesizer:
        return self._require()[0]

    @property
    def config(self) -> ModelConfig:
        return self._require()[1]

    @property
    def hps(self) -> ModelConfig:
        """The loaded config (3.0's name for it): ``.spk``, ``.data.sampling_rate``, ``.model``..."""
        return self.config

    @property
    def speakers(self) -> SpeakerMap:
        """Speaker names in id order; also the config's ``spk`` map (``speakers["name"]`` is the id)."""
        return SpeakerMap(self.config.spk)

    @property
    def label(self) -> str:
        return model_label(self.version, self.sampling_rate)

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
    def default_noise_scale(self) -> float:
        """The noise scale the loaded model's own generation uses: 1 for 3.0 (fixed there), else the
        ``ConvertOptions`` default (0.4, as so-vits-svc 4.x)."""
        return SOVITS3_NOISE_SCALE if self.version == "3.0" else ConvertOptions.noise_scale

    @property
    def speech_encoder(self) -> str:
        return expected_speech_encoder(self.config)

    def speaker_id(self, speaker: str | int | None = None) -> int:
        """The ``emb_g`` row of ``speaker`` (a name from the config's spk map or one of its ids; None = first)."""
        return _lookup_speaker(self.config.spk, speaker)

    def output_speaker_name(self, options: ConvertOptions) -> str:
        """The name of the speaker ``options`` selects (from the diffusion model's table with only diffusion)."""
        spk = self._require_diffusion().config.spk if options.only_diffusion else self.config.spk
        sid = self._speaker_id_for(options)
        return next((name for name, value in spk.items() if value == sid), str(sid))

    def _speaker_id_for(self, options: ConvertOptions) -> int:
        if options.only_diffusion:
            spk = self._require_diffusion().config.spk or {"0": 0}
            return _lookup_speaker(spk, options.speaker)
        return self.speaker_id(options.speaker)

    def _require_diffusion(self) -> DiffusionModel:
        model = self.diffusion
        if model is None:
            where = f" and none was found in '{self.model_path.parent}/diffusion/'" if self.model_path else ""
            raise OptionsError(f"no diffusion model is loaded{where}; load one (CLI: --diffusion model_N.pt)")
        return model

    def speaker_name(self, speaker: str | int | None = None) -> str:
        """The config's name of ``speaker`` (a name, an id, or None for the first speaker)."""
        sid = self.speaker_id(speaker)
        return next(name for name, value in self.config.spk.items() if value == sid)

    # --- conversion -------------------------------------------------------------------------

    def check_weights(self, options: ConvertOptions) -> None:
        """Raise ``WeightFileError`` now if a weight file the conversion needs is missing."""
        for name in self._encoder_names(options):
            spec = get_spec(name)
            require_weight_file(self.pretrain_dir, spec.filename, f"the speech encoder {spec.name}", spec.source)
        get_f0_spec(options.f0_method).check_weights(self.pretrain_dir)
        if options.enhance or options.uses_diffusion:
            Enhancer.check_files(self.pretrain_dir)

    def _encoder_names(self, options: ConvertOptions) -> list[str]:
        if options.only_diffusion:
            return [self._require_diffusion().config.encoder]
        names = [self.speech_encoder]
        if options.shallow_diffusion and self._require_diffusion().config.encoder != self.speech_encoder:
            names.append(self._require_diffusion().config.encoder)
        return names

    def convert(
        self, wav: np.ndarray, sr: int, options: ConvertOptions | None = None, progress: Progress | None = None
    ) -> ConversionResult:
        """Convert audio (mono ``[N]`` or ``[channels, N]`` float at ``sr`` Hz) to the loaded voice."""
        return self._convert(check_audio_array(wav, sr), sr, options, progress)

    def convert_file(
        self,
        in_path: str | Path,
        out_path: str | Path,
        options: ConvertOptions | None = None,
        progress: Progress | None = None,
        *,
        keep_audio: bool = True,
    ) -> ConversionResult:
        """Read any supported audio file, convert it and write ``out_path`` (.wav or .flac) atomically.

        The output is written chunk by chunk as the conversion goes (``out_path`` appears only when it
        succeeded); with ``keep_audio=False`` the result holds no copy of it (``result.audio`` is
        empty), so a long song needs no output-sized buffer.
        """
        start = time.perf_counter()
        wav, sr = open_audio(in_path)  # WAV/FLAC: read piece by piece, never held whole
        decode = time.perf_counter() - start
        result = self._convert(wav, sr, options, progress, Path(out_path), keep_audio)
        result.timings = {"decode": decode, **result.timings}
        return result

    def _convert(self, wav: np.ndarray | AudioFileSamples, sr: int, options: ConvertOptions | None,
                 progress: Progress | None, out_path: Path | None = None, keep_audio: bool = True) -> ConversionResult:
        """``convert``, also writing ``out_path`` as the chunks are finished when it is given."""
        options = options or ConvertOptions()
        with self._lock:
            if not options.only_diffusion:
                self._require()
            self.check_weights(options)
            parts = self._synthesis_parts(options)
            try:
                with torch.inference_mode():
                    if out_path is None:
                        return convert(wav, sr, options, parts, progress)
                    with audio_writer(out_path, parts.sampling_rate) as write:
                        return convert(wav, sr, options, parts, progress, write, keep_audio)
            except torch.OutOfMemoryError:
                raise SvcError(
                    f"out of memory on {self.device}; convert on the CPU or set clip_seconds (e.g. 15)"
                ) from None

    def _synthesis_parts(self, options: ConvertOptions) -> SynthesisParts:
        if options.only_diffusion:
            return self._only_diffusion_parts(options)
        config = self.config
        predictor = self._f0_predictors.get(
            options.f0_method, hop_length=config.hop_length, sampling_rate=config.sampling_rate,
            device=self.device, threshold=options.cr_threshold, pretrain_dir=self.pretrain_dir,
        )
        if config.version == "3.0":
            predictor = sovits3_predictor(predictor)
        enhancer = None
        if options.enhance and not options.uses_diffusion:  # as so-vits-svc: diffusion switches the enhancer off
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
            diffusion=self._diffusion_stage(options) if options.shallow_diffusion else None,
            sample_multiple=sovits3_sample_multiple(config.sampling_rate) if config.version == "3.0" else 1,
            content_mix=self._content_mix(options),
            speaker_mix=self._speaker_mix(options),
        )

    def _only_diffusion_parts(self, options: ConvertOptions) -> SynthesisParts:
        """Parts for only diffusion: the diffusion model's rate, hop, encoder and speakers; no voice model."""
        cfg = self._require_diffusion().config
        predictor = self._f0_predictors.get(
            options.f0_method, hop_length=cfg.block_size, sampling_rate=cfg.sampling_rate,
            device=self.device, threshold=options.cr_threshold, pretrain_dir=self.pretrain_dir,
        )
        return SynthesisParts(
            model=None, sampling_rate=cfg.sampling_rate, hop_length=cfg.block_size,
            unit_interpolate_mode=cfg.unit_interpolate_mode, vol_embedding=False,
            encoder=self._encoders.get(cfg.encoder, half=self._half_encoder()), f0_predictor=predictor,
            speaker_id=self._speaker_id_for(options), device=self.device, diffusion=self._diffusion_stage(options),
        )

    def _diffusion_stage(self, options: ConvertOptions) -> DiffusionStage:
        """The diffusion model bound to the vocoder, the sampler and this conversion's settings."""
        model = self._require_diffusion()
        if self._enhancer is None:
            self._enhancer = Enhancer.from_pretrain(self.pretrain_dir, self.device)
        vocoder = self._enhancer.cfg
        check_vocoder(model, vocoder.sampling_rate, vocoder.hop_size, vocoder.num_mels)
        encoder, mode, same = None, model.config.unit_interpolate_mode, True
        if not options.only_diffusion:
            self._check_diffusion(model)
            same = model.config.encoder == self.speech_encoder
            encoder = self._encoders.get(self.speech_encoder if same else model.config.encoder,
                                         half=self._half_encoder())
            mode = self.config.data.unit_interpolate_mode if same else mode
        stage = DiffusionStage.create(
            model, self._enhancer, method=options.diffusion_method, speedup=options.diffusion_speedup,
            k_step=options.k_step, only=options.only_diffusion, second_encoding=options.second_encoding,
            encoder=encoder, unit_interpolate_mode=mode, reuse_units=same,
        )
        stage.check_speaker(self._speaker_id_for(options))
        return stage

    # --- the so-vits-svc 3.0 session API (inference/infer_tool_grad.py, sovits_gradio.py) ----------

    def loadCheckpoint(self, name: str) -> list[str]:  # noqa: N802 (the original name)
        """Load the model folder ``<checkpoints_dir>/<name>/`` (3.0: ``model.pth`` + ``config.json``)."""
        return self.load(self.checkpoints_dir / name)

    def inference(self, srcaudio: tuple[int, np.ndarray], chara: str | int, tran: float,
                  slice_db: float) -> tuple[int, np.ndarray]:
        """Convert Gradio numpy audio ``(sr, [N] or [N, channels])`` to speaker ``chara``, ``tran``
        semitones up, slicing at ``slice_db`` dB; returns ``(model rate, int16 samples)``.

        3.0 models use 3.0's noise scale 1; 4.x models the ``ConvertOptions`` default.
        """
        wav, sr = gradio_audio_to_float(srcaudio)
        options = ConvertOptions(speaker=chara, transpose=float(tran), slice_db=float(slice_db),
                                 noise_scale=self.default_noise_scale)
        result = self.convert(wav, sr, options)
        return result.sampling_rate, float_to_int16(result.audio)

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
        """Reduced precision runs the speech encoder reduced too: float16 on a GPU, its transformer
        layers in bfloat16 on a CPU (bf16 there implies the CPU has it)."""
        return self.precision != "fp32" and self.device.type in ("cuda", "cpu")

    def _require(self) -> tuple[SynthesizerTrn | Sovits3Synthesizer, ModelConfig]:
        if self._model is None or self._config is None:
            raise OptionsError("no model is loaded; load a model first")
        return self._model, self._config


def _lookup_speaker(spk: dict[str, int], speaker: str | int | None) -> int:
    """The id of ``speaker`` (a name from ``spk`` or one of its ids; None = the lowest id)."""
    if speaker is None:
        return min(spk.values())
    if isinstance(speaker, str) and speaker in spk:
        return spk[speaker]
    if isinstance(speaker, str) and speaker.strip().isdigit():
        speaker = int(speaker)  # an id typed on the command line
    if isinstance(speaker, int) and not isinstance(speaker, bool) and speaker in spk.values():
        return speaker
    listing = ", ".join(f"{name} ({sid})" for name, sid in sorted(spk.items(), key=lambda kv: kv[1]))
    raise OptionsError(f"unknown speaker {speaker!r}; this model has: {listing}")
