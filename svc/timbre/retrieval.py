"""so-vits-svc feature retrieval (``feature_and_index.pkl``): safe loading and the k-NN mix.

The file is a plain pickle of ``{speaker id: faiss IndexIVFFlat}``.  It is read by an unpickler
that knows exactly one global, faiss's ``IndexIVFFlat``, and maps it to a stand-in that only
keeps the index's bytes (parsed by ``faiss_format``); any other global is refused before
anything runs, so a malicious pickle executes nothing.  The search is the reference's faiss
search done in torch: the nearest IVF centroid (nprobe 1), then the ``K`` nearest vectors of
that list by exact squared L2, weighted by ``1 / d^2``.
"""

from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import TimbreFileError
from .cluster import nearest_centre
from .faiss_format import IvfFlat, parse_ivf_flat

K = 8  # neighbours per frame, as so-vits-svc's search(k=8)
_FAISS_MODULE = re.compile(r"faiss(\.swigfaiss\w*)?")
_BLOCK_ELEMENTS = 1 << 24  # floats gathered at once when comparing frames with their list's vectors


class _PickledFaissIndex:
    """Stand-in for ``faiss.IndexIVFFlat`` while unpickling: keeps the serialized bytes, runs nothing."""

    data: bytes | None = None

    def __setstate__(self, state: object) -> None:
        self.data = state.get("this") if isinstance(state, dict) else None


class _IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if _FAISS_MODULE.fullmatch(module) and name == "IndexIVFFlat":
            return _PickledFaissIndex
        raise pickle.UnpicklingError(f"the file refers to '{module}.{name}', which a feature index never holds")


@dataclass
class FeatureIndex:
    """One speaker's retrieval index as torch tensors (see ``IvfFlat``)."""

    centroids: torch.Tensor
    vectors: torch.Tensor
    offsets: torch.Tensor
    nprobe: int

    @classmethod
    def from_ivf(cls, ivf: IvfFlat) -> FeatureIndex:
        return cls(torch.from_numpy(ivf.centroids), torch.from_numpy(ivf.vectors),
                   torch.from_numpy(ivf.offsets), ivf.nprobe)

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    def to(self, device: torch.device) -> FeatureIndex:
        return FeatureIndex(self.centroids.to(device), self.vectors.to(device), self.offsets.to(device), self.nprobe)

    def search(self, x: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distances [N, k], rows of self.vectors [N, k])`` of each row of ``x [N, d]``, nearest first.

        Slots beyond the size of a frame's list have distance ``inf`` (faiss pads with -1).
        """
        if self.nprobe != 1:
            raise TimbreFileError(f"feature index with nprobe {self.nprobe}: only so-vits-svc's nprobe 1 is supported")
        lists = nearest_centre(x, self.centroids)
        starts, sizes = self.offsets[lists], self.offsets[lists + 1] - self.offsets[lists]
        width = max(int(sizes.max()) if len(sizes) else 0, 1)
        slot = torch.arange(width, device=x.device)
        block = max(1, _BLOCK_ELEMENTS // (width * self.dim))
        dists, rows = [], []
        for i in range(0, len(x), block):
            valid = slot[None] < sizes[i : i + block, None]
            pos = torch.where(valid, starts[i : i + block, None] + slot[None], 0)
            diff = self.vectors[pos] - x[i : i + block, None]
            d = torch.where(valid, (diff * diff).sum(-1), torch.inf)
            best = torch.topk(d, min(k, width), dim=1, largest=False, sorted=True)
            dists.append(best.values)
            rows.append(pos.gather(1, best.indices))
        return torch.cat(dists), torch.cat(rows)

    def mix(self, content: torch.Tensor, ratio: float) -> torch.Tensor:
        """``ratio * retrieved + (1 - ratio) * content`` for ``content [dim, T]`` (so-vits-svc's retrieval mix).

        ``retrieved`` is the 1/d^2-weighted mean of the 8 nearest stored features.  A frame that
        equals a stored feature (d = 0, NaN in the reference) retrieves that feature; a frame
        whose list is empty keeps its own feature.
        """
        x = content.T.float().contiguous()
        d, rows = self.search(x)
        weight = _inverse_square_weights(d.double()).float()
        retrieved = (self.vectors[rows] * weight[:, :, None]).sum(dim=1)
        empty = torch.isinf(d).all(dim=1)
        retrieved[empty] = x[empty]
        return (ratio * retrieved + (1 - ratio) * x).T


def _inverse_square_weights(d: torch.Tensor) -> torch.Tensor:
    """``(1/d)^2`` normalised per row; inf distances weigh 0; exact matches share all the weight."""
    zero = d == 0
    w = torch.where(zero, 0.0, 1.0 / d.clamp_min(torch.finfo(d.dtype).tiny)).square()
    w = torch.where(zero.any(dim=1, keepdim=True), zero.to(d.dtype), w)
    total = w.sum(dim=1, keepdim=True)
    return torch.where(total > 0, w / total.clamp_min(torch.finfo(d.dtype).tiny), 0.0)


@dataclass(frozen=True)
class RetrievalModel:
    """Feature indexes per speaker id, as stored in ``feature_and_index.pkl``."""

    indexes: dict[int, FeatureIndex]
    path: Path

    @property
    def speaker_ids(self) -> list[int]:
        return sorted(self.indexes)

    @property
    def dim(self) -> int:
        return next(iter(self.indexes.values())).dim

    def index_of(self, speaker_id: int) -> FeatureIndex:
        if speaker_id not in self.indexes:
            raise TimbreFileError(f"feature index '{self.path.name}' has no speaker id {speaker_id}; "
                                  f"it has ids {self.speaker_ids}")
        return self.indexes[speaker_id]

    def to(self, device: torch.device) -> RetrievalModel:
        return RetrievalModel({k: v.to(device) for k, v in self.indexes.items()}, self.path)


def load_retrieval(path: str | Path) -> RetrievalModel:
    """Read a ``feature_and_index.pkl`` through the restricted unpickler and parse every index."""
    path = Path(path)
    if not path.is_file():
        raise TimbreFileError(f"feature index '{path}' does not exist")
    try:
        raw = _IndexUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as exc:
        raise TimbreFileError(f"'{path}' is not a so-vits-svc feature index and was not loaded: {exc}") from None
    except Exception as exc:  # truncated or garbage data: EOFError, ValueError, ...
        raise TimbreFileError(f"'{path}' is not a readable so-vits-svc feature index ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or not raw:
        raise TimbreFileError(f"'{path}' is not a so-vits-svc feature index (expected {{speaker id: index}})")
    indexes = {}
    for sid, blob in raw.items():
        if isinstance(sid, bool) or not isinstance(sid, int) or not isinstance(blob, _PickledFaissIndex) \
                or not isinstance(blob.data, bytes):
            raise TimbreFileError(f"'{path}': entry {sid!r} is not a speaker id with a faiss index")
        indexes[sid] = FeatureIndex.from_ivf(parse_ivf_flat(blob.data, f"'{path}' speaker {sid}"))
    if len({ix.dim for ix in indexes.values()}) != 1:
        raise TimbreFileError(f"'{path}': the speakers' indexes have different dimensions")
    return RetrievalModel(indexes, path)
