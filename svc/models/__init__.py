"""The so-vits-svc generator (``SynthesizerTrn``) and its parts."""

from .f0_decoder import f0_to_coarse
from .nsf_hifigan import NsfHifiGan, SineSource
from .sovits3 import Sovits3Synthesizer
from .synthesizer import VOCODERS, SynthesizerParams, SynthesizerTrn
from .weight_norm import checkpoint_shapes, fold_weight_norm

__all__ = [
    "VOCODERS",
    "NsfHifiGan",
    "SineSource",
    "Sovits3Synthesizer",
    "SynthesizerParams",
    "SynthesizerTrn",
    "checkpoint_shapes",
    "f0_to_coarse",
    "fold_weight_norm",
]
