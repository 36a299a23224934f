"""The NSF-HiFiGAN generator of openvpi's vocoder release, as the enhancer loads it.

The network is the models' ``NsfHifiGan`` (whose parameter names are openvpi's too) with 4.0
padding, no speaker conditioning and openvpi's frame-level sine source, which is all that differs
and so all that lives here. ``{'generator': state_dict}`` files load with ``strict=True`` after
their weight-normalised layers (``weight_g``/``weight_v``) are folded into plain weights, as the
reference does with ``remove_weight_norm`` before inference.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, WeightFileError
from .models.nsf_hifigan import NsfHifiGan
from .models.weight_norm import fold_weight_norm
from .weights import float_state, load_module_state, load_torch_file

HARMONICS = 8  # m_source always has 8 overtones (9 sine components) in these checkpoints
WHAT = "an NSF-HiFiGAN checkpoint of the openvpi release"
MATCH = "its config.json (keep the model file and config.json of the same release together)"


@dataclass(frozen=True)
class HifiganConfig:
    """The keys of the vocoder's ``config.json`` that inference uses."""

    sampling_rate: int
    num_mels: int
    n_fft: int
    win_size: int
    hop_size: int
    fmin: float
    fmax: float
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]

    @classmethod
    def from_dict(cls, data: dict, source: str = "config.json") -> HifiganConfig:
        try:
            cfg = cls(
                sampling_rate=int(data["sampling_rate"]),
                num_mels=int(data["num_mels"]),
                n_fft=int(data["n_fft"]),
                win_size=int(data["win_size"]),
                hop_size=int(data["hop_size"]),
                fmin=float(data["fmin"]),
                fmax=float(data["fmax"]),
                upsample_rates=tuple(int(v) for v in data["upsample_rates"]),
                upsample_kernel_sizes=tuple(int(v) for v in data["upsample_kernel_sizes"]),
                upsample_initial_channel=int(data["upsample_initial_channel"]),
                resblock=str(data["resblock"]),
                resblock_kernel_sizes=tuple(int(v) for v in data["resblock_kernel_sizes"]),
                resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in data["resblock_dilation_sizes"]),
            )
        except KeyError as exc:
            raise ConfigError(
                f"The vocoder config '{source}' has no key {exc}; use the config.json of the release."
            ) from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"The vocoder config '{source}' has a malformed value ({exc}).") from exc
        cfg._validate(source)
        return cfg

    @classmethod
    def from_json(cls, path: str | Path) -> HifiganConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"Cannot read the vocoder config '{path}' ({exc}); restore it from the release.") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"The vocoder config '{path}' is not a JSON object; restore it from the release.")
        return cls.from_dict(data, str(path))

    def _validate(self, source: str) -> None:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError(f"In '{source}', upsample_rates and upsample_kernel_sizes differ in length.")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ConfigError(f"In '{source}', resblock_kernel_sizes and resblock_dilation_sizes differ in length.")
        if self.resblock not in ("1", "2"):
            raise ConfigError(f"In '{source}', resblock must be \"1\" or \"2\", not {self.resblock!r}.")
        if math.prod(self.upsample_rates) != self.hop_size:
            raise ConfigError(f"In '{source}', the product of upsample_rates must equal hop_size ({self.hop_size}).")


def harmonic_source(
    f0: torch.Tensor, upp: int, sampling_rate: int, generator: torch.Generator | None = None,
    sine_amp: float = 0.1, noise_std: float = 0.003,
) -> torch.Tensor:
    """Sine excitation with ``HARMONICS`` overtones: f0 ``[B, T]`` (Hz, 0 = unvoiced) → ``[B, T*upp, 9]``.

    The phase is accumulated per frame in float64, spread linearly over the ``upp`` samples of
    each frame, and wrap-corrected per sample, as openvpi's ``SineGen``; the random initial phases
    (``rand [B, 9]``) and the noise (``randn [B, T*upp, 9]``) are drawn in that order.
    """
    dim = HARMONICS + 1
    harmonics = f0[..., None] * torch.arange(1, dim + 1, device=f0.device)  # [B, T, dim]
    step = (harmonics / sampling_rate) % 1
    phase0 = torch.rand(f0.shape[0], dim, device=f0.device, generator=generator)
    phase0[:, 0] = 0
    step[:, 0, :] += phase0
    # Phase at frame starts (in cycles), interpolated to samples, then wrapped to [0, 1).
    frame_phase = torch.cumsum(step.double(), dim=1).float() * upp
    sample_phase = F.interpolate(frame_phase.transpose(1, 2), scale_factor=upp, mode="linear",
                                 align_corners=True).transpose(1, 2) % 1
    step_up = F.interpolate(step.transpose(1, 2), scale_factor=upp, mode="nearest").transpose(1, 2)
    # Where the wrapped phase decreases a cycle was completed: subtract it from the running sum.
    wraps = torch.zeros_like(step_up)
    wraps[:, 1:, :] = -((sample_phase[:, 1:, :] - sample_phase[:, :-1, :]) < 0).to(step_up.dtype)
    sines = torch.sin(torch.cumsum(step_up.double() + wraps.double(), dim=1) * 2 * math.pi).float() * sine_amp
    voiced = F.interpolate((f0 > 0).to(sines.dtype)[:, None, :], scale_factor=upp, mode="nearest").transpose(1, 2)
    noise_amp = voiced * noise_std + (1 - voiced) * sine_amp / 3
    noise = noise_amp * torch.randn(sines.shape, device=sines.device, dtype=sines.dtype, generator=generator)
    return sines * voiced + noise


class OpenvpiSineSource(nn.Module):
    """openvpi's ``m_source``: merges the 9 sine components into one excitation with ``l_linear`` + tanh."""

    def __init__(self, sampling_rate: int) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self.l_linear = nn.Linear(HARMONICS + 1, 1)

    def forward(self, f0: torch.Tensor, upp: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """f0 ``[B, T]`` → excitation ``[B, 1, T*upp]``."""
        return torch.tanh(self.l_linear(harmonic_source(f0, upp, self.sampling_rate, generator))).transpose(1, 2)


class NsfGenerator(NsfHifiGan):
    """openvpi's NSF-HiFiGAN: the models' ``NsfHifiGan`` without speaker conditioning, with 4.0
    padding and openvpi's frame-level sine source; keeps its ``HifiganConfig`` for the enhancer."""

    def __init__(self, cfg: HifiganConfig) -> None:
        # The source is built first, as openvpi does, so a seeded initialisation draws in its order.
        super().__init__(cfg.num_mels, list(cfg.upsample_rates), list(cfg.upsample_kernel_sizes),
                         cfg.upsample_initial_channel, cfg.resblock, list(cfg.resblock_kernel_sizes),
                         [list(d) for d in cfg.resblock_dilation_sizes], legacy_padding=True,
                         source=OpenvpiSineSource(cfg.sampling_rate))
        self.cfg = cfg


def load_generator(model_path: str | Path, cfg: HifiganConfig, device: str | torch.device = "cpu") -> NsfGenerator:
    """Load openvpi's ``{'generator': state_dict}`` file into a generator in eval mode."""
    checkpoint = load_torch_file(model_path, WHAT)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("generator"), dict):
        raise WeightFileError(f"'{model_path}' is not an NSF-HiFiGAN checkpoint (no 'generator' weights).")
    net = NsfGenerator(cfg)
    try:
        state = fold_weight_norm(float_state(checkpoint["generator"]), net)
    except KeyError as exc:
        raise WeightFileError(f"'{model_path}' does not match {MATCH}: missing {exc}") from None
    load_module_state(net, state, model_path, MATCH)
    return net.eval().to(device)
