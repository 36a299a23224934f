"""NSF-HiFiGAN enhancement: re-vocode the converted audio from its own mel and F0.

As so-vits-svc's ``modules/enhancer.py`` (4.1-Stable): with an adaptive key ``k`` the audio is
resampled to ``100 * round(sr_enh * 2^(k/12) / 100)`` Hz, so the vocoder (which believes it runs at
``sr_enh``) sees a spectrum shifted by ``k`` semitones; the F0 is scaled and re-timed to match; the
log-mel is computed with openvpi's nvSTFT settings; the vocoder output is resampled back.

Deliberate differences from the reference:

* The result is resampled straight back to the *input* rate and padded/trimmed at the end to the
  input length. The reference resamples to the vocoder's rate (44.1 kHz) and returns that, which
  a 32 kHz or 48 kHz model then treats as its own rate. At equal rates the audio is the same.
* The caller's F0 is not modified (the reference scales it in place).
* Randomness (the source module's initial phases and noise) can come from a ``torch.Generator``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F

from .audio import resample
from .enhancer_net import HifiganConfig, NsfGenerator, load_generator
from .weights import DEFAULT_PRETRAIN_DIR, require_weight_file

logger = logging.getLogger(__name__)

MODEL_FILE = "nsf_hifigan/model"
CONFIG_FILE = "nsf_hifigan/config.json"
SOURCE = (
    "the openvpi vocoder release "
    "https://github.com/openvpi/vocoders/releases/download/nsf-hifigan-v1/nsf_hifigan_20221211.zip "
    "(unzip it into pretrain/ so that pretrain/nsf_hifigan/ holds 'model' and 'config.json')"
)
WHAT = "The NSF-HiFiGAN enhancer"
# The reference resamples with a long (128 zero-crossing) sinc kernel around the vocoder.
RESAMPLE_FILTER_WIDTH = 128
LOG_CLIP = 1e-5


class MelSpectrogram:
    """openvpi's nvSTFT log-mel (keyshift 0): manual centring, Hann window, magnitude, log."""

    def __init__(self, cfg: HifiganConfig, device: str | torch.device = "cpu") -> None:
        self.cfg = cfg
        basis = librosa.filters.mel(sr=cfg.sampling_rate, n_fft=cfg.n_fft, n_mels=cfg.num_mels,
                                    fmin=cfg.fmin, fmax=cfg.fmax)
        self.basis = torch.from_numpy(basis).float().to(device)
        self.window = torch.hann_window(cfg.win_size, device=device)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` → ``[B, num_mels, N // hop_size]`` natural-log mel magnitudes (floored at 1e-5)."""
        win, hop = self.cfg.win_size, self.cfg.hop_size
        n = audio.shape[-1]
        left = (win - hop) // 2
        right = max((win - hop + 1) // 2, win - n - left)
        # Reflection needs more samples than the padding; very short inputs are zero-padded.
        mode = "reflect" if right < n else "constant"
        padded = F.pad(audio[:, None, :], (left, right), mode=mode)[:, 0, :]
        spec = torch.stft(padded, self.cfg.n_fft, hop_length=hop, win_length=win, window=self.window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        spec = torch.view_as_real(spec)
        magnitude = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
        return torch.log(torch.clamp(torch.matmul(self.basis, magnitude), min=LOG_CLIP))


def adaptive_sample_rate(enhancer_sr: int, adaptive_key: float) -> int:
    """The rate the audio is resampled to: ``sr_enh * 2^(key/12)`` rounded to 100 Hz."""
    return 100 * int(np.round(enhancer_sr / 2 ** (-adaptive_key / 12) / 100))


def retime_f0(f0: np.ndarray, hop: int, sr: int, enh_hop: int, enh_sr: int, real_factor: float,
              n_frames: int) -> np.ndarray:
    """F0 at ``hop/sr`` frames → F0 times ``real_factor`` at the vocoder's frames of the resampled audio."""
    f0 = np.asarray(f0, dtype=np.float32) * real_factor  # float32, as the reference scales in place
    t_src = (hop / sr) * np.arange(len(f0)) / real_factor
    t_dst = (enh_hop / enh_sr) * np.arange(n_frames)
    return np.interp(t_dst, t_src, f0, left=f0[0], right=f0[-1])


class Enhancer:
    """NSF-HiFiGAN enhancer bound to one generator and device."""

    def __init__(self, net: NsfGenerator, device: str | torch.device = "cpu") -> None:
        self.net = net.eval().to(device)
        self.cfg = net.cfg
        self.device = torch.device(device)
        self.mel = MelSpectrogram(self.cfg, self.device)

    @staticmethod
    def check_files(pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR) -> tuple[Path, Path]:
        """The model and config paths; a ``WeightFileError`` naming the missing file if one is absent."""
        return (require_weight_file(pretrain_dir, MODEL_FILE, WHAT, SOURCE),
                require_weight_file(pretrain_dir, CONFIG_FILE, WHAT, SOURCE))

    @classmethod
    def from_pretrain(cls, pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
                      device: str | torch.device = "cpu") -> Enhancer:
        """Load ``pretrain/nsf_hifigan/model`` and its ``config.json``; a clear error if missing."""
        model, config = cls.check_files(pretrain_dir)
        cfg = HifiganConfig.from_json(config)
        logger.info("loading NSF-HiFiGAN enhancer from %s", model)
        return cls(load_generator(model, cfg), device)

    @torch.no_grad()
    def enhance(self, audio: torch.Tensor, sr: int, f0: torch.Tensor | np.ndarray, hop: int,
                adaptive_key: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Re-vocode ``audio`` (``[N]`` at ``sr``) given its F0 (Hz per ``hop`` samples); → ``[N]`` at ``sr``."""
        audio = torch.as_tensor(audio).float().reshape(1, -1).to(self.device)
        f0_np = np.asarray(f0.detach().cpu() if isinstance(f0, torch.Tensor) else f0, dtype=np.float32).reshape(-1)
        if f0_np.size == 0:
            raise ValueError("the enhancer needs at least one F0 frame")
        enh_sr, enh_hop = self.cfg.sampling_rate, self.cfg.hop_size
        work_sr = adaptive_sample_rate(enh_sr, adaptive_key)
        work = resample(audio, sr, work_sr, RESAMPLE_FILTER_WIDTH)
        n_frames = work.shape[-1] // enh_hop + 1
        f0_work = retime_f0(f0_np, hop, sr, enh_hop, enh_sr, enh_sr / work_sr, n_frames)
        f0_t = torch.from_numpy(f0_work).float()[None].to(self.device)
        mel = self.mel(work)
        out = self.net(mel, f0_t[:, : mel.shape[-1]], generator=generator).reshape(1, -1)
        if work_sr != sr:
            out = resample(out, work_sr, sr, RESAMPLE_FILTER_WIDTH)
        out = out[0, : audio.shape[-1]]
        return F.pad(out, (0, audio.shape[-1] - out.shape[-1]))
