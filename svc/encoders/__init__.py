"""Speech (content) encoders, loaded from their official weight files without fairseq."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..weights import DEFAULT_PRETRAIN_DIR, require_weight_file
from .base import ContentEncoder
from .registry import ENCODERS, EncoderSpec, get_spec, resolve_loader

__all__ = ["ENCODERS", "ContentEncoder", "EncoderCache", "EncoderSpec", "load_encoder"]

logger = logging.getLogger(__name__)


def load_encoder(
    name: str,
    pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
    device: str | torch.device = "cpu",
    half: bool = False,
) -> ContentEncoder:
    """Load encoder ``name`` from its weight file in ``pretrain_dir``, in eval mode on ``device``.

    ``half`` runs it in float16, on CUDA only (float16 convolutions are slow or missing on CPU).
    """
    spec = get_spec(name)
    path = require_weight_file(pretrain_dir, spec.filename, f"speech encoder '{name}'", spec.source)
    encoder = resolve_loader(spec)(path, spec)
    if encoder.dim != spec.dim:
        # Small test models do this; a real file that does is probably not the official one.
        logger.warning("'%s' gives %d-dim features, but %s is %d-dim", path, encoder.dim, name, spec.dim)
    return _place(encoder.eval(), torch.device(device), half)


def _place(encoder: ContentEncoder, device: torch.device, half: bool) -> ContentEncoder:
    dtype = torch.float16 if half and device.type == "cuda" else torch.float32
    return encoder.to(device=device, dtype=dtype)


class EncoderCache:
    """Encoders loaded so far, one per (name, half), all kept on one device.

    A session holds one; ``to(device)`` moves every cached encoder along with the session.
    """

    def __init__(self, pretrain_dir: str | Path = DEFAULT_PRETRAIN_DIR,
                 device: str | torch.device = "cpu") -> None:
        self.pretrain_dir = Path(pretrain_dir)
        self.device = torch.device(device)
        self._encoders: dict[tuple[str, bool], ContentEncoder] = {}

    def get(self, name: str, half: bool = False) -> ContentEncoder:
        """The encoder ``name`` on the cache's device, loading it on first use."""
        key = (name, bool(half))
        if key not in self._encoders:
            self._encoders[key] = load_encoder(name, self.pretrain_dir, self.device, half)
        return self._encoders[key]

    def to(self, device: str | torch.device) -> EncoderCache:
        """Move every cached encoder to ``device``; later loads go there too."""
        self.device = torch.device(device)
        for (name, half), encoder in self._encoders.items():
            self._encoders[(name, half)] = _place(encoder, self.device, half)
        return self

    def clear(self) -> None:
        """Forget every cached encoder (frees its memory)."""
        self._encoders.clear()

    def __contains__(self, name: str) -> bool:
        return any(key[0] == name for key in self._encoders)
