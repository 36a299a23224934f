"""FCPE through torchfcpe, with the model bundled in the torchfcpe wheel (no download).

so-vits-svc 4.1 runs its own copy of the FCPE network with ``pretrain/fcpe.pt``; we use the
model torchfcpe ships instead (``assets/fcpe_c_v001.pt``), so F0 curves differ slightly from a
reference run with that file.  The voicing rule is the same: peak confidence <= ``threshold``
means unvoiced.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import torch

from .neural import NeuralF0Predictor

logger = logging.getLogger(__name__)


def load_fcpe(device: str) -> torch.nn.Module:
    """torchfcpe's bundled inference model (``assets/fcpe_c_v001.pt``) on ``device``."""
    from torchfcpe import spawn_bundled_infer_model

    # torchfcpe prints its own notices while loading; keep them out of the user's terminal.
    with contextlib.redirect_stdout(io.StringIO()) as notices:
        model = spawn_bundled_infer_model(device=device)
    logger.debug("torchfcpe: %s", notices.getvalue().strip())
    return model


class FcpeF0Predictor(NeuralF0Predictor):
    """FCPE with local-argmax decoding; frames whose confidence is at most ``threshold`` are unvoiced."""

    name = "fcpe"

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self._model = load_fcpe(self.device)

    def native_f0(self, wav: np.ndarray) -> np.ndarray:
        audio = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None, :, None]
        f0 = self._model(audio.to(self.device), self.sampling_rate, decoder_mode="local_argmax",
                         threshold=self.threshold)
        return f0[0, :, 0].float().cpu().numpy()
