"""so-vits-svc kmeans cluster models (``kmeans_10000.pt``): safe loading and nearest-centre lookup.

The file is ``torch.save({speaker name: {"n_features_in_", "_n_threads", "cluster_centers_"}})``
with the centres as a NumPy array, so it holds NumPy globals that ``torch.load(weights_only=True)``
refuses unless allowed.  We allow exactly the NumPy names such a file needs (both the NumPy 1.x
and 2.x spellings) and nothing else, so a file that smuggles in any other global fails to load
without running it.  The lookup is scikit-learn's ``KMeans.predict`` done in torch.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct

from ..errors import TimbreFileError

# Everything a pickled float ndarray refers to; the dtype classes are needed because the
# dtype object is rebuilt and then given its state.
_NUMPY_GLOBALS = [
    (_reconstruct, "numpy._core.multiarray._reconstruct"),
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
    np.ndarray,
    np.dtype,
    codecs.encode,
    *(type(np.dtype(t)) for t in (np.float16, np.float32, np.float64)),
]


@dataclass(frozen=True)
class KMeansModel:
    """Cluster centres per speaker name (``[n_clusters, dim]`` float32 each)."""

    centres: dict[str, torch.Tensor]
    path: Path

    @property
    def speakers(self) -> list[str]:
        return list(self.centres)

    @property
    def dim(self) -> int:
        return next(iter(self.centres.values())).shape[1]

    def to(self, device: torch.device) -> KMeansModel:
        return KMeansModel({k: v.to(device) for k, v in self.centres.items()}, self.path)

    def mix(self, content: torch.Tensor, speaker: str, ratio: float) -> torch.Tensor:
        """``ratio * nearest centre + (1 - ratio) * content`` for ``content [dim, T]`` (so-vits-svc's
        ``get_cluster_center_result`` mix)."""
        centres = self._centres_of(speaker)
        nearest = centres[nearest_centre(content.T.float(), centres)].T
        return ratio * nearest + (1 - ratio) * content

    def _centres_of(self, speaker: str) -> torch.Tensor:
        if speaker not in self.centres:
            raise TimbreFileError(
                f"cluster model '{self.path.name}' has no speaker {speaker!r}; it has: {', '.join(self.centres)}"
            )
        return self.centres[speaker]


def nearest_centre(x: torch.Tensor, centres: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """Index of the nearest centre (squared L2) for every row of ``x [N, dim]``.

    Computed as sklearn does, ``||c||^2 - 2 x.c`` (``||x||^2`` is the same for every centre),
    in blocks of rows so a 10000-centre model needs only ``block x 10000`` floats at once.
    """
    norms = (centres * centres).sum(dim=1)
    labels = [torch.argmin(norms - 2.0 * (x[i : i + block] @ centres.T), dim=1) for i in range(0, len(x), block)]
    return torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=x.device)


def load_kmeans(path: str | Path) -> KMeansModel:
    """Read a ``kmeans_*.pt`` file (weights-only; NumPy arrays allowed explicitly) and check its layout."""
    path = Path(path)
    if not path.is_file():
        raise TimbreFileError(f"cluster model '{path}' does not exist")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        raise TimbreFileError(
            f"'{path}' is not a so-vits-svc kmeans cluster model that loads safely: {str(exc).splitlines()[0]}"
        ) from None
    return KMeansModel(_parse_centres(raw, path), path)


def _parse_centres(raw: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(raw, dict) or not raw:
        raise TimbreFileError(f"'{path}' is not a kmeans cluster model (expected a dict of speakers)")
    centres: dict[str, torch.Tensor] = {}
    dims = set()
    for name, entry in raw.items():
        array = entry.get("cluster_centers_") if isinstance(entry, dict) else None
        if not isinstance(array, (np.ndarray, torch.Tensor)) or array.ndim != 2 or array.shape[0] == 0:
            raise TimbreFileError(f"'{path}': speaker {name!r} has no 'cluster_centers_' array [n_clusters, dim]")
        centres[str(name)] = torch.as_tensor(np.asarray(array, dtype=np.float32))
        dims.add(array.shape[1])
    if len(dims) != 1:
        raise TimbreFileError(f"'{path}': the speakers' centres have different dimensions {sorted(dims)}")
    return centres
