"""The RMVPE network (``E2E0(4, 1, (2, 2))``) and its 16 kHz log-mel front end.

Attribute names follow the published checkpoints so their state dicts load unchanged
(``unet.encoder.layers.0.conv.0.conv.0.weight`` ...).  The published files also carry the
weights of an unused "timbre filter" (``unet.tf.*``), which ``RmvpeNet.load_checkpoint_state``
drops.

Shapes: mel ``(B, 128, T)`` with ``T`` a multiple of 32 -> salience ``(B, T, 360)`` in [0, 1],
one bin per 20 cents starting at ``CENTS_OFFSET`` (cents above 10 Hz).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
N_MELS = 128
N_BINS = 360
WINDOW = 1024
HOP = 160
MEL_FMIN = 30.0
MEL_FMAX = 8000.0
LOG_FLOOR = 1e-5
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 relative to 10 Hz
BN_MOMENTUM = 0.01
TIME_MULTIPLE = 32  # five 2x poolings


def _pairs(widths: list[int]) -> list[tuple[int, int]]:
    """(in, out) channel pairs of consecutive layers."""
    return list(zip(widths[:-1], widths[1:], strict=True))


class ResidualConv(nn.Module):
    """Two 3x3 conv-BN-ReLU layers plus an identity or 1x1 shortcut.  ``(B, C, T, F)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + skip


class ResidualStack(nn.Module):
    """``n_blocks`` residual convs (the first changes the width)."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * n_blocks
        self.conv = nn.ModuleList(ResidualConv(a, b) for a, b in _pairs(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.conv:
            x = block(x)
        return x


class DownStage(ResidualStack):
    """A residual stack whose output is kept for the skip connection, then 2x2 average-pooled."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int, pool: tuple[int, int]) -> None:
        super().__init__(in_channels, out_channels, n_blocks)
        self.pool = nn.AvgPool2d(pool)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        skip = super().forward(x)
        return skip, self.pool(skip)


class UpStage(nn.Module):
    """2x transposed conv, concatenate the skip tensor, then a residual stack."""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=stride, padding=1,
                               output_padding=(1, 1), bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.conv2 = ResidualStack(2 * out_channels, out_channels, n_blocks).conv

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class UNetEncoder(nn.Module):
    def __init__(self, n_stages: int, n_blocks: int, pool: tuple[int, int], width: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1, momentum=BN_MOMENTUM)
        widths = [1] + [width * 2**i for i in range(n_stages)]
        self.layers = nn.ModuleList(DownStage(a, b, n_blocks, pool) for a, b in _pairs(widths))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.bn(x)
        skips = []
        for stage in self.layers:
            skip, x = stage(x)
            skips.append(skip)
        return x, skips


class UNetMiddle(nn.Module):
    def __init__(self, in_channels: int, n_layers: int, n_blocks: int) -> None:
        super().__init__()
        widths = [in_channels] + [2 * in_channels] * n_layers
        self.layers = nn.ModuleList(ResidualStack(a, b, n_blocks) for a, b in _pairs(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class UNetDecoder(nn.Module):
    def __init__(self, in_channels: int, n_stages: int, n_blocks: int, stride: tuple[int, int]) -> None:
        super().__init__()
        widths = [in_channels // 2**i for i in range(n_stages + 1)]
        self.layers = nn.ModuleList(UpStage(a, b, n_blocks, stride) for a, b in _pairs(widths))

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for stage, skip in zip(self.layers, reversed(skips), strict=True):
            x = stage(x, skip)
        return x


class DeepUNet(nn.Module):
    def __init__(self, n_blocks: int, pool: tuple[int, int], n_stages: int = 5, n_middle: int = 4,
                 width: int = 16) -> None:
        super().__init__()
        self.encoder = UNetEncoder(n_stages, n_blocks, pool, width)
        deepest = width * 2 ** (n_stages - 1)
        self.intermediate = UNetMiddle(deepest, n_middle, n_blocks)
        self.decoder = UNetDecoder(2 * deepest, n_stages, n_blocks, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, in_features: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, num_layers=n_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RmvpeNet(nn.Module):
    """U-Net over the log-mel image, 3-channel conv, BiGRU, per-frame sigmoid over 360 pitch bins."""

    def __init__(self, n_blocks: int = 4, n_gru: int = 1, pool: tuple[int, int] = (2, 2), width: int = 16) -> None:
        super().__init__()
        self.unet = DeepUNet(n_blocks, pool, width=width)
        self.cnn = nn.Conv2d(width, 3, 3, padding=1)
        self.fc = nn.Sequential(
            BiGRU(3 * N_MELS, 256, n_gru),
            nn.Linear(512, N_BINS),
            nn.Dropout(0.25),
            nn.Sigmoid(),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, 128, T)`` log-mel, ``T % 32 == 0`` -> ``(B, T, 360)`` salience."""
        x = self.cnn(self.unet(mel.transpose(1, 2).unsqueeze(1)))  # (B, 3, T, 128)
        return self.fc(x.transpose(1, 2).flatten(2))

    def load_checkpoint_state(self, state: dict[str, torch.Tensor], assign: bool = False) -> None:
        """Load a published state dict strictly, ignoring the unused timbre-filter weights.

        ``assign=True`` adopts the tensors themselves (for a network built on the meta device).
        """
        self.load_state_dict({k: v for k, v in state.items() if not k.startswith("unet.tf.")}, assign=assign)


class LogMel(nn.Module):
    """RMVPE's front end: |STFT| (Hann 1024, hop 160, centred) -> HTK mel 30-8000 Hz -> log."""

    def __init__(self) -> None:
        super().__init__()
        from librosa.filters import mel as mel_filters

        basis = mel_filters(sr=SAMPLE_RATE, n_fft=WINDOW, n_mels=N_MELS, fmin=MEL_FMIN, fmax=MEL_FMAX, htk=True)
        self.register_buffer("basis", torch.from_numpy(np.asarray(basis, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(WINDOW), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` 16 kHz audio -> ``(B, 128, N // 160 + 1)``."""
        spec = torch.stft(audio, WINDOW, HOP, WINDOW, window=self.window, center=True, return_complex=True)
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        return torch.log(torch.clamp(torch.matmul(self.basis, magnitude), min=LOG_FLOOR))


def salience_to_f0(salience: torch.Tensor, threshold: float) -> torch.Tensor:
    """Local weighted average of the cents around each frame's peak -> Hz; 0 if peak <= threshold.

    ``salience`` is ``(T, 360)``.  The window is the peak bin +-4, clipped at the ends.
    """
    peak_value, peak = salience.max(dim=-1)
    offsets = torch.arange(-4, 5, device=salience.device)
    index = peak[:, None] + offsets
    inside = (index >= 0) & (index < N_BINS)
    index = index.clamp(0, N_BINS - 1)
    weights = torch.gather(salience, 1, index) * inside
    cents = CENTS_PER_BIN * index.to(salience.dtype) + CENTS_OFFSET
    average = (weights * cents).sum(dim=1) / weights.sum(dim=1)
    f0 = 10.0 * torch.pow(2.0, average / 1200.0)
    return torch.where(peak_value > threshold, f0, torch.zeros_like(f0))
