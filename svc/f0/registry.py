"""The one table of F0 predictors, the factory, and a settings-aware predictor cache."""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionsError
from ..weights import DEFAULT_PRETRAIN_DIR, require_weight_file
from .base import F0Predictor


@dataclass(frozen=True)
class F0PredictorSpec:
    """One F0 method: its ``"module:Class"`` (imported on first use) and what it needs."""

    name: str
    target: str
    summary: str
    uses_device: bool = False  # runs on the session's device (else always on the CPU)
    weight_file: str | None = None  # needed under pretrain_dir
    weight_source: str | None = None  # where that file is officially published

    def check_weights(self, pretrain_dir: str | Path) -> None:
        """Raise ``WeightFileError`` naming the file if this predictor's weights are missing."""
        if self.weight_file:
            require_weight_file(pretrain_dir, self.weight_file, f"The {self.name} F0 predictor",
                                self.weight_source or "")


F0_PREDICTORS: dict[str, F0PredictorSpec] = {
    spec.name: spec
    for spec in (
        F0PredictorSpec("pm", "svc.f0.classic:PmF0Predictor", "Praat autocorrelation (fast)"),
        F0PredictorSpec("dio", "svc.f0.classic:DioF0Predictor", "WORLD DIO (fast)"),
        F0PredictorSpec("harvest", "svc.f0.classic:HarvestF0Predictor", "WORLD Harvest (slow, robust)"),
        F0PredictorSpec("crepe", "svc.f0.crepe:CrepeF0Predictor", "CREPE full (accurate, slow on CPU)", True),
        F0PredictorSpec("crepe-tiny", "svc.f0.crepe:TinyCrepeF0Predictor", "CREPE tiny (fast)", True),
        F0PredictorSpec("fcpe", "svc.f0.fcpe:FcpeF0Predictor", "FCPE (fast, accurate)", True),
        F0PredictorSpec("rmvpe", "svc.f0.rmvpe:RmvpeF0Predictor", "RMVPE (accurate; needs pretrain/rmvpe.pt)",
                        True, "rmvpe.pt",
                        "https://github.com/yxlllc/RMVPE/releases/download/230917/rmvpe.zip (unzip, rename "
                        "model.pt) or https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/rmvpe.pt"),
    )
}


def get_spec(name: str) -> F0PredictorSpec:
    """The spec of predictor ``name``; an unknown name is an ``OptionsError``."""
    try:
        return F0_PREDICTORS[name]
    except (KeyError, TypeError):
        raise OptionsError(
            f"unknown F0 predictor {name!r}; choose one of: {', '.join(sorted(F0_PREDICTORS))}"
        ) from None


def get_f0_predictor(
    name: str,
    *,
    hop_length: int,
    sampling_rate: int,
    device: str = "cpu",
    threshold: float = 0.05,
    pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
) -> F0Predictor:
    """Build predictor ``name`` (loading its network, if any, onto ``device``)."""
    spec = get_spec(name)
    module_name, class_name = spec.target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(hop_length=hop_length, sampling_rate=sampling_rate, device=str(device) if spec.uses_device else "cpu",
               threshold=threshold, pretrain_dir=pretrain_dir)


class F0PredictorCache:
    """Keeps the last few predictors, keyed by every setting (so a new threshold takes effect).

    A request that differs from a cached predictor only in hop, rate or threshold reuses its
    loaded network.  Safe to share between threads.
    """

    def __init__(self, max_entries: int = 2) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, F0Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        name: str,
        *,
        hop_length: int,
        sampling_rate: int,
        device: str = "cpu",
        threshold: float = 0.05,
        pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
    ) -> F0Predictor:
        """The predictor for these settings, built or adapted on a miss."""
        device = str(device) if get_spec(name).uses_device else "cpu"
        model_key = (name, device, str(Path(pretrain_dir).resolve()))
        key = (*model_key, int(hop_length), int(sampling_rate), float(threshold))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            sibling = next((p for k, p in self._entries.items() if k[:3] == model_key), None)
            if sibling is not None:
                predictor = sibling.with_settings(hop_length=hop_length, sampling_rate=sampling_rate,
                                                  threshold=threshold)
            else:
                predictor = get_f0_predictor(name, hop_length=hop_length, sampling_rate=sampling_rate,
                                             device=device, threshold=threshold, pretrain_dir=pretrain_dir)
            self._entries[key] = predictor
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return predictor

    def clear(self) -> None:
        """Drop every cached predictor (and its network)."""
        with self._lock:
            self._entries.clear()
