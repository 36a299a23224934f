"""Locating pretrained weight files under ``pretrain/`` with helpful errors."""

from __future__ import annotations

from pathlib import Path

from .errors import WeightFileError

DEFAULT_PRETRAIN_DIR = Path(__file__).resolve().parent.parent / "pretrain"


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
