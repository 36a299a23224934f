"""Aligning content features to the F0 frame grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def repeat_expand(content: torch.Tensor, target_len: int, mode: str = "left") -> torch.Tensor:
    """Stretch ``content`` [dim, frames] to ``target_len`` frames, as so-vits-svc does.

    ``mode='left'`` is so-vits-svc's ``repeat_expand_2d_left`` (a per-frame Python loop there),
    vectorised here with the same float32 frame boundaries, including its habit of moving at
    most one source frame per target frame when shrinking.  Any other mode goes to
    ``F.interpolate`` (the reference's ``'nearest'`` path).
    """
    src_len = content.shape[-1]
    if mode != "left":
        return F.interpolate(content[None], size=target_len, mode=mode)[0]
    bounds = torch.arange(src_len + 1) * target_len / src_len  # float32, as in the reference
    steps = torch.arange(target_len, dtype=bounds.dtype)
    # Source frame for each target frame if any number of boundaries could be crossed at once...
    reach = torch.searchsorted(bounds[1:].contiguous(), steps, right=True)
    # ...but the reference loop advances at most one frame per step: p_i = min(p_{i-1}+1, reach_i).
    index = torch.cummin(reach - torch.arange(target_len), dim=0).values + torch.arange(target_len)
    index = index.clamp_(0, src_len - 1)
    return content[:, index.to(content.device)].float()
