"""Timbre controls from so-vits-svc 4.1: kmeans cluster mixing, feature retrieval and speaker mixing.

* ``cluster``: ``kmeans_*.pt`` files (nearest cluster centre per frame);
* ``retrieval``: ``feature_and_index.pkl`` files (8 nearest stored features per frame);
* ``spk_mix``: a speaker mix over time (per-frame speaker weights).

``load_timbre_file`` tells the two file kinds apart by their content, not their name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import TimbreFileError
from .cluster import KMeansModel, load_kmeans
from .retrieval import RetrievalModel, load_retrieval

TimbreModel = KMeansModel | RetrievalModel

_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."  # torch.save without the zip container
TIMBRE_FILE_PATTERNS = ("kmeans_*.pt", "*.pkl")


def load_timbre_file(path: str | Path) -> TimbreModel:
    """A kmeans model (a torch file) or a feature index (a plain pickle), whatever its name says."""
    path = Path(path)
    if not path.is_file():
        raise TimbreFileError(f"cluster / feature index file '{path}' does not exist")
    with path.open("rb") as f:
        head = f.read(len(_LEGACY_TORCH_MAGIC))
    if head.startswith(_ZIP_MAGIC) or head == _LEGACY_TORCH_MAGIC:
        return load_kmeans(path)
    if head[:1] == b"\x80":
        return load_retrieval(path)
    raise TimbreFileError(f"'{path}' is neither a so-vits-svc kmeans model (kmeans_*.pt) nor a feature index "
                          "(feature_and_index.pkl)")


def find_timbre_file(model_dir: str | Path) -> Path | None:
    """The cluster model or feature index in a model folder (``kmeans_*.pt`` first, then ``*.pkl``)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        return None
    for pattern in TIMBRE_FILE_PATTERNS:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


@dataclass(frozen=True)
class ContentMix:
    """Mixes a piece's content features ``c [1, dim, T]`` toward one speaker's clusters or stored features."""

    model: TimbreModel
    speaker_name: str
    speaker_id: int
    ratio: float

    def __post_init__(self) -> None:
        if isinstance(self.model, KMeansModel):
            self.model._centres_of(self.speaker_name)  # fail before converting anything
        else:
            self.model.index_of(self.speaker_id)

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        if self.ratio == 0:
            return c
        if isinstance(self.model, KMeansModel):
            return self.model.mix(c[0], self.speaker_name, self.ratio)[None]
        return self.model.index_of(self.speaker_id).mix(c[0], self.ratio)[None]


def check_dim(model: TimbreModel, ssl_dim: int) -> None:
    """Raise unless the file's features have the model's content dimension."""
    if model.dim != ssl_dim:
        kind = "cluster model" if isinstance(model, KMeansModel) else "feature index"
        raise TimbreFileError(f"{kind} '{model.path.name}' holds {model.dim}-dim features but the model takes "
                              f"{ssl_dim}-dim content: it belongs to another model")




class TimbreFileCache:
    """The last loaded cluster / index file per device, reloaded when the file changes."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._model: TimbreModel | None = None

    def get(self, path: str | Path, device: torch.device) -> TimbreModel:
        path = Path(path)
        try:
            stat = path.stat()
        except OSError:
            raise TimbreFileError(f"cluster / feature index file '{path}' does not exist") from None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))
        if key != self._key:
            self._model, self._key = None, None  # free the old one before loading the new one
            self._model, self._key = load_timbre_file(path).to(device), key
        return self._model


__all__ = ["ContentMix", "KMeansModel", "RetrievalModel", "TimbreFileCache", "TimbreModel", "check_dim",
           "find_timbre_file", "load_timbre_file"]
