"""Speech (content) encoders, loaded from their official weight files without fairseq."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..precision import cpu_has_bf16
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

    ``half`` asks for reduced precision: on CUDA the whole encoder runs in float16; on a CPU with
    AVX512-BF16 or AMX the parts ``ContentEncoder.bfloat16_parts`` names (its transformer layers and
    most of its conv front-end) run in bfloat16; elsewhere it is ignored (float32).
    """
    spec = get_spec(name)
    path = require_weight_file(pretrain_dir, spec.filename, f"speech encoder '{name}'", spec.source)
    encoder = resolve_loader(spec)(path, spec)
    if encoder.dim != spec.dim:
        # Small test models do this; a real file that does is probably not the official one.
        logger.warning("'%s' gives %d-dim features, but %s is %d-dim", path, encoder.dim, name, spec.dim)
    return _place(encoder.eval(), torch.device(device), half)


def _place(encoder: ContentEncoder, device: torch.device, half: bool) -> ContentEncoder:
    if half and device.type == "cuda":
        return encoder.to(device=device, dtype=torch.float16)
    encoder = encoder.to(device=device, dtype=torch.float32)
    if half and device.type == "cpu" and cpu_has_bf16():
        encoder.use_bfloat16()
    return encoder


class EncoderCache:
    """Encoders loaded so far, one per name (in the precision last asked for), all on one device.

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
            # The other precision's copy goes first: a switch of precision holds one encoder, not two.
            self._encoders.pop((name, not half), None)
            self._encoders[key] = load_encoder(name, self.pretrain_dir, self.device, half)
        return self._encoders[key]

    def to(self, device: str | torch.device) -> EncoderCache:
        """Move every cached encoder to ``device``; later loads go there too."""
        self.device = torch.device(device)
        for (name, half), encoder in self._encoders.items():
            # From float16 (CUDA) or to bfloat16 (CPU), a copy in the new dtype comes from the file.
            reload = half and (encoder.device.type == "cuda") != (self.device.type == "cuda")
            self._encoders[(name, half)] = (load_encoder(name, self.pretrain_dir, self.device, half) if reload
                                            else _place(encoder, self.device, half))
        return self

    def clear(self) -> None:
        """Forget every cached encoder (frees its memory)."""
        self._encoders.clear()

    def __contains__(self, name: str) -> bool:
        return any(key[0] == name for key in self._encoders)
