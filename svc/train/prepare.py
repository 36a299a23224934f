"""``train prepare``: speaker folders of recordings -> a run folder ready for training.

DATASET/<speaker>/*.{wav,flac,mp3,ogg} is read as mono, resampled to the model rate, cut on
silence into clips of at most ``max_clip_seconds``, optionally peak-normalised and written
as 16-bit WAV under RUN/dataset/<speaker>/.  Each clip then gets its cached features
(content units, F0 + voicing, spectrogram, volume; see ``dataset.feature_paths``), the clips
are split into filelists/train.txt and val.txt, and config.json is written from a 4.1
template.  Every step skips what an earlier run already did; ``prepare.json`` records which
source files were cut into which clips and which were skipped and why.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..audio import read_audio, resample, write_audio
from ..errors import AudioError, DatasetError
from ..slicer import slice_audio
from ..volume import extract_volume
from .config import build_config, write_config
from .dataset import feature_paths

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
MANIFEST = "prepare.json"
SILENCE_PEAK = 10 ** (-50 / 20)  # a clip whose peak is below -50 dBFS holds nothing to learn from
CLIP_LEVEL = 0.99  # samples this close to full scale...
CLIPPED_SHARE = 0.001  # ...in flat runs, on more than this share of a file: clipped
NORMALISED_PEAK = 0.98


@dataclass(frozen=True)
class PrepareOptions:
    """What ``prepare`` does; the defaults are so-vits-svc's (vec768l12, rmvpe, default template)."""

    template: str = "default"
    speech_encoder: str = "vec768l12"
    f0_method: str = "rmvpe"
    pretrain_dir: Path | None = None
    device: str = "cpu"
    normalize: bool = True
    vol_embedding: bool = False
    max_clip_seconds: float = 15.0
    min_clip_seconds: float = 0.3
    val_per_speaker: int = 2
    seed: int = 1234


@dataclass
class PrepareReport:
    """The outcome: clips per split, and every skipped file or clip with its reason."""

    run_dir: Path
    speakers: list[str]
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    features_computed: int = 0


Progress = Callable[[int, int, str], None]


def scan_dataset(dataset_dir: Path) -> dict[str, list[Path]]:
    """``{speaker: [audio files]}`` of DATASET/<speaker>/ (sorted; hidden files ignored)."""
    if not dataset_dir.is_dir():
        raise DatasetError(f"dataset folder '{dataset_dir}' does not exist")
    speakers: dict[str, list[Path]] = {}
    for folder in sorted(p for p in dataset_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
        if files:
            speakers[folder.name] = files
    if not speakers:
        raise DatasetError(
            f"'{dataset_dir}' holds no speaker folders with audio; expected {dataset_dir}/<speaker>/*.wav "
            f"(or {', '.join(AUDIO_SUFFIXES[1:])})"
        )
    return speakers


def prepare(dataset_dir: str | Path, run_dir: str | Path, options: PrepareOptions = PrepareOptions(),
            progress: Progress | None = None) -> PrepareReport:
    """Prepare ``run_dir`` from ``dataset_dir`` (see the module docstring); resumable."""
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    sources = scan_dataset(dataset_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(run_dir, options)
    cfg = _config_for(run_dir, list(sources), options)
    sr, hop = cfg["data"]["sampling_rate"], cfg["data"]["hop_length"]
    min_samples = max(int(options.min_clip_seconds * sr), (cfg["train"]["segment_size"] // hop + 1) * hop)

    clips: dict[str, list[str]] = {}
    report = PrepareReport(run_dir=run_dir, speakers=[])
    files = [(spk, f) for spk, fs in sources.items() for f in fs]
    for i, (speaker, source) in enumerate(files):
        if progress:
            progress(i, len(files), f"cutting {source.name}")
        key = str(source.relative_to(dataset_dir))
        entry = manifest["sources"].get(key)
        stat = source.stat()
        if not entry or entry.get("size") != stat.st_size or entry.get("mtime") != stat.st_mtime:
            entry = _cut_source(source, speaker, run_dir, sr, min_samples, options)
            entry.update(size=stat.st_size, mtime=stat.st_mtime)
            manifest["sources"][key] = entry
            _save_manifest(run_dir, manifest)
        report.skipped.extend((f"{key}{' ' + c if c else ''}", why) for c, why in entry["skipped"])
        clips.setdefault(speaker, []).extend(entry["clips"])

    speakers = [spk for spk in sources if clips.get(spk)]
    for spk in sources:
        if spk not in speakers:
            logger.warning("speaker '%s' has no usable clips and is left out", spk)
    if not speakers:
        raise DatasetError(f"no usable clips in '{dataset_dir}': every file was skipped (see the reasons above)")
    report.speakers = speakers
    cfg = _config_for(run_dir, speakers, options)
    write_config(cfg, run_dir / "config.json")

    all_clips = [c for spk in speakers for c in clips[spk]]
    report.features_computed = _compute_features(run_dir, all_clips, cfg, options, progress)
    report.train, report.val = _split(clips, speakers, options)
    _write_filelists(run_dir, report.train, report.val)
    return report


def _cut_source(source: Path, speaker: str, run_dir: Path, sr: int, min_samples: int,
                options: PrepareOptions) -> dict:
    """Read, check, resample and slice one file; write its clips.  Returns its manifest entry."""
    entry: dict = {"speaker": speaker, "clips": [], "skipped": []}
    try:
        wav, file_sr = read_audio(source, mono=True)
    except AudioError as exc:
        entry["skipped"].append(("", f"unreadable: {exc}"))
        return entry
    if _clipped_share(wav) > CLIPPED_SHARE:
        entry["skipped"].append(("", "clipped (flat-topped samples at full scale); re-record or lower the gain"))
        return entry
    wav = resample(torch.from_numpy(wav), file_sr, sr).numpy()
    pieces = _pieces(wav, sr, options.max_clip_seconds)
    out_dir = run_dir / "dataset" / speaker
    for k, piece in enumerate(pieces):
        label = f"clip {k}"
        peak = float(np.abs(piece).max()) if len(piece) else 0.0
        if peak < SILENCE_PEAK:
            entry["skipped"].append((label, "silent"))
            continue
        if len(piece) < min_samples:
            entry["skipped"].append((label, f"too short ({len(piece) / sr:.2f} s < {min_samples / sr:.2f} s)"))
            continue
        if options.normalize:
            piece = piece * (NORMALISED_PEAK / peak)
        name = f"{_safe_stem(source)}_{k:03d}.wav" if len(pieces) > 1 else f"{_safe_stem(source)}.wav"
        write_audio(out_dir / name, piece, sr)
        entry["clips"].append(f"dataset/{speaker}/{name}")
    if not pieces:
        entry["skipped"].append(("", "silent"))
    return entry


def _safe_stem(path: Path) -> str:
    # The reference warns about anything but [A-Za-z0-9._/] in file names; keep names portable.
    return "".join(ch if ch.isalnum() and ch.isascii() or ch in "-_" else "_" for ch in path.stem)


def _clipped_share(wav: np.ndarray) -> float:
    """Share of samples in flat runs (equal neighbours) at full scale: hard clipping's signature."""
    loud = np.abs(wav) >= CLIP_LEVEL
    flat = np.zeros_like(loud)
    flat[1:] = loud[1:] & (wav[1:] == wav[:-1])
    return float(flat.mean()) if len(wav) else 0.0


def _pieces(wav: np.ndarray, sr: int, max_seconds: float) -> list[np.ndarray]:
    """The voiced parts of ``wav`` (cut on silence), long ones split into equal parts <= max_seconds."""
    chunks = [c for c in slice_audio(wav, sr, -40.0) if c.is_speech]
    max_len = int(max_seconds * sr)
    pieces = []
    for chunk in chunks:
        part = wav[chunk.start:chunk.end]
        n = max(1, -(-len(part) // max_len))
        pieces.extend(np.array_split(part, n))
    return pieces


def _config_for(run_dir: Path, speakers: list[str], options: PrepareOptions) -> dict:
    """A new config from the template, or the existing one with an updated speaker table."""
    path = run_dir / "config.json"
    cfg = build_config(options.template, speakers, options.speech_encoder, vol_embedding=options.vol_embedding)
    cfg["data"]["f0_predictor"] = options.f0_method  # not a 4.1 key (ignored there): what the features used
    if not path.is_file():
        return cfg
    old = json.loads(path.read_text(encoding="utf-8"))
    encoder = old.get("model", {}).get("speech_encoder")
    if encoder != options.speech_encoder:
        raise DatasetError(
            f"'{run_dir}' was prepared with speech encoder {encoder!r}, not {options.speech_encoder!r}; "
            "use a new run folder (or the same --speech-encoder)"
        )
    old["spk"] = {name: i for i, name in enumerate(speakers)}
    old["model"]["n_speakers"] = len(speakers)
    return old


def _compute_features(run_dir: Path, clips: list[str], cfg: dict, options: PrepareOptions,
                      progress: Progress | None) -> int:
    """Write every missing feature file; returns how many clips needed work."""
    from ..encoders import load_encoder
    from ..f0.registry import get_f0_predictor
    from ..weights import DEFAULT_PRETRAIN_DIR
    from .spectral import spectrogram

    sr, hop = cfg["data"]["sampling_rate"], cfg["data"]["hop_length"]
    pretrain = options.pretrain_dir or DEFAULT_PRETRAIN_DIR
    encoder = predictor = None
    done = 0
    for i, rel in enumerate(clips):
        wav_path = run_dir / rel
        files = feature_paths(wav_path)
        missing = [k for k, p in files.items() if not p.is_file()]
        if progress:
            progress(i, len(clips), f"features of {wav_path.name}")
        if not missing:
            continue
        wav, _ = read_audio(wav_path, mono=True)
        tensor = torch.from_numpy(wav)
        if "soft" in missing:
            if encoder is None:
                encoder = load_encoder(options.speech_encoder, pretrain, options.device)
            _save_tensor(encoder.encode(tensor, sr).cpu(), files["soft"])
        if "f0" in missing:
            if predictor is None:
                predictor = get_f0_predictor(options.f0_method, hop_length=hop, sampling_rate=sr,
                                             device=options.device, pretrain_dir=pretrain)
            f0, uv = predictor.compute_f0_uv(wav)
            _save_array(np.stack([f0, uv]).astype(np.float32), files["f0"])
        if "spec" in missing:
            spec = spectrogram(tensor[None], cfg["data"]["filter_length"], hop, cfg["data"]["win_length"])[0]
            _save_tensor(spec, files["spec"])
        if "vol" in missing:
            _save_array(extract_volume(tensor, hop).numpy(), files["vol"])
        done += 1
    if progress:
        progress(len(clips), len(clips), "features done")
    return done


def _save_tensor(tensor: torch.Tensor, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(tensor.contiguous(), tmp)
    tmp.replace(path)


def _save_array(array: np.ndarray, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def _split(clips: dict[str, list[str]], speakers: list[str], options: PrepareOptions) -> tuple[list[str], list[str]]:
    """Per speaker, ``val_per_speaker`` clips for validation as so-vits-svc does (2), but one for
    speakers with under 20 clips and none for a speaker's only clip, so small sets keep their data."""
    rng = random.Random(options.seed)
    train, val = [], []
    for spk in speakers:
        items = sorted(clips[spk])
        rng.shuffle(items)
        k = min(options.val_per_speaker, max(1, len(items) // 10), len(items) - 1)
        val += items[:k]
        train += items[k:]
    rng.shuffle(train)
    return train, sorted(val)


def _write_filelists(run_dir: Path, train: list[str], val: list[str]) -> None:
    folder = run_dir / "filelists"
    folder.mkdir(exist_ok=True)
    (folder / "train.txt").write_text("".join(f"{p}\n" for p in train), encoding="utf-8")
    (folder / "val.txt").write_text("".join(f"{p}\n" for p in val), encoding="utf-8")


def _load_manifest(run_dir: Path, options: PrepareOptions) -> dict:
    path = run_dir / MANIFEST
    settings = {"speech_encoder": options.speech_encoder, "f0_predictor": options.f0_method,
                "normalize": options.normalize, "max_clip_seconds": options.max_clip_seconds}
    if path.is_file():
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("settings") == settings:
            return manifest
        if manifest.get("settings", {}).get("speech_encoder") == options.speech_encoder:
            logger.warning("prepare settings changed: clips are cut again and features recomputed")
            _drop_features(run_dir)
    return {"settings": settings, "sources": {}}


def _drop_features(run_dir: Path) -> None:
    for path in (run_dir / "dataset").rglob("*"):
        if path.name.endswith((".soft.pt", ".f0.npy", ".spec.pt", ".vol.npy")):
            path.unlink()


def _save_manifest(run_dir: Path, manifest: dict) -> None:
    tmp = run_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    tmp.replace(run_dir / MANIFEST)
