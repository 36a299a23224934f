"""The diffusion's mel domain: the NSF-HiFiGAN vocoder's log-mel and its vocoding.

Both are the enhancer's (``svc.enhancer.Enhancer``: openvpi's nvSTFT mel and generator), reused as
they are; this module only adds what the diffusion config says about them.
"""

from __future__ import annotations

import torch

LOG10_SCALE = 0.434294  # vocoder.type "nsf-hifigan-log10" takes log10 mels


def audio_to_mel(vocoder, audio: torch.Tensor) -> torch.Tensor:
    """Natural-log mel of ``audio [N]`` at the vocoder's rate: ``[1, num_mels, N // hop]``."""
    return vocoder.mel(audio.float()[None].to(vocoder.device))


def mel_to_audio(vocoder, mel: torch.Tensor, f0: torch.Tensor, generator: torch.Generator,
                 vocoder_type: str = "nsf-hifigan") -> torch.Tensor:
    """Vocode ``mel [1, num_mels, T]`` with ``f0 [1, >= T]`` Hz (cut to T) → audio ``[T * hop]``."""
    if vocoder_type == "nsf-hifigan-log10":
        mel = LOG10_SCALE * mel
    return vocoder.net(mel, f0[:, : mel.shape[-1]], generator=generator).reshape(-1)
