"""Trainable weight norm with so-vits-svc's checkpoint names.

The inference model folds weight norm away; for training, every layer marked
``weight_normed`` gets ``torch.nn.utils.parametrizations.weight_norm`` (dim 0, the same
``g * v / ||v||`` as the legacy hook the reference uses).  Its tensors are named
``<layer>.parametrizations.weight.original0/1`` in the state dict; so-vits-svc files name them
``<layer>.weight_g`` / ``<layer>.weight_v``.  ``to_reference_keys`` / ``from_reference_keys``
translate, and nothing else differs: the parameter order (bias, g, v) is the legacy one too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from ..models.layers import is_weight_normed

_G = ".parametrizations.weight.original0"
_V = ".parametrizations.weight.original1"


def apply_weight_norm(model: nn.Module) -> nn.Module:
    """Parametrize every weight-normed layer of ``model`` (each shared layer once); return it."""
    for module in model.modules():  # modules() visits a shared layer once
        if is_weight_normed(module) and not parametrize.is_parametrized(module, "weight"):
            parametrizations.weight_norm(module, name="weight", dim=0)
    return model


def to_reference_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename parametrization keys to ``weight_g``/``weight_v`` (order kept)."""
    return {key.replace(_G, ".weight_g").replace(_V, ".weight_v"): value for key, value in state.items()}


def from_reference_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``weight_g``/``weight_v`` keys to this module's parametrization keys."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_g"):
            key = key[: -len(".weight_g")] + _G
        elif key.endswith(".weight_v"):
            key = key[: -len(".weight_v")] + _V
        out[key] = value
    return out
