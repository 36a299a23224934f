"""Training clips with their cached features, and batching them.

A run folder lists its clips in ``filelists/train.txt`` / ``val.txt`` (paths relative to the
run folder, as so-vits-svc's filelists are relative to its working folder); each clip
``dataset/<speaker>/<name>.wav`` has the feature files so-vits-svc's preprocessing writes:
``.wav.soft.pt`` (content units), ``.wav.f0.npy`` (F0 and voicing), ``.spec.pt`` (linear
spectrogram) and ``.wav.vol.npy`` (volume).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ..features import repeat_expand
from .config import RunConfig
from .spectral import spectrogram

MAX_FRAMES = 800  # longer clips are cropped to CROP_FRAMES at random, as the reference does
CROP_FRAMES = 790


def feature_paths(wav: Path) -> dict[str, Path]:
    """The cached feature files of clip ``wav``, under so-vits-svc's names."""
    return {
        "soft": wav.with_name(wav.name + ".soft.pt"),
        "f0": wav.with_name(wav.name + ".f0.npy"),
        "spec": wav.with_name(wav.stem + ".spec.pt"),
        "vol": wav.with_name(wav.name + ".vol.npy"),
    }


def read_filelist(run_dir: Path, name: str) -> list[Path]:
    """Clip paths of ``filelists/<name>``, resolved against the run folder."""
    path = run_dir / "filelists" / name
    if not path.is_file():
        return []
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [run_dir / line for line in lines if line]


@dataclass
class Clip:
    """One clip's aligned tensors (``T`` frames, ``T*hop`` samples)."""

    c: torch.Tensor  # (ssl_dim, T)
    f0: torch.Tensor  # (T,)
    spec: torch.Tensor  # (F, T)
    audio: torch.Tensor  # (1, T*hop)
    sid: int
    uv: torch.Tensor  # (T,)
    vol: torch.Tensor  # (T,)


class ClipDataset(Dataset):
    """Clips of a filelist; ``augment`` enables the reference's volume augmentation (``vol_aug``)."""

    def __init__(self, run_dir: str | Path, filelist: str, cfg: RunConfig, augment: bool = True):
        self.run_dir = Path(run_dir)
        self.paths = read_filelist(self.run_dir, filelist)
        self.cfg = cfg
        self.augment = augment and cfg.train.vol_aug

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Clip:
        clip = self.load(index)
        if self.augment and random.random() < 0.5:
            clip = self._volume_shift(clip)
        return _crop(clip, self.cfg.train.hop_length)

    def load(self, index: int) -> Clip:
        """The clip's cached features, trimmed to a common frame count."""
        wav_path = self.paths[index]
        t = self.cfg.train
        files = feature_paths(wav_path)
        audio, sr = sf.read(str(wav_path), dtype="float32")
        if sr != t.sampling_rate:
            raise ValueError(f"'{wav_path}' is {sr} Hz, the config says {t.sampling_rate}; run prepare again")
        f0, uv = np.load(files["f0"])
        spec = torch.load(files["spec"], weights_only=True)
        units = torch.load(files["soft"], weights_only=True)
        units = units[0] if units.dim() == 3 else units
        c = repeat_expand(units.float(), len(f0), self.cfg.model.data.unit_interpolate_mode)
        vol = torch.from_numpy(np.load(files["vol"])).float() if files["vol"].is_file() else torch.zeros(len(f0))
        n = min(c.shape[-1], spec.shape[-1], len(f0), len(vol), len(audio) // t.hop_length)
        return Clip(
            c=c[:, :n], f0=torch.from_numpy(np.asarray(f0[:n], dtype=np.float32)), spec=spec[:, :n].float(),
            audio=torch.from_numpy(audio[: n * t.hop_length])[None], sid=self._speaker_id(wav_path),
            uv=torch.from_numpy(np.asarray(uv[:n], dtype=np.float32)), vol=vol[:n],
        )

    def _speaker_id(self, wav_path: Path) -> int:
        return self.cfg.model.spk[wav_path.parent.name]

    def _volume_shift(self, clip: Clip) -> Clip:
        """Scale audio and volume by a random gain (1/10 up to the headroom), recompute the spectrogram."""
        t = self.cfg.train
        peak = float(clip.audio.abs().max()) + 1e-5
        gain = 10 ** random.uniform(-1, min(1.0, float(np.log10(1 / peak))))
        audio = clip.audio * gain
        spec = spectrogram(audio, t.filter_length, t.hop_length, t.win_length)[0]
        return Clip(c=clip.c, f0=clip.f0, spec=spec[:, : clip.spec.shape[1]], audio=audio, sid=clip.sid,
                    uv=clip.uv, vol=clip.vol * gain)


def _crop(clip: Clip, hop: int) -> Clip:
    n = clip.f0.shape[0]
    if n <= MAX_FRAMES:
        return clip
    start = random.randint(0, n - MAX_FRAMES)
    end = start + CROP_FRAMES
    return Clip(c=clip.c[:, start:end], f0=clip.f0[start:end], spec=clip.spec[:, start:end],
                audio=clip.audio[:, start * hop:end * hop], sid=clip.sid, uv=clip.uv[start:end],
                vol=clip.vol[start:end])


class Collate:
    """Pads a list of clips into a batch (longest first); at least ``min_frames`` frames long."""

    def __init__(self, hop: int, min_frames: int = 0):
        self.hop = hop
        self.min_frames = min_frames

    def __call__(self, clips: list[Clip]) -> dict[str, torch.Tensor]:
        clips = sorted(clips, key=lambda x: x.f0.shape[0], reverse=True)
        b = len(clips)
        frames = max(self.min_frames, clips[0].f0.shape[0])
        batch = {
            "c": torch.zeros(b, clips[0].c.shape[0], frames), "f0": torch.zeros(b, frames),
            "spec": torch.zeros(b, clips[0].spec.shape[0], frames), "audio": torch.zeros(b, 1, frames * self.hop),
            "sid": torch.zeros(b, 1, dtype=torch.long), "lengths": torch.zeros(b, dtype=torch.long),
            "uv": torch.zeros(b, frames), "vol": torch.zeros(b, frames),
        }
        for i, clip in enumerate(clips):
            n = clip.f0.shape[0]
            batch["c"][i, :, :n] = clip.c
            batch["f0"][i, :n] = clip.f0
            batch["spec"][i, :, :n] = clip.spec
            batch["audio"][i, :, : clip.audio.shape[1]] = clip.audio
            batch["sid"][i, 0] = clip.sid
            batch["lengths"][i] = n
            batch["uv"][i, :n] = clip.uv
            batch["vol"][i, :n] = clip.vol
        return batch
