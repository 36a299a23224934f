"""Checking that a loaded encoder weight file is the expected kind of checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightFileError


def describe_file(obj: Any) -> str:
    """A short guess at what a loaded file is, for wrong-kind errors."""
    if not isinstance(obj, dict):
        return f"it holds a {type(obj).__name__}, not a dict"
    keys = set(obj)
    if {"dims", "model_state_dict"} <= keys:
        return "it looks like an OpenAI Whisper model file"
    if {"cfg", "model"} <= keys:
        return "it looks like a fairseq or WavLM checkpoint"
    if {"config", "state_dict"} <= keys:
        return "it looks like a DPHuBERT checkpoint"
    if keys and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return "it is a bare state dict"
    return f"it has the keys {sorted(map(str, keys))[:8]}"


def require_dict_keys(data: Any, keys: Iterable[str], path: Path, what: str) -> dict:
    """``data`` if it is a dict holding a dict under each of ``keys``, else a ``WeightFileError``."""
    if not isinstance(data, dict):
        raise WeightFileError(f"'{path}' is not {what}: {describe_file(data)}")
    missing = [key for key in keys if not isinstance(data.get(key), dict)]
    if missing:
        raise WeightFileError(
            f"'{path}' is not {what}: it lacks {', '.join(repr(k) for k in missing)} "
            f"({describe_file(data)})"
        )
    return data
