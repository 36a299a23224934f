"""Choosing the torch device a session runs on."""

from __future__ import annotations

import torch

from .errors import OptionsError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a user's device choice into a ``torch.device``.

    "auto" picks CUDA if available, then MPS, then the CPU.  Asking for a device that this
    machine lacks is an ``OptionsError`` rather than a late failure inside a model.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionsError(f"device '{name}' was asked for, but CUDA is not available on this machine")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionsError(
                f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise OptionsError("device 'mps' was asked for, but MPS is not available on this machine")
        return torch.device("mps")
    raise OptionsError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
