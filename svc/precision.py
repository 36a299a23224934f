"""Choosing the arithmetic precision of the synthesis (the vocoder's convolutions).

"fp32" is the default and matches so-vits-svc; "bf16" (CPUs with AVX512-BF16 or AMX, and
CUDA) and "fp16" (CUDA, MPS) trade a little accuracy for speed.
"""

from __future__ import annotations

import torch

from .errors import OptionsError

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_dtype(name: str, device: str | torch.device) -> torch.dtype:
    """The dtype for precision ``name`` on ``device``; an ``OptionsError`` if that device cannot run it fast."""
    key = str(name).strip().lower()
    if key not in PRECISIONS:
        raise OptionsError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if key == "fp16" and kind == "cpu":
        raise OptionsError("precision fp16 needs a GPU; on the CPU use bf16 (if the CPU supports it) or fp32")
    if key == "bf16" and kind == "cpu" and not cpu_has_bf16():
        raise OptionsError("precision bf16 needs a CPU with AVX512-BF16 or AMX; this one has neither, use fp32")
    if key == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise OptionsError("this GPU does not support bf16; use fp16 or fp32")
    if key == "bf16" and kind == "mps":
        raise OptionsError("precision bf16 is not supported on MPS; use fp16 or fp32")
    return PRECISIONS[key]


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
