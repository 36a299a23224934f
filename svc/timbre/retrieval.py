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
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch

from ..errors import TimbreFileError
from .faiss_format import IvfFlat, parse_ivf_flat

K = 8  # neighbours per frame, as so-vits-svc's search(k=8)
_FAISS_MODULE = re.compile(r"faiss(\.swigfaiss\w*)?")
_PAIR_BLOCK = 1 << 22  # floats of (frame - vector) differences computed at once (16 MB)


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
    """One speaker's retrieval index as torch tensors (see ``IvfFlat``), plus its faiss bytes."""

    centroids: torch.Tensor
    vectors: torch.Tensor
    offsets: torch.Tensor
    nprobe: int
    ids: torch.Tensor | None = None  # faiss id of each row of ``vectors``
    data: bytes | None = None  # the validated ``write_index`` bytes, for searching with faiss
    norms: torch.Tensor | None = None  # ||vector||^2
    _faiss: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.norms is None:
            self.norms = (self.vectors * self.vectors).sum(dim=1)

    @classmethod
    def from_ivf(cls, ivf: IvfFlat, data: bytes | None = None) -> FeatureIndex:
        return cls(torch.from_numpy(ivf.centroids), torch.from_numpy(ivf.vectors), torch.from_numpy(ivf.offsets),
                   ivf.nprobe, torch.from_numpy(ivf.ids), data)

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    def to(self, device: torch.device) -> FeatureIndex:
        return FeatureIndex(self.centroids.to(device), self.vectors.to(device), self.offsets.to(device), self.nprobe,
                            self.ids, self.data, self.norms.to(device))

    def search(self, x: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distances [N, k], rows of self.vectors [N, k])`` of each row of ``x [N, d]``, nearest first.

        On the CPU with faiss installed, faiss itself searches (about 10x faster than the torch
        search on a CPU); otherwise ``search_torch``.  Slots beyond the size of a frame's list
        have distance ``inf`` (faiss pads with id -1).
        """
        if USE_FAISS and x.device.type == "cpu" and self.data is not None and _faiss_module() is not None:
            return self.search_faiss(x, k)
        return self.search_torch(x, k)

    def search_faiss(self, x: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
        """faiss's ``search`` on the index rebuilt from its (already validated) bytes."""
        faiss = _faiss_module()
        if self._faiss is None:
            index = faiss.deserialize_index(np.frombuffer(self.data, dtype=np.uint8))
            row_of_id = torch.empty(len(self.ids), dtype=torch.long)
            row_of_id[self.ids] = torch.arange(len(self.ids))
            self._faiss = (index, row_of_id)
        index, row_of_id = self._faiss
        d, ids = index.search(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32), k)
        d, ids = torch.from_numpy(d), torch.from_numpy(ids)
        missing = ids < 0
        return d.masked_fill(missing, torch.inf), row_of_id[ids.clamp(min=0)].masked_fill(missing, 0)

    def search_torch(self, x: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
        """``search`` in torch (any device).  Like faiss's IVF-Flat search with nprobe 1: each frame is
        compared, by exact squared L2, only with the vectors of its nearest centroid's list. The (frame,
        vector) pairs are processed in blocks of about ``_PAIR_BLOCK`` pairs, a few large tensor operations
        each (many small ones stall thread pools on busy machines).  Slots beyond the size of a frame's list
        have distance ``inf`` (faiss pads with id -1).
        """
        if self.nprobe != 1:
            raise TimbreFileError(f"feature index with nprobe {self.nprobe}: only so-vits-svc's nprobe 1 is supported")
        lists = _nearest_centroid(x, self.centroids)
        starts, sizes = self.offsets[lists], self.offsets[lists + 1] - self.offsets[lists]
        dist = torch.full((len(x), k), torch.inf, device=x.device)
        rows = torch.zeros((len(x), k), dtype=torch.long, device=x.device)
        block_of = torch.div(torch.cumsum(sizes, 0) - sizes, max(1, _PAIR_BLOCK // self.dim), rounding_mode="floor")
        _, counts = torch.unique_consecutive(block_of, return_counts=True)
        first = 0
        for count in counts.tolist():
            frames = torch.arange(first, first + count, device=x.device)
            first += count
            if int(sizes[frames].max()) > 0:
                n, d, r = self._scan(x[frames], starts[frames], sizes[frames], k)
                dist[frames, :n], rows[frames, :n] = d, r
        return dist, rows

    def _scan(self, q: torch.Tensor, starts: torch.Tensor, sizes: torch.Tensor, k: int):
        """Exact squared distances of every frame to every vector of its list; the ``k`` smallest."""
        total = int(sizes.sum())
        frame = torch.repeat_interleave(torch.arange(len(q), device=q.device), sizes)
        slot = torch.arange(total, device=q.device) - torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
        diff = self.vectors[starts[frame] + slot] - q[frame]
        table = torch.full((len(q), int(sizes.max())), torch.inf, device=q.device)
        table[frame, slot] = (diff * diff).sum(dim=1)
        n = min(k, table.shape[1])
        best = torch.topk(table, n, dim=1, largest=False, sorted=True)
        return n, best.values, starts[:, None] + best.indices

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


USE_FAISS = True  # search with faiss when it is installed (tests switch it off to check the torch search)


@cache
def _faiss_module():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _nearest_centroid(x: torch.Tensor, centroids: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """The IVF list of each row of ``x``: faiss's flat-L2 search, ``(||x||^2 + ||c||^2) - 2 x.c`` in float32,
    clamped at 0, the first of equal distances winning (the same rounding keeps near-ties on faiss's side)."""
    c_norms = (centroids * centroids).sum(dim=1)
    out = []
    for i in range(0, len(x), block):
        part = x[i : i + block]
        d = ((part * part).sum(dim=1, keepdim=True) + c_norms[None]) - 2.0 * (part @ centroids.T)
        out.append(torch.argmin(d.clamp_min_(0.0), dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


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
        indexes[sid] = FeatureIndex.from_ivf(parse_ivf_flat(blob.data, f"'{path}' speaker {sid}"), blob.data)
    if len({ix.dim for ix in indexes.values()}) != 1:
        raise TimbreFileError(f"'{path}': the speakers' indexes have different dimensions")
    return RetrievalModel(indexes, path)
