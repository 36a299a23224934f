"""Reading the ``IndexIVFFlat`` byte stream that faiss pickles (its ``write_index`` format).

so-vits-svc's ``feature_and_index.pkl`` stores one faiss ``IndexIVFFlat`` (L2) per speaker; faiss
pickles an index as its ``write_index`` bytes.  This module parses those bytes with NumPy, so
retrieval needs neither faiss nor unpickling any code.  Layout (little-endian): ``IwFl``, the
index header, nlist and nprobe, the quantizer (a nested ``IxF2`` flat index holding the
centroids), the direct map, then the inverted lists (``ilar``: list sizes, then per list its
vectors and their int64 ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TimbreFileError

METRIC_L2 = 1


@dataclass(frozen=True)
class IvfFlat:
    """An inverted-file index: centroids ``[nlist, d]``; the vectors of all lists concatenated in
    list order (``vectors [ntotal, d]``, ``ids [ntotal]``), list ``l`` at ``offsets[l]:offsets[l+1]``."""

    centroids: np.ndarray
    vectors: np.ndarray
    ids: np.ndarray
    offsets: np.ndarray
    nprobe: int

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    @property
    def ntotal(self) -> int:
        return len(self.ids)


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = memoryview(data), 0, what

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise TimbreFileError(f"{self.what}: the faiss index data is truncated or corrupt")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, dtype: str) -> int | float:
        size = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(size), dtype=dtype)[0].item()

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * size), dtype=dtype).copy()

    def fourcc(self) -> bytes:
        return bytes(self.take(4))


def parse_ivf_flat(data: bytes, what: str = "feature index") -> IvfFlat:
    """Parse faiss ``write_index`` bytes of an L2 ``IndexIVFFlat``; anything else is a ``TimbreFileError``."""
    r = _Reader(data, what)
    kind = r.fourcc()
    if kind != b"IwFl":
        raise TimbreFileError(f"{what}: a faiss index of type {kind!r} is not supported (so-vits-svc writes "
                              "IVF-Flat indexes, 'IwFl')")
    d, ntotal = _index_header(r)
    nlist, nprobe = r.scalar("<u8"), r.scalar("<u8")
    if r.fourcc() != b"IxF2":
        raise TimbreFileError(f"{what}: the index's quantizer is not a flat L2 index")
    qd, qn = _index_header(r)
    count = r.scalar("<u8")
    if qd != d or qn != nlist or count != nlist * d:
        raise TimbreFileError(f"{what}: the quantizer does not match the index ({qn} x {qd} vs {nlist} x {d})")
    centroids = r.array("<f4", count).reshape(nlist, d)
    _skip_direct_map(r)
    sizes = _list_sizes(r, nlist, d)
    vectors = np.empty((int(sizes.sum()), d), np.float32)
    ids = np.empty(int(sizes.sum()), np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    for l, n in enumerate(sizes.tolist()):
        if n:
            vectors[offsets[l] : offsets[l + 1]] = r.array("<f4", n * d).reshape(n, d)
            ids[offsets[l] : offsets[l + 1]] = r.array("<i8", n)
    if r.pos != len(r.data) or len(ids) != ntotal:
        raise TimbreFileError(f"{what}: the faiss index data is inconsistent (unexpected length)")
    return IvfFlat(centroids, vectors, ids, offsets, max(1, int(nprobe)))


def _index_header(r: _Reader) -> tuple[int, int]:
    d, ntotal = r.scalar("<i4"), r.scalar("<i8")
    r.take(16)  # two unused int64 fields
    r.take(1)  # is_trained
    metric = r.scalar("<i4")
    if metric > 1:
        r.take(4)  # metric argument
    if metric != METRIC_L2:
        raise TimbreFileError(f"{r.what}: the index uses faiss metric {metric}; so-vits-svc indexes use L2 (1)")
    if d <= 0 or ntotal < 0:
        raise TimbreFileError(f"{r.what}: the faiss index header is corrupt")
    return d, ntotal


def _skip_direct_map(r: _Reader) -> None:
    kind = r.scalar("<u1")
    r.take(8 * r.scalar("<u8"))
    if kind == 2:  # hashtable: (int64, int64) pairs
        r.take(16 * r.scalar("<u8"))


def _list_sizes(r: _Reader, nlist: int, d: int) -> np.ndarray:
    if r.fourcc() != b"ilar":
        raise TimbreFileError(f"{r.what}: the index's inverted lists are not stored in the index (on-disk lists?)")
    if r.scalar("<u8") != nlist or r.scalar("<u8") != 4 * d:
        raise TimbreFileError(f"{r.what}: the inverted lists do not match the index")
    form = r.fourcc()
    if form == b"full":
        sizes = r.array("<u8", r.scalar("<u8"))
        if len(sizes) != nlist:
            raise TimbreFileError(f"{r.what}: the inverted lists do not match the index")
        return sizes.astype(np.int64)
    if form == b"sprs":
        pairs = r.array("<u8", r.scalar("<u8")).reshape(-1, 2).astype(np.int64)
        sizes = np.zeros(nlist, np.int64)
        if len(pairs) and (pairs[:, 0].max() >= nlist):
            raise TimbreFileError(f"{r.what}: the inverted lists do not match the index")
        sizes[pairs[:, 0]] = pairs[:, 1]
        return sizes
    raise TimbreFileError(f"{r.what}: unknown inverted-list layout {form!r}")
