"""The NSF-HiFiGAN generator of openvpi's vocoder release, as the enhancer loads it.

Parameter names follow openvpi's checkpoints (``conv_pre``, ``ups.i``, ``noise_convs.i``,
``resblocks.k.convs1.j``/``convs2.j`` or ``convs.j``, ``conv_post``, ``m_source.l_linear``), so
``{'generator': state_dict}`` files load with ``strict=True``. Their weight-normalised layers
(``weight_g``/``weight_v``) are folded into plain weights at load time, as the reference does with
``remove_weight_norm`` before inference.
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

LRELU_SLOPE = 0.1
HARMONICS = 8  # m_source always has 8 overtones (9 sine components) in these checkpoints


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

    @property
    def upsampling(self) -> int:
        return math.prod(self.upsample_rates)


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock(nn.Module):
    """HiFiGAN residual block: type "1" (``convs1``/``convs2`` pairs) or type "2" (``convs``)."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...], kind: str) -> None:
        super().__init__()
        self.kind = kind

        def conv(d: int) -> nn.Conv1d:
            return nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=_padding(kernel_size, d))

        if kind == "1":
            self.convs1 = nn.ModuleList(conv(d) for d in dilations)
            self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        else:
            self.convs = nn.ModuleList(conv(d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` → ``[B, C, T]``."""
        if self.kind == "1":
            for c1, c2 in zip(self.convs1, self.convs2, strict=True):
                x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        else:
            for c in self.convs:
                x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


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


class SourceModule(nn.Module):
    """``m_source``: merges the 9 sine components into one excitation with ``l_linear`` + tanh."""

    def __init__(self, sampling_rate: int) -> None:
        super().__init__()
        self.sampling_rate = sampling_rate
        self.l_linear = nn.Linear(HARMONICS + 1, 1)

    def forward(self, f0: torch.Tensor, upp: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """f0 ``[B, T]`` → excitation ``[B, T*upp, 1]``."""
        return torch.tanh(self.l_linear(harmonic_source(f0, upp, self.sampling_rate, generator)))


class NsfGenerator(nn.Module):
    """NSF-HiFiGAN generator without speaker conditioning: (mel, f0) → waveform."""

    def __init__(self, cfg: HifiganConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.m_source = SourceModule(cfg.sampling_rate)
        ch = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, ch, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        n_up = len(cfg.upsample_rates)
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)):
            c_in, c_out = ch // 2**i, ch // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(c_in, c_out, k, u, padding=(k - u) // 2))
            if i + 1 < n_up:
                stride = math.prod(cfg.upsample_rates[i + 1:])
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=stride * 2, stride=stride, padding=stride // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, c_out, kernel_size=1))
            for kr, dil in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock(c_out, kr, dil, cfg.resblock))
        self.conv_post = nn.Conv1d(ch // 2**n_up, 1, 7, 1, padding=3)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """mel ``[B, num_mels, T]``, f0 ``[B, T]`` (Hz) → audio ``[B, 1, T * hop_size]``."""
        source = self.m_source(f0, self.cfg.upsampling, generator).transpose(1, 2)
        x = self.conv_pre(mel)
        n_kernels = len(self.cfg.resblock_kernel_sizes)
        for i, (up, noise_conv) in enumerate(zip(self.ups, self.noise_convs, strict=True)):
            x = up(F.leaky_relu(x, LRELU_SLOPE)) + noise_conv(source)
            blocks = self.resblocks[i * n_kernels: (i + 1) * n_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / n_kernels
        # The final activation uses leaky_relu's default slope (0.01), as the checkpoints were trained.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every ``X.weight_g``/``X.weight_v`` pair by ``X.weight = g * v / ||v||`` (norm over dims ≥ 1)."""
    out = {}
    for key, value in state.items():
        if key.split(".")[-1] == "weight_g":
            continue
        if key.split(".")[-1] == "weight_v":
            base = key[: -len("_v")]
            g = state.get(base + "_g")
            if g is None:
                raise KeyError(base + "_g")
            v = value.float()
            out[base] = (v * (g.float() / torch.norm_except_dim(v, 2, 0))).to(value.dtype)
        else:
            out[key] = value
    return out


def build_generator(cfg: HifiganConfig) -> NsfGenerator:
    """A randomly initialised generator for ``cfg`` (weights come from :func:`load_generator`)."""
    return NsfGenerator(cfg)


def load_generator(model_path: str | Path, cfg: HifiganConfig, device: str | torch.device = "cpu") -> NsfGenerator:
    """Load openvpi's ``{'generator': state_dict}`` file into a generator in eval mode."""
    model_path = Path(model_path)
    try:
        checkpoint = torch.load(model_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or pickled-object files
        raise WeightFileError(
            f"Cannot load the NSF-HiFiGAN weights '{model_path}' ({type(exc).__name__}); "
            "download the file again from the openvpi release."
        ) from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("generator"), dict):
        raise WeightFileError(f"'{model_path}' is not an NSF-HiFiGAN checkpoint (no 'generator' weights).")
    net = build_generator(cfg)
    try:
        net.load_state_dict(fold_weight_norm(checkpoint["generator"]), strict=True)
    except (KeyError, RuntimeError) as exc:
        raise WeightFileError(
            f"The weights in '{model_path}' do not fit its config.json ({str(exc).splitlines()[0]}); "
            "keep the model file and config.json of the same release together."
        ) from exc
    return net.eval().to(device)
