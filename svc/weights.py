"""Pretrained weight files: locating them under ``pretrain/`` and reading them safely."""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import WeightFileError


def weight_norm_weight(g: torch.Tensor, v: torch.Tensor, dim: int) -> torch.Tensor:
    """The weight ``g * v / ||v||`` (norm over every axis but ``dim``) that torch's weight_norm
    computes on every forward, from the same kernel: checkpoints store ``g``/``v``, we fold them once."""
    return torch._weight_norm(v, g, dim)

DEFAULT_PRETRAIN_DIR = Path(__file__).resolve().parent.parent / "pretrain"
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def require_weight_file(pretrain_dir: str | Path, filename: str, what: str, source: str) -> Path:
    """Return ``pretrain_dir/filename`` or raise a ``WeightFileError`` saying where to get it.

    ``what`` names the component that needs the file ("ContentVec encoder (vec768l12)"),
    ``source`` says where the file is officially published.
    """
    path = Path(pretrain_dir) / filename
    if path.is_file():
        return path
    raise WeightFileError(
        f"{what} needs the weight file '{filename}', which is not in '{Path(pretrain_dir)}'. "
        f"Download it from {source} and save it as '{path}'."
    )


def load_torch_file(path: str | Path, what: str, extra_globals: Iterable[tuple[type, str]] = ()) -> Any:
    """Unpickle the torch file at ``path`` on the CPU without letting it run code.

    ``torch.load(weights_only=True)`` admits only tensors and plain containers; ``extra_globals``
    adds ``(class, pickled name)`` pairs of inert stand-ins.  ``what`` names the expected file
    ("a ContentVec checkpoint").  A missing, corrupt or code-carrying file is a ``WeightFileError``.
    """
    path = Path(path)
    try:
        # Zip-format files are memory-mapped: only the tensors a loader copies out are read, so
        # the optimizer state of a training checkpoint never enters memory (float_state copies).
        mmap = zipfile.is_zipfile(path)
        with torch.serialization.safe_globals(list(extra_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise WeightFileError(f"'{path}' does not exist; it should be {what}") from None
    except pickle.UnpicklingError as exc:
        # torch names the first unsupported global as "GLOBAL module.name".
        refused = _REFUSED_GLOBAL.search(str(exc))
        if refused is not None:
            raise WeightFileError(
                f"refusing to load '{path}': it is not {what}, as it contains the Python class "
                f"{refused.group(1)}, which could run code on loading; use the officially published file"
            ) from None
        raise _unreadable(path, what, exc) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError,
            IndexError, TypeError, AttributeError) as exc:
        raise _unreadable(path, what, exc) from None


def _unreadable(path: Path, what: str, exc: Exception) -> WeightFileError:
    lines = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return WeightFileError(
        f"'{path}' cannot be read as {what} ({detail[:200]}); the file is damaged, truncated "
        "or not a PyTorch weight file: download it again"
    )


def float_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` as float32 (other dtypes kept), ``module.`` prefixes removed.

    Always copies, so no tensor stays backed by the (memory-mapped) file it was read from.
    """
    return {
        key.removeprefix("module."): value.to(torch.float32 if value.is_floating_point() else value.dtype, copy=True)
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }


def load_module_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path,
                      what: str, *, assign: bool = False) -> None:
    """``module.load_state_dict(state, strict=True)``, with key or shape mismatches as one
    ``WeightFileError`` naming the file (``what`` as in ``load_torch_file``).

    ``assign``: the module takes ``state``'s tensors instead of copying them (for a module built on
    the meta device: no random initialisation and no second copy of the weights while loading).
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise WeightFileError(
            f"'{path}' does not match {what}: missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}"
        )
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
             for k, v in state.items() if v.shape != expected[k].shape]
    if wrong:
        raise WeightFileError(f"'{path}' does not match {what}: shape mismatch in {', '.join(wrong[:3])}")
    module.load_state_dict(state, strict=True, assign=assign)
    left = [name for name, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if left:  # a buffer that is not saved (persistent=False) cannot come from the file
        raise RuntimeError(f"{type(module).__name__} kept meta tensors after loading: {left[:4]}")
