"""The one table of speech (content) encoders: config name -> weight file, output size, loader.

``model.speech_encoder`` in a so-vits-svc ``config.json`` names one of these keys.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

CONTENTVEC_SOURCE = (
    "https://ibm.ent.box.com/s/z1wgl1stco8ffooyatzdwsqn2psd9lrr"
    " (ContentVec legacy 500, or RVC's hubert_base.pt renamed)"
)


@dataclass(frozen=True)
class EncoderSpec:
    """Facts about one speech encoder.

    ``loader`` is ``"module:function"``; the function takes ``(path: Path, spec: EncoderSpec)``
    and returns a ``ContentEncoder`` on the CPU in float32.  Modules are imported only when used.
    """

    name: str
    filename: str
    dim: int
    source: str
    loader: str


ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec("vec768l12", "checkpoint_best_legacy_500.pt", 768, CONTENTVEC_SOURCE,
                    "svc.encoders.hubert:load_contentvec768l12"),
        EncoderSpec("vec256l9", "checkpoint_best_legacy_500.pt", 256, CONTENTVEC_SOURCE,
                    "svc.encoders.hubert:load_contentvec256l9"),
        EncoderSpec("hubertsoft", "hubert-soft-0d54a1f4.pt", 256,
                    "https://github.com/bshall/hubert/releases/download/v0.1/hubert-soft-0d54a1f4.pt",
                    "svc.encoders.hubert_soft:load_hubert_soft"),
        EncoderSpec("whisper-ppg", "medium.pt", 1024,
                    "https://openaipublic.azureedge.net/main/whisper/models/"
                    "345ae4da62f9b3d59415adc60127b97c714f32e89e936602e85993674d08dcb1/medium.pt",
                    "svc.encoders.whisper:load_whisper_ppg"),
        EncoderSpec("whisper-ppg-large", "large-v2.pt", 1280,
                    "https://openaipublic.azureedge.net/main/whisper/models/"
                    "81f7c96c852ee8fc832187b0132e569d6c3065a3252ed18e56effd0b6a73e524/large-v2.pt",
                    "svc.encoders.whisper:load_whisper_ppg"),
        EncoderSpec("cnhubertlarge", "chinese-hubert-large-fairseq-ckpt.pt", 1024,
                    "https://huggingface.co/TencentGameMate/chinese-hubert-large",
                    "svc.encoders.hubert:load_cnhubert_large"),
        EncoderSpec("dphubert", "DPHuBERT-sp0.75.pth", 768,
                    "https://huggingface.co/pyf98/DPHuBERT",
                    "svc.encoders.dphubert:load_dphubert"),
        EncoderSpec("wavlmbase+", "WavLM-Base+.pt", 768,
                    "https://github.com/microsoft/unilm/tree/master/wavlm (WavLM Base+)",
                    "svc.encoders.wavlm:load_wavlm"),
    )
}


def get_spec(name: str) -> EncoderSpec:
    """The spec of encoder ``name``; an unknown name is a clear error."""
    from ..errors import ConfigError

    try:
        return ENCODERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown speech encoder {name!r}; available: {', '.join(ENCODERS)}"
        ) from None


def resolve_loader(spec: EncoderSpec):
    """Import and return the loader function named by ``spec.loader``."""
    module_name, func_name = spec.loader.split(":")
    return getattr(importlib.import_module(module_name), func_name)
