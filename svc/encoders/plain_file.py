"""Reading weight files that hold only plain containers and tensors (Whisper, WavLM releases).

These files load with ``torch.load(weights_only=True)``; anything that does not (a fairseq
checkpoint given under the wrong name, a truncated download, a text file) becomes one
``WeightFileError`` naming the file and what was expected.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ..errors import WeightFileError


def load_plain_file(path: Path, expected: str) -> dict:
    """Load ``path`` as a dict of plain values and tensors; ``expected`` describes the right file."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightFileError(f"{path} does not exist; expected {expected}.") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, AttributeError, KeyError, IndexError, TypeError) as exc:
        raise WeightFileError(f"{path} cannot be used: {_reason(exc)}; expected {expected}.") from None
    if not isinstance(data, Mapping):
        raise WeightFileError(
            f"{path} holds a {type(data).__name__}, not a dict; expected {expected}."
        )
    return dict(data)


def _reason(exc: Exception) -> str:
    """Say in a few words why torch could not read a file (torch's own text suggests unsafe loading)."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if found:
        return f"it contains the Python class {found.group(1)}, so it is a different kind of checkpoint"
    return "it is damaged, truncated or not a PyTorch weight file (download it again)"


def require_keys(data: Mapping, keys: Iterable[str], path: Path, expected: str) -> None:
    """Raise a ``WeightFileError`` if the top level of ``data`` lacks one of ``keys``."""
    missing = [key for key in keys if key not in data]
    if missing:
        found = ", ".join(repr(k) for k in list(data)[:6]) or "nothing"
        raise WeightFileError(
            f"{path} lacks {', '.join(repr(k) for k in missing)} (it has {found}); "
            f"expected {expected}."
        )


def load_float_state(
    module: torch.nn.Module, state: Mapping, path: Path, expected: str
) -> None:
    """Load ``state`` into ``module`` strictly, upcasting floating tensors to float32.

    Key or shape mismatches become a ``WeightFileError`` instead of torch's long RuntimeError.
    """
    own = module.state_dict()
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightFileError(f"{path} has non-tensor entries in its weights; expected {expected}.")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} keys such as {missing[0]!r}")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected keys such as {unexpected[0]!r}")
        raise WeightFileError(
            f"{path} does not match the model ({'; '.join(detail)}); expected {expected}."
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise WeightFileError(
                f"{path} has {key!r} of shape {tuple(value.shape)}, the model needs "
                f"{tuple(own[key].shape)}; expected {expected}."
            )
    converted = {
        key: value.float() if value.is_floating_point() else value for key, value in state.items()
    }
    module.load_state_dict(converted, strict=True)
