"""Shared frame-rate handling of the network predictors (crepe, fcpe, rmvpe)."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch

from .base import F0Predictor


def resize_nearest(f0: np.ndarray, length: int) -> np.ndarray:
    """Nearest-neighbour resize with ``torch.nn.functional.interpolate``'s exact index rule."""
    x = torch.from_numpy(np.ascontiguousarray(f0, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(x, size=length, mode="nearest")[0, 0].numpy()


class NeuralF0Predictor(F0Predictor):
    """A predictor whose network runs at its own frame rate on ``device``.

    ``native_f0`` returns F0 at the network's frames (0 = unvoiced); it is resized to the
    model's hop with nearest-neighbour, as so-vits-svc does.  As in so-vits-svc, only crepe
    limits its search to F0_MIN..F0_MAX; fcpe and rmvpe decode over their networks' own range.
    """

    uses_device = True

    def frame_f0(self, wav: np.ndarray, p_len: int) -> np.ndarray:
        with torch.inference_mode():
            f0 = self.native_f0(wav)
        return resize_nearest(f0, p_len)

    @abstractmethod
    def native_f0(self, wav: np.ndarray) -> np.ndarray:
        """F0 in Hz at the network's own frame rate, 0 where unvoiced."""
