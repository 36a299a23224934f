"""Translating between checkpoint keys (weight_g/weight_v) and our folded ``weight`` tensors."""

from __future__ import annotations

import torch
from torch import nn

from ..weights import weight_norm_weight
from .layers import is_weight_normed


def _weight_normed_prefixes(model: nn.Module) -> list[str]:
    # remove_duplicate=False: a shared module (flow_share_parameter) appears under every name.
    return [
        f"{name}." if name else ""
        for name, module in model.named_modules(remove_duplicate=False)
        if is_weight_normed(module)
    ]


def checkpoint_shapes(model: nn.Module) -> dict[str, torch.Size]:
    """Key -> shape of the state dict the reference would save for ``model`` (enc_q excluded)."""
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    for prefix in _weight_normed_prefixes(model):
        weight_shape = shapes.pop(prefix + "weight")
        shapes[prefix + "weight_g"] = torch.Size([weight_shape[0]] + [1] * (len(weight_shape) - 1))
        shapes[prefix + "weight_v"] = weight_shape
    return shapes


def fold_weight_norm(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Replace every ``weight_g``/``weight_v`` pair of ``model``'s layers by ``g * v / ||v||``."""
    folded = dict(state)
    for prefix in _weight_normed_prefixes(model):
        g = folded.pop(prefix + "weight_g")
        v = folded.pop(prefix + "weight_v")
        folded[prefix + "weight"] = weight_norm_weight(g, v, 0)
    return folded
