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

    def bfloat16_parts(self) -> list[torch.nn.Module]:
        """The submodules that run in bfloat16 under reduced precision on a CPU (see ``use_bfloat16``).

        The transformer layers and the conv feature extractor's 512-channel layers: on AMX CPUs
        they ran 3.4x and 2x faster in bfloat16.  What sees the raw signal (the extractor's first
        layer and its group norm, Whisper's log-Mel convs) stays float32, and so does the grouped
        position convolution: oneDNN's AMX kernel for it (torch 2.9) returned wrong values with
        under 16 channels per group.  An encoder that lists none stays float32.
        """
        return []

    def use_bfloat16(self) -> ContentEncoder:
        """Convert ``bfloat16_parts`` to bfloat16 in place (the rest stays float32); returns ``self``."""
        for part in self.bfloat16_parts():
            part.to(torch.bfloat16)
        return self

    def encode(self, wav: torch.Tensor | np.ndarray, sr: int) -> torch.Tensor:
        """Features of mono audio ``wav`` (``(N,)`` or ``(1, N)``) at rate ``sr``.

        Resamples to 16 kHz the way so-vits-svc does, runs on the module's device (and dtype),
        and returns float32 ``(1, dim, frames)``.
        """
        wav = torch.as_tensor(wav, dtype=torch.float32)
        if wav.dim() == 2 and wav.shape[0] == 1:
            wav = wav[0]
        if wav.dim() != 1:
            raise ValueError(f"expected mono audio of shape (N,) or (1, N), got {tuple(wav.shape)}")
        wav16k = resample(wav, sr, ENCODER_SAMPLE_RATE)[None]
        # A float16 model (on a GPU) takes float16 audio; on a CPU the front-end is float32 anyway.
        dtype = self.dtype if self.device.type != "cpu" else torch.float32
        with torch.inference_mode():
            feats = self(wav16k.to(self.device, dtype))
        return feats.float()


def param_dtype(module: torch.nn.Module, default: torch.dtype = torch.float32) -> torch.dtype:
    """The dtype of ``module``'s first parameter (``default`` if it has none): a part converted by
    ``use_bfloat16`` reports bfloat16."""
    first = next(module.parameters(), None)
    return default if first is None else first.dtype
