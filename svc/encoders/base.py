"""The interface every speech (content) encoder implements."""

from __future__ import annotations

import numpy as np
import torch

from ..audio import resample

ENCODER_SAMPLE_RATE = 16000


class ContentEncoder(torch.nn.Module):
    """A speech encoder: 16 kHz mono audio in, content features at 50 frames/s out.

    Subclasses set ``name`` and ``dim`` and implement ``forward``.
    """

    name: str = ""
    dim: int = 0

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        """Features of ``wav16k`` ``(1, N)``, shape ``(1, dim, frames)``."""
        raise NotImplementedError("subclasses implement forward")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def encode(self, wav: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        """Features of mono audio ``wav`` (``(N,)`` or ``(1, N)``) at rate ``sr``.

        Resamples to 16 kHz the way so-vits-svc does, runs on the module's device and dtype,
        and returns float32 ``(1, dim, frames)``.
        """
        wav = torch.as_tensor(wav, dtype=torch.float32)
        if wav.dim() == 2 and wav.shape[0] == 1:
            wav = wav[0]
        if wav.dim() != 1:
            raise ValueError(f"expected mono audio of shape (N,) or (1, N), got {tuple(wav.shape)}")
        wav16k = resample(wav, sr, ENCODER_SAMPLE_RATE)[None]
        with torch.inference_mode():
            feats = self(wav16k.to(self.device, self.dtype))
        return feats.float()
