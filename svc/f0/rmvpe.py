"""RMVPE with our own network (``rmvpe_net``) and the weights in ``pretrain/rmvpe.pt``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import WeightFileError
from ..weights import float_state, load_torch_file, require_weight_file
from .neural import NeuralF0Predictor
from .registry import F0_PREDICTORS
from .rmvpe_net import SAMPLE_RATE, TIME_MULTIPLE, LogMel, RmvpeNet, salience_to_f0

RMVPE_FILENAME = F0_PREDICTORS["rmvpe"].weight_file
RMVPE_SOURCE = F0_PREDICTORS["rmvpe"].weight_source
RESAMPLE_FILTER_WIDTH = 128  # so-vits-svc's torchaudio Resample setting


def load_rmvpe(path: Path, device: str) -> RmvpeNet:
    """The network from ``path``: ``{'model': state_dict}`` (yxlllc) or a bare state dict (RVC)."""
    checkpoint = load_torch_file(path, f"an RMVPE weight file from {RMVPE_SOURCE}")
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise WeightFileError(f"'{path}' does not hold an RMVPE state dict; download it again from {RMVPE_SOURCE}.")
    with torch.device("meta"):  # skip a random initialisation that the weights replace anyway
        net = RmvpeNet()
    try:
        net.load_checkpoint_state(float_state(state), assign=True)
    except RuntimeError as exc:
        raise WeightFileError(
            f"'{path}' is not an RMVPE (E2E0) checkpoint: its weights do not fit the network; "
            f"download it again from {RMVPE_SOURCE}."
        ) from exc
    return net.eval().to(device)


def rmvpe_salience(net: RmvpeNet, mel: torch.Tensor) -> torch.Tensor:
    """``(1, 128, T)`` log-mel -> ``(T, 360)`` salience (the time axis is zero-padded to 32)."""
    n_frames = mel.shape[-1]
    padded = torch.nn.functional.pad(mel, (0, -n_frames % TIME_MULTIPLE))
    return net(padded)[0, :n_frames]


class RmvpeF0Predictor(NeuralF0Predictor):
    """RMVPE; a frame is voiced when its peak salience exceeds ``threshold``."""

    name = "rmvpe"

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        path = require_weight_file(self.pretrain_dir, RMVPE_FILENAME, "The rmvpe F0 predictor", RMVPE_SOURCE)
        self._net = load_rmvpe(path, self.device)
        self._mel = LogMel().to(self.device)

    def native_f0(self, wav: np.ndarray) -> np.ndarray:
        return salience_to_f0(self.salience(wav), self.threshold).cpu().numpy()

    def salience(self, wav: np.ndarray) -> torch.Tensor:
        """The network's ``(frames, 360)`` output for ``wav`` at ``sampling_rate`` (10 ms frames)."""
        import torchaudio.functional as audio_functional

        audio = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None].to(self.device)
        with torch.inference_mode():
            if self.sampling_rate != SAMPLE_RATE:
                audio = audio_functional.resample(audio, self.sampling_rate, SAMPLE_RATE,
                                                  lowpass_filter_width=RESAMPLE_FILTER_WIDTH)
            return rmvpe_salience(self._net, self._mel(audio))
