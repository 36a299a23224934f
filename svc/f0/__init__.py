"""F0 (pitch) predictors: one registry, ``F0_PREDICTORS``, and the shared F0 helpers.

Importing this package is cheap: a predictor's libraries (parselmouth, pyworld, torchcrepe,
torchfcpe, the RMVPE network) are imported when that predictor is first built.
"""

from .base import F0_MAX, F0_MIN, F0Predictor, interpolate_unvoiced
from .registry import F0_PREDICTORS, F0PredictorCache, F0PredictorSpec, get_f0_predictor, get_spec

__all__ = [
    "F0_MAX",
    "F0_MIN",
    "F0_PREDICTORS",
    "F0Predictor",
    "F0PredictorCache",
    "F0PredictorSpec",
    "get_f0_predictor",
    "get_spec",
    "interpolate_unvoiced",
]
